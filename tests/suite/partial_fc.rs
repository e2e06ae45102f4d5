//! Partial FC: the sampler (the positives always in, the documented size,
//! deterministic per seed, uniform over the other classes), caller-given
//! samples, and the heads on sampled classes: equal to the head on the
//! gathered rows with the labels mapped into the sample, for the angular
//! head and the linear one; the shared contract; errors.

use crate::common::{embeddings, matrix, random_array, random_batch, random_labels, vector};
use crate::contract::{Angular, Case, Linear, SampledAngular, SampledLinear, check_contract};
use classloss::{
    AngularMarginHead, ArcFace, ClassTarget, CombinedMargin, CosFace, Differentiable, Error,
    Labels, LinearCrossEntropy, LinearInput, Loss, OnSampledClasses, PartialFc, Reduction,
    SampledClasses, SampledEmbeddings, SampledLinearInput,
};
use ndarray::{Array1, Array2, Axis, array};

// ------------------------------------------------------------------------
// The sampler

#[test]
fn the_sample_holds_every_positive_and_has_the_documented_size() {
    let classes = 100;
    for seed in 0..20_u64 {
        let labels = vector(random_labels(&[12], classes, seed)).mapv(|y| y as i64);
        let mut positives: Vec<usize> = labels.iter().map(|&y| y as usize).collect();
        positives.sort_unstable();
        positives.dedup();
        // Rates whose r C is an integer, is not (0.29 * 100 is
        // 28.999999999999996 in f64: insightface's int() gives 28), gives
        // fewer than the positives, and 1.
        for (rate, drawn) in [(0.2, 20), (0.29, 28), (0.05, 5), (0.5, 50), (1.0, 100)] {
            let pfc = PartialFc::new(rate).unwrap();
            let s = pfc.sample(&labels, classes, seed).unwrap();
            let size = drawn.max(positives.len());
            assert_eq!(s.len(), size, "rate {rate} seed {seed}");
            assert_eq!(pfc.sample_size(classes, positives.len()), size);
            assert_eq!(s.classes(), classes);
            assert!(s.indices().windows(2).all(|p| p[0] < p[1]), "{s:?}");
            assert!(s.indices().iter().all(|&c| c < classes));
            assert!(positives.iter().all(|&y| s.position(y).is_some()), "{s:?}");
            if drawn <= positives.len() {
                assert_eq!(s.indices(), &positives[..], "only the positives");
            }
        }
    }
    // Every class at rate 1.
    let s = PartialFc::new(1.0)
        .unwrap()
        .sample(&array![3_u8], 10, 5)
        .unwrap();
    assert_eq!(s.indices(), &(0..10).collect::<Vec<_>>()[..]);
}

#[test]
fn ignored_labels_name_no_positive() {
    let pfc = PartialFc::new(0.01).unwrap().with_ignore_index(-100_i32);
    assert_eq!(pfc.ignore_index(), Some(-100));
    let labels = array![-100_i64, 7, -100, 3];
    let s = pfc.sample(&labels, 50, 1).unwrap();
    // floor(0.5) = 0 drawn: the two positives.
    assert_eq!(s.indices(), &[3, 7]);
    // Every label ignored and nothing drawn: one class, so that the head
    // has a class.
    let s = pfc.sample(&array![-100_i64, -100], 50, 2).unwrap();
    assert_eq!(s.len(), 1);
    // Without the option, -100 is out of range.
    let e = PartialFc::new(0.5)
        .unwrap()
        .sample(&labels, 50, 1)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "labels[0]: label -100 is out of range for 50 classes (expected 0..=49)"
    );
}

#[test]
fn the_sample_is_deterministic_per_seed() {
    let labels = array![4_usize, 9, 4, 17];
    let pfc = PartialFc::new(0.3).unwrap();
    let a = pfc.sample(&labels, 60, 42).unwrap();
    assert_eq!(a, pfc.sample(&labels, 60, 42).unwrap());
    // The same labels as another integer type: the same sample.
    assert_eq!(a, pfc.sample(&labels.mapv(|y| y as u32), 60, 42).unwrap());
    let others: Vec<SampledClasses> = (0..5)
        .map(|s| pfc.sample(&labels, 60, s).unwrap())
        .collect();
    assert!(
        others.iter().all(|o| *o != a),
        "another seed, another sample"
    );
}

#[test]
fn the_negatives_are_drawn_uniformly() {
    // 5 positives out of 45 classes, 10 sampled: 5 of the 40 negatives per
    // draw, each with probability 1/8. Over 8,000 seeds each negative is
    // drawn 1,000 times in expectation (standard deviation 29.6); the
    // chi-square statistic over 40 classes (39 degrees of freedom) has a
    // mean of 39 and exceeds 80 with probability below 1e-4. A sampler
    // that favours low or high indices, or the first candidates, fails.
    let labels = array![0_usize, 11, 22, 33, 44];
    let pfc = PartialFc::new(10.0 / 45.0).unwrap();
    let mut counts = [0_u32; 45];
    let draws = 8000;
    for seed in 0..draws {
        let s = pfc.sample(&labels, 45, seed).unwrap();
        assert_eq!(s.len(), 10);
        for &c in s.indices() {
            counts[c] += 1;
        }
    }
    let expected = draws as f64 / 8.0;
    let mut chi2 = 0.0;
    for (c, &k) in counts.iter().enumerate() {
        if c % 11 == 0 {
            assert_eq!(k, draws as u32, "positive {c}");
            continue;
        }
        assert!(
            (f64::from(k) - expected).abs() < 5.0 * 29.6,
            "class {c}: {k}"
        );
        chi2 += (f64::from(k) - expected).powi(2) / expected;
    }
    assert!(chi2 < 80.0, "chi-square {chi2}");
    // Pairs too: class 1 and class 2 together with probability
    // (5 / 40) (4 / 39), 102.6 times in 8,000.
    let both = (0..draws)
        .filter(|&seed| {
            let s = pfc.sample(&labels, 45, seed).unwrap();
            s.position(1).is_some() && s.position(2).is_some()
        })
        .count() as f64;
    let pair = draws as f64 * 5.0 / 40.0 * 4.0 / 39.0;
    assert!((both - pair).abs() < 5.0 * pair.sqrt(), "{both} vs {pair}");
}

#[test]
fn caller_given_samples_are_validated() {
    let s = SampledClasses::new(vec![1, 4, 9], 10).unwrap();
    assert_eq!((s.indices(), s.len(), s.classes()), (&[1, 4, 9][..], 3, 10));
    assert!(!s.is_empty());
    assert_eq!((s.position(4), s.position(5)), (Some(1), None));
    let message = |indices: Vec<usize>| SampledClasses::new(indices, 10).unwrap_err().to_string();
    assert_eq!(
        message(vec![]),
        "indices: expected at least one class, got an empty array of shape [0]"
    );
    assert_eq!(
        message(vec![1, 4, 4]),
        "indices[2]: expected sorted class indices without repeats, got 4"
    );
    assert_eq!(
        message(vec![3, 1]),
        "indices[1]: expected sorted class indices without repeats, got 1"
    );
    assert_eq!(
        message(vec![1, 10]),
        "indices[1]: expected a class index below the number of classes, got 10"
    );
}

#[test]
fn sampler_errors() {
    for rate in [0.0, -0.5, 1.5, f64::NAN] {
        let e = PartialFc::new(rate).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidOption {
                    name: "sample_rate",
                    ..
                }
            ),
            "{e}"
        );
    }
    assert_eq!(
        PartialFc::new(0.0).unwrap_err().to_string(),
        "option `sample_rate`: expected a number in (0, 1], got 0"
    );
    let pfc = PartialFc::new(0.5).unwrap();
    assert_eq!(
        pfc.sample(&array![0_usize], 0, 1).unwrap_err().to_string(),
        "option `classes`: expected an integer >= 1, got 0"
    );
    assert_eq!(
        pfc.sample(&array![0_usize, 12], 10, 1)
            .unwrap_err()
            .to_string(),
        "labels[1]: label 12 is out of range for 10 classes (expected 0..=9)"
    );
}

#[test]
fn gather_and_scatter_move_the_sampled_rows() {
    let s = SampledClasses::new(vec![0, 2, 3], 4).unwrap();
    let w = array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]];
    let g = s.gather(w.view()).unwrap();
    assert_eq!(g, array![[1.0, 2.0], [5.0, 6.0], [7.0, 8.0]]);
    let mut full = Array2::from_elem((4, 2), -1.0);
    s.scatter(g.view(), full.view_mut()).unwrap();
    assert_eq!(
        full,
        array![[1.0, 2.0], [-1.0, -1.0], [5.0, 6.0], [7.0, 8.0]]
    );
    let e = s.gather(w.slice(ndarray::s![..3, ..])).unwrap_err();
    assert_eq!(e.to_string(), "rows: expected shape [4], got [3]");
    let e = s
        .scatter(g.view(), Array2::zeros((4, 3)).view_mut())
        .unwrap_err();
    assert_eq!(e.to_string(), "full: expected shape [4, 2], got [4, 3]");
    let e = s.scatter(w.view(), full.view_mut()).unwrap_err();
    assert_eq!(e.to_string(), "sampled: expected shape [3, 2], got [4, 2]");
}

// ------------------------------------------------------------------------
// The angular head on sampled classes

/// Embeddings `(n, d)`, class weights `(c, d)`, labels, and a sample at
/// rate 0.4 of seed `seed`.
fn angular_batch(
    n: usize,
    c: usize,
    d: usize,
    seed: u64,
) -> (Array2<f64>, Array2<f64>, Array1<usize>, SampledClasses) {
    let (e, w, labels) = random_batch(n, c, d, seed, 1.5);
    let classes = PartialFc::new(0.4)
        .unwrap()
        .sample(&labels, c, seed)
        .unwrap();
    (e, w, labels, classes)
}

/// The labels' places in `classes`.
fn mapped(labels: &Array1<usize>, classes: &SampledClasses) -> Array1<usize> {
    labels.mapv(|y| classes.position(y).unwrap())
}

/// `grad` `(|S|, D)` scattered into a zero `(C, D)` matrix.
fn scattered(classes: &SampledClasses, grad: &Array2<f64>) -> Array2<f64> {
    let mut full = Array2::zeros((classes.classes(), grad.ncols()));
    classes.scatter(grad.view(), full.view_mut()).unwrap();
    full
}

#[test]
fn the_angular_head_on_sampled_classes_is_the_head_on_the_gathered_rows() {
    let (n, c, d) = (8, 20, 4);
    let (e, w, labels, classes) = angular_batch(n, c, d, 5);
    assert!(classes.len() < c);
    let gathered = w.select(Axis(0), classes.indices());
    let y = mapped(&labels, &classes);
    let input = SampledEmbeddings {
        embeddings: e.view(),
        weight: w.view(),
        classes: &classes,
    };
    let arc = ArcFace::new()
        .with_scale(8.0)
        .unwrap()
        .with_margin(0.4)
        .unwrap();
    for r in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        let head = AngularMarginHead::new(arc.clone().with_reduction(r))
            .with_chunk_rows(3)
            .unwrap();
        let partial = OnSampledClasses::new(head.clone());
        let (value, grad) = partial.forward_backward(input, &labels).unwrap();
        let (want, want_grad) = head
            .forward_backward(embeddings(&e, &gathered), &y)
            .unwrap();
        // The same computation on the same rows: the same bits.
        assert_eq!(value.to_bits(), want.to_bits(), "{r}");
        assert_eq!(grad, want_grad, "{r}");
        assert_eq!(
            partial.per_sample(input, &labels).unwrap(),
            head.per_sample(embeddings(&e, &gathered), &y).unwrap()
        );
        assert_eq!(
            partial.forward(input, &labels).unwrap().to_bits(),
            value.to_bits()
        );
        // Scattered into (C, D): the full head's gradient on the gathered
        // rows, in rows S, and zero elsewhere.
        let full = scattered(&classes, &grad.weight);
        for (k, row) in full.rows().into_iter().enumerate() {
            match classes.position(k) {
                Some(p) => assert_eq!(row, want_grad.weight.row(p)),
                None => assert!(row.iter().all(|&v| v == 0.0), "row {k}"),
            }
        }
        // And the loss on the materialized cosines of the sampled classes.
        let (loss, loss_grad) = arc
            .clone()
            .with_reduction(r)
            .forward_backward(embeddings(&e, &gathered), &y)
            .unwrap();
        assert!(
            (loss - value).abs() < 1e-12 * (1.0 + loss.abs()),
            "{loss} vs {value}"
        );
        let diff = (&loss_grad.weight - &grad.weight)
            .iter()
            .fold(0.0_f64, |m, v| m.max(v.abs()));
        assert!(diff < 1e-12, "{diff}");
    }
}

#[test]
fn every_class_sampled_is_the_full_head() {
    let (e, w, labels) = random_batch(6, 9, 3, 17, 1.0);
    let all = PartialFc::new(1.0).unwrap().sample(&labels, 9, 3).unwrap();
    let head = AngularMarginHead::new(CosFace::new().with_scale(10.0).unwrap());
    let input = SampledEmbeddings {
        embeddings: e.view(),
        weight: w.view(),
        classes: &all,
    };
    let partial = OnSampledClasses::new(head.clone())
        .forward_backward(input, &labels)
        .unwrap();
    let full = head.forward_backward(embeddings(&e, &w), &labels).unwrap();
    assert_eq!(partial, full);
}

#[test]
fn contract() {
    let (e, w, labels, classes) = angular_batch(6, 10, 4, 23);
    let kinds: Vec<Box<dyn Fn(SampledAngular<f64>)>> = vec![
        Box::new(|args| {
            let arc = ArcFace::new()
                .with_scale(8.0)
                .unwrap()
                .with_margin(0.3)
                .unwrap();
            let head =
                OnSampledClasses::new(AngularMarginHead::new(arc).with_chunk_rows(4).unwrap());
            check_contract(&head, &Case::new("arcface, sampled", args));
        }),
        Box::new(|args| {
            let cos = CosFace::new().with_scale(8.0).unwrap();
            let head = OnSampledClasses::new(AngularMarginHead::new(cos));
            check_contract(&head, &Case::new("cosface, sampled", args));
        }),
        Box::new(|args| {
            let combined = CombinedMargin::new()
                .with_scale(8.0)
                .unwrap()
                .with_margins(1.2, 0.2, 0.1)
                .unwrap()
                .with_easy_margin(true);
            let head =
                OnSampledClasses::new(AngularMarginHead::new(combined).with_chunk_rows(1).unwrap());
            check_contract(&head, &Case::new("combined, sampled", args));
        }),
    ];
    for check in kinds {
        let args = Angular {
            e: e.clone(),
            w: w.clone(),
            labels: labels.clone(),
        };
        check(SampledAngular {
            args,
            classes: classes.clone(),
        });
    }
}

#[test]
fn angular_errors_name_the_argument() {
    let (e, w, labels, classes) = angular_batch(5, 12, 3, 29);
    let head = OnSampledClasses::new(AngularMarginHead::new(ArcFace::new()));
    let message = |w: &Array2<f64>, labels: &Array1<usize>, classes: &SampledClasses| {
        let input = SampledEmbeddings {
            embeddings: e.view(),
            weight: w.view(),
            classes,
        };
        head.forward(input, labels).unwrap_err().to_string()
    };
    assert_eq!(
        message(
            &w.slice(ndarray::s![..11, ..]).to_owned(),
            &labels,
            &classes
        ),
        "weight: expected shape [12, 3], got [11, 3]"
    );
    assert_eq!(
        message(&w, &labels.slice(ndarray::s![..4]).to_owned(), &classes),
        "labels: expected shape [5], got [4]"
    );
    let mut far = labels.clone();
    far[2] = 12;
    assert_eq!(
        message(&w, &far, &classes),
        "labels[2]: label 12 is out of range for 12 classes (expected 0..=11)"
    );
    let unsampled = (0..12).find(|&c| classes.position(c).is_none()).unwrap();
    let mut outside = labels.clone();
    outside[3] = unsampled;
    assert_eq!(
        message(&w, &outside, &classes),
        format!("labels[3]: expected a class among the sampled classes, got {unsampled}")
    );
    // The head's own errors, with the sampled rows' shape.
    let mut zero = w.clone();
    zero.row_mut(classes.indices()[1]).fill(0.0);
    assert_eq!(
        message(&zero, &labels, &classes),
        "weight[1]: expected a row with a nonzero norm, got 0"
    );
    let input = SampledEmbeddings {
        embeddings: e.view(),
        weight: w.view(),
        classes: &classes,
    };
    let mut grad = head.zeros_grad(input);
    assert_eq!(grad.weight.dim(), (classes.len(), 3));
    grad.weight = Array2::zeros((12, 3));
    let err = head
        .forward_backward_into(input, &labels, &mut grad)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "grad.weight: expected shape [{}, 3], got [12, 3]",
            classes.len()
        )
    );
}

// ------------------------------------------------------------------------
// The linear head on sampled classes

/// Hidden states `(n, d)`, a layer of `v` classes, labels with `-100` at
/// positions 1, 5, 9, ..., and a sample at rate 0.3 holding the labels.
struct LinearBatch {
    hidden: Array2<f64>,
    weight: Array2<f64>,
    bias: Array1<f64>,
    labels: Array1<i64>,
    classes: SampledClasses,
}

fn linear_batch(n: usize, d: usize, v: usize, seed: u64) -> LinearBatch {
    let labels = vector(random_labels(&[n], v, seed + 3)).mapv(|y| y as i64);
    let labels = Array1::from_iter(
        labels
            .iter()
            .enumerate()
            .map(|(i, &y)| if i % 4 == 1 { -100 } else { y }),
    );
    let pfc = PartialFc::new(0.3).unwrap().with_ignore_index(-100_i64);
    LinearBatch {
        hidden: matrix(random_array(&[n, d], seed, 1.5)),
        weight: matrix(random_array(&[v, d], seed + 1, 1.0)),
        bias: vector(random_array(&[v], seed + 2, 0.5)),
        classes: pfc.sample(&labels, v, seed).unwrap(),
        labels,
    }
}

/// `head` with every option of the linear head set (class weights, the
/// ignored label, smoothing, z-loss, soft cap).
fn linear_head(v: usize, r: Reduction) -> LinearCrossEntropy<f64> {
    LinearCrossEntropy::new()
        .with_reduction(r)
        .with_class_weight(Array1::from_shape_fn(v, |c| 0.5 + 0.25 * (c % 5) as f64))
        .and_then(|h| h.with_label_smoothing(0.1))
        .and_then(|h| h.with_z_loss(1e-2))
        .and_then(|h| h.with_softcap(Some(3.0)))
        .and_then(|h| h.with_chunk_rows(3))
        .unwrap()
        .with_ignore_index(-100_i64)
}

#[test]
fn the_linear_head_on_sampled_classes_is_the_head_on_the_gathered_rows() {
    let (n, d, v) = (10, 4, 23);
    let b = linear_batch(n, d, v, 7);
    let s = &b.classes;
    assert!(s.len() < v);
    let select = |a: &Array1<f64>| a.select(Axis(0), s.indices());
    let (gw, gb) = (b.weight.select(Axis(0), s.indices()), select(&b.bias));
    // Ignored labels stay ignored; the others become their place in S.
    let y = b.labels.mapv(|l| {
        if l < 0 {
            l
        } else {
            s.position(l as usize).unwrap() as i64
        }
    });
    for r in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        let head = linear_head(v, r);
        let on_gathered = head
            .clone()
            .with_class_weight(select(head.class_weight().unwrap()))
            .unwrap();
        let input = SampledLinearInput {
            hidden: b.hidden.view(),
            weight: b.weight.view(),
            bias: Some(b.bias.view()),
            classes: s,
        };
        let gathered = LinearInput {
            hidden: b.hidden.view(),
            weight: gw.view(),
            bias: Some(gb.view()),
        };
        let partial = OnSampledClasses::new(head);
        let (value, grad) = partial.forward_backward(input, &b.labels).unwrap();
        let (want, want_grad) = on_gathered.forward_backward(gathered, &y).unwrap();
        assert_eq!(value.to_bits(), want.to_bits(), "{r}");
        assert_eq!(grad, want_grad, "{r}");
        assert_eq!(
            partial.per_sample(input, &b.labels).unwrap(),
            on_gathered.per_sample(gathered, &y).unwrap()
        );
        let full = scattered(s, &grad.weight);
        assert_eq!(full.select(Axis(0), s.indices()), want_grad.weight);
        assert_eq!(
            full.sum_axis(Axis(1)).iter().filter(|&&x| x != 0.0).count(),
            s.len()
        );
        // Per-token weights come along with the mapped labels.
        let t = Array1::from_shape_fn(n, |i| (i % 3) as f64);
        let weighted = |labels| ClassTarget::WeightedLabels {
            labels,
            weights: t.view(),
        };
        let got = partial
            .forward_backward(input, weighted(Labels::from(&b.labels)))
            .unwrap();
        let want = on_gathered
            .forward_backward(gathered, weighted(Labels::from(&y)))
            .unwrap();
        assert_eq!(got, want, "{r}, token weights");
        // Probabilities: the head's own error.
        let probs = Array2::from_elem((n, v), 1.0 / v as f64);
        let e = partial
            .forward(input, ClassTarget::Probs(probs.view()))
            .unwrap_err();
        assert!(matches!(e, Error::UnsupportedTarget { .. }), "{e}");
    }
}

#[test]
fn linear_contract() {
    let (n, d, v) = (6, 3, 12);
    let b = linear_batch(n, d, v, 13);
    let head = OnSampledClasses::new(linear_head(v, Reduction::Mean));
    let w = head.head().class_weight().unwrap();
    // Without and with per-token weights (not differentiated).
    let tokens = Array1::from_shape_fn(n, |i| 0.5 + 0.5 * (i % 3) as f64);
    for token_weights in [None, Some(tokens)] {
        let t = |i: usize| token_weights.as_ref().map_or(1.0, |t| t[i]);
        let divisor: f64 = (b.labels.iter().enumerate())
            .filter(|&(_, &y)| y >= 0)
            .map(|(i, &y)| t(i) * w[y as usize])
            .sum();
        let what = format!("linear, sampled, token weights {token_weights:?}");
        let args = SampledLinear {
            args: Linear {
                hidden: b.hidden.clone(),
                weight: b.weight.clone(),
                bias: b.bias.clone(),
                labels: b.labels.clone(),
                token_weights,
            },
            classes: b.classes.clone(),
        };
        check_contract(&head, &Case::new(what, args).divisor(divisor));
    }
}

#[test]
fn linear_errors_name_the_argument() {
    let (n, d, v) = (5, 3, 9);
    let b = linear_batch(n, d, v, 19);
    let head = OnSampledClasses::new(linear_head(v, Reduction::Mean));
    let input = SampledLinearInput {
        hidden: b.hidden.view(),
        weight: b.weight.view(),
        bias: Some(b.bias.view()),
        classes: &b.classes,
    };
    let short = b.bias.slice(ndarray::s![..8]);
    let e = head
        .forward(
            SampledLinearInput {
                bias: Some(short),
                ..input
            },
            &b.labels,
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "bias: expected shape [9], got [8]");
    let narrow = OnSampledClasses::new(
        LinearCrossEntropy::new()
            .with_class_weight(array![1.0, 2.0])
            .unwrap(),
    );
    let labels = b.labels.mapv(|y| y.max(0));
    let all = PartialFc::new(1.0).unwrap().sample(&labels, v, 0).unwrap();
    let e = narrow
        .forward(
            SampledLinearInput {
                classes: &all,
                ..input
            },
            &labels,
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "class_weight: expected shape [9], got [2]");
    let unsampled = (0..v).find(|&c| b.classes.position(c).is_none()).unwrap();
    let mut outside = b.labels.clone();
    outside[0] = unsampled as i64;
    let e = head.forward(input, &outside).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("labels[0]: expected a class among the sampled classes, got {unsampled}")
    );
}
