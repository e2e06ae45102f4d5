//! One training run: minibatch Adam on one regime's training split with one
//! loss, then the metrics on the untouched test split.

use classloss::numerics::{sigmoid, softmax_into};
use classloss::small_loss_indices;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis, s};

use super::data::CLASSES;
use super::losses::{Entry, Objective, Reading, RowsFn, Stage, TrainInfo};
use super::metrics::{
    MultiScores, Scores, accuracy, mean_average_precision, multi_label_scores, scores,
};
use super::model::{Adam, Body, Head, Net};
use super::rng::Rng;

/// A training split (as the regime made it) and the untouched test split,
/// standardized with the training split's statistics.
pub struct Split {
    /// `(N_train, 64)`.
    pub x_train: Array2<f32>,
    /// Training labels, possibly noisy.
    pub y_train: Vec<usize>,
    /// The fraction of wrong training labels, for the losses that are told
    /// it (Co-teaching).
    pub noise_rate: f64,
    /// `(N_test, 64)`.
    pub x_test: Array2<f32>,
    /// True test labels.
    pub y_test: Vec<usize>,
}

/// A multi-label split: inputs with `(N, C)` 0/1 label sets for training,
/// for tuning the decision thresholds, and for testing.
pub struct MultiSplit {
    /// Training inputs and their label sets.
    pub train: (Array2<f32>, Array2<f32>),
    /// Held out from training, to pick each class's threshold.
    pub tune: (Array2<f32>, Array2<f32>),
    /// Built from test images only.
    pub test: (Array2<f32>, Array2<f32>),
}

/// What the training samples are labelled with.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    /// One class per sample.
    Labels(&'a [usize]),
    /// A 0/1 row of `C` per sample: a set of labels.
    Sets(ArrayView2<'a, f32>),
}

impl Targets<'_> {
    fn len(&self) -> usize {
        match self {
            Targets::Labels(y) => y.len(),
            Targets::Sets(t) => t.nrows(),
        }
    }

    /// Samples carrying each class.
    fn class_counts(&self) -> Vec<usize> {
        match self {
            Targets::Labels(y) => super::data::class_counts(y, CLASSES),
            Targets::Sets(t) => t
                .axis_iter(Axis(1))
                .map(|col| col.iter().filter(|&&v| v > 0.5).count())
                .collect(),
        }
    }
}

/// Training settings shared by every run.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Optimizer steps per run (rounded to whole epochs), the same for
    /// every regime so that the small long-tailed split is trained as long
    /// as the others.
    pub steps: usize,
    /// Minibatch size.
    pub batch: usize,
    /// The optimizer.
    pub adam: Adam,
}

impl Config {
    /// Whole epochs closest to `steps` optimizer steps on `n` images (at
    /// least one).
    pub fn epochs(&self, n: usize) -> usize {
        let per_epoch = n.div_ceil(self.batch.max(1)).max(1);
        ((self.steps as f64 / per_epoch as f64).round() as usize).max(1)
    }
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct Run<S> {
    /// Metrics on the test split after the last epoch.
    pub scores: S,
    /// Mean training loss of each epoch (in the loss's own units).
    pub train_loss: Vec<f64>,
    /// The test metric followed during training (accuracy, or mAP for
    /// label sets) after each epoch.
    pub test_curve: Vec<f64>,
}

/// Predicted classes and their confidences from class scores.
pub fn predict(scores: ArrayView2<'_, f32>, reading: Reading) -> (Vec<usize>, Vec<f64>) {
    let mut probs = vec![0.0_f32; scores.ncols()];
    let mut pred = Vec::with_capacity(scores.nrows());
    let mut confidence = Vec::with_capacity(scores.nrows());
    for row in scores.rows() {
        let owned;
        let row = match row.as_slice() {
            Some(r) => r,
            None => {
                owned = row.to_vec();
                &owned
            }
        };
        let best = (1..row.len()).fold(0, |b, c| if row[c] > row[b] { c } else { b });
        let p = match reading {
            Reading::Softmax => {
                softmax_into(row, &mut probs);
                probs[best]
            }
            Reading::Sigmoid => sigmoid(row[best]),
        };
        pred.push(best);
        confidence.push(f64::from(p));
    }
    (pred, confidence)
}

/// A trained model, its training loss per epoch and the values of
/// `after_epoch` (called with the model after each epoch).
struct Fitted {
    net: Net,
    train_loss: Vec<f64>,
    curve: Vec<f64>,
}

/// Minibatch Adam on `(x, y)` with one loss, told the fraction of wrong
/// labels `noise_rate`; `seed` fixes initialization and batch order.
fn fit(
    (x, y, noise_rate): (&Array2<f32>, Targets<'_>, f64),
    entry: &Entry,
    body: Body,
    cfg: &Config,
    seed: u64,
    mut after_epoch: impl FnMut(&mut Net) -> f64,
) -> Result<Fitted, String> {
    let named = |e: String| format!("{}: {e}", entry.name);
    let info = TrainInfo {
        class_counts: y.class_counts(),
        noise_rate,
    };
    let objective = (entry.build)(&info).map_err(|e| named(e.to_string()))?;
    let head = match &objective {
        Objective::Logits(_) | Objective::Targets(_) | Objective::CoTeaching { .. } => Head::Linear,
        Objective::Cosine { scale, .. } => Head::Cosine { scale: *scale },
    };
    let features = x.ncols();
    let mut net = Net::new(features, CLASSES, body, head, &mut Rng::derive(seed, 1));
    // Co-teaching's second network, initialized differently.
    let mut peer = matches!(objective, Objective::CoTeaching { .. })
        .then(|| Net::new(features, CLASSES, body, head, &mut Rng::derive(seed, 10)));
    let mut g_peer = Array2::<f32>::zeros((cfg.batch.min(y.len()), CLASSES));
    let mut order_rng = Rng::derive(seed, 2);

    // Buffers reused by every step: the batch and the loss's gradients.
    let n_train = y.len();
    let batch = cfg.batch.min(n_train);
    let width = match body {
        Body::Identity => features,
        Body::Hidden(h) => h,
    };
    let mut xb = Array2::<f32>::zeros((batch, features));
    let mut yb = Array1::<usize>::zeros(batch);
    let mut tb = Array2::<f32>::zeros((batch, CLASSES));
    let mut g_logits = Array2::<f32>::zeros((batch, CLASSES));
    let mut g_z = Array2::<f32>::zeros((batch, width));
    let mut g_w = Array2::<f32>::zeros((CLASSES, width));

    let mut order: Vec<usize> = (0..n_train).collect();
    let epochs = cfg.epochs(n_train);
    let mut train_loss = Vec::with_capacity(epochs);
    let mut curve = Vec::with_capacity(epochs);
    for epoch in 0..epochs {
        let stage = Stage { epoch, epochs };
        order_rng.shuffle(&mut order);
        let mut total = 0.0;
        for chunk in order.chunks(batch) {
            let n = chunk.len();
            for (r, &i) in chunk.iter().enumerate() {
                xb.row_mut(r).assign(&x.row(i));
                match y {
                    Targets::Labels(labels) => yb[r] = labels[i],
                    Targets::Sets(sets) => tb.row_mut(r).assign(&sets.row(i)),
                }
            }
            let labels = yb.slice(s![..n]);
            let value = match (&objective, y) {
                (Objective::Logits(loss), Targets::Labels(_)) => {
                    net.features(xb.slice(s![..n, ..]));
                    let logits = net.logits();
                    let v = loss(
                        logits.view(),
                        labels,
                        g_logits.slice_mut(s![..n, ..]),
                        stage,
                    );
                    net.backward_logits(g_logits.slice(s![..n, ..]));
                    v
                }
                (Objective::Targets(loss), Targets::Sets(_)) => {
                    net.features(xb.slice(s![..n, ..]));
                    let logits = net.logits();
                    let t = tb.slice(s![..n, ..]);
                    let v = loss(logits.view(), t, g_logits.slice_mut(s![..n, ..]), stage);
                    net.backward_logits(g_logits.slice(s![..n, ..]));
                    v
                }
                (Objective::Cosine { loss, .. }, Targets::Labels(_)) => {
                    let z = net.features(xb.slice(s![..n, ..])).to_owned();
                    let v = loss(
                        z.view(),
                        net.class_matrix(),
                        labels,
                        g_z.slice_mut(s![..n, ..]),
                        g_w.view_mut(),
                        stage,
                    );
                    net.backward_cosine(g_z.slice(s![..n, ..]), g_w.view());
                    v
                }
                (Objective::CoTeaching { loss, schedule }, Targets::Labels(_)) => {
                    let peer = peer
                        .as_mut()
                        .ok_or("Co-teaching without its second network")?;
                    let forget = schedule.forget_rate(epoch);
                    let (g_a, g_b) = (
                        g_logits.slice_mut(s![..n, ..]),
                        g_peer.slice_mut(s![..n, ..]),
                    );
                    co_teaching_step(
                        [&mut net, peer],
                        loss,
                        xb.slice(s![..n, ..]),
                        labels,
                        [g_a, g_b],
                        forget,
                    )
                }
                _ => return Err(named("trains on the other kind of targets".to_string())),
            }
            .map_err(|e| named(e.to_string()))?;
            net.step(&cfg.adam);
            if let Some(peer) = peer.as_mut() {
                peer.step(&cfg.adam);
            }
            total += f64::from(value) * n as f64;
        }
        train_loss.push(total / n_train as f64);
        curve.push(after_epoch(&mut net));
    }
    Ok(Fitted {
        net,
        train_loss,
        curve,
    })
}

/// One step of Co-teaching (Han et al. 2018): each network takes the
/// per-sample losses of the batch, and each learns only from the
/// `1 - forget` fraction of the samples on which its peer's loss is
/// smallest. Returns the first network's mean loss on what it learned from.
fn co_teaching_step(
    mut nets: [&mut Net; 2],
    loss: &RowsFn,
    x: ArrayView2<'_, f32>,
    labels: ArrayView1<'_, usize>,
    mut grads: [ArrayViewMut2<'_, f32>; 2],
    forget: f64,
) -> classloss::Result<f32> {
    let mut per = Vec::with_capacity(2);
    for (net, g) in nets.iter_mut().zip(grads.iter_mut()) {
        net.features(x);
        per.push(loss(net.logits().view(), labels, g.view_mut())?);
    }
    // Network k learns from the samples its peer (1 - k) picked.
    let kept = [
        small_loss_indices(&per[1], forget)?,
        small_loss_indices(&per[0], forget)?,
    ];
    for ((net, g), keep) in nets.into_iter().zip(grads.iter_mut()).zip(&kept) {
        let mut mask = Array1::<f32>::zeros(g.nrows());
        for &i in keep {
            mask[i] = 1.0 / keep.len() as f32;
        }
        *g *= &mask.view().insert_axis(Axis(1));
        net.backward_logits(g.view());
    }
    Ok(kept[0].iter().map(|&i| per[0][i]).sum::<f32>() / kept[0].len().max(1) as f32)
}

/// Trains one model with one loss on class labels and measures it on the
/// test split; `seed` fixes initialization and batch order.
pub fn train(
    split: &Split,
    entry: &Entry,
    body: Body,
    cfg: &Config,
    seed: u64,
) -> Result<Run<Scores>, String> {
    let test_accuracy = |net: &mut Net| {
        let (pred, _) = predict(net.scores(split.x_test.view()).view(), entry.reading);
        accuracy(&pred, &split.y_test)
    };
    let labels = Targets::Labels(&split.y_train);
    let data = (&split.x_train, labels, split.noise_rate);
    let mut fitted = fit(data, entry, body, cfg, seed, test_accuracy)?;
    let test_scores = fitted.net.scores(split.x_test.view());
    let (pred, confidence) = predict(test_scores.view(), entry.reading);
    Ok(Run {
        scores: scores(&pred, &confidence, &split.y_test, CLASSES),
        train_loss: fitted.train_loss,
        test_curve: fitted.curve,
    })
}

/// Trains one model with one loss on label sets, picks each class's
/// threshold on the held-out split and measures it on the test split.
pub fn train_multi(
    split: &MultiSplit,
    entry: &Entry,
    body: Body,
    cfg: &Config,
    seed: u64,
) -> Result<Run<MultiScores>, String> {
    let (x_test, t_test) = (&split.test.0, &split.test.1);
    // A NaN in the curve marks a run whose scores were no longer finite.
    let test_map = |net: &mut Net| {
        mean_average_precision(net.scores(x_test.view()).view(), t_test.view()).unwrap_or(f64::NAN)
    };
    let sets = Targets::Sets(split.train.1.view());
    let mut fitted = fit(
        (&split.train.0, sets, 0.0),
        entry,
        body,
        cfg,
        seed,
        test_map,
    )?;
    let tune_scores = fitted.net.scores(split.tune.0.view());
    let test_scores = fitted.net.scores(x_test.view());
    let scores = multi_label_scores(
        (tune_scores.view(), split.tune.1.view()),
        (test_scores.view(), t_test.view()),
    )
    .map_err(|e| format!("{}: {e}", entry.name))?;
    Ok(Run {
        scores,
        train_loss: fitted.train_loss,
        test_curve: fitted.curve,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_give_about_the_same_number_of_steps() {
        let cfg = Config {
            steps: 1600,
            batch: 32,
            adam: Adam::default(),
        };
        assert_eq!(cfg.epochs(1258), 40); // 40 batches per epoch
        assert_eq!(cfg.epochs(250), 200); // 8 batches per epoch
        assert_eq!(cfg.epochs(1), 1600);
        assert_eq!(Config { steps: 1, ..cfg }.epochs(10_000), 1);
    }

    #[test]
    fn predict_reads_softmax_or_sigmoid_confidence() {
        let scores = ndarray::array![[0.0_f32, 2.0_f32.ln()], [3.0, 0.0]];
        let (pred, conf) = predict(scores.view(), Reading::Softmax);
        assert_eq!(pred, vec![1, 0]);
        assert!((conf[0] - 2.0 / 3.0).abs() < 1e-6);
        let (_, conf) = predict(scores.view(), Reading::Sigmoid);
        assert!((conf[1] - 1.0 / (1.0 + (-3.0_f64).exp())).abs() < 1e-6);
    }

    /// Softmax regression on the digits with 40% of the training labels
    /// wrong, trained by the loss named `name` of the table.
    fn noisy_digits_accuracy(name: &str) -> f64 {
        use super::super::data::{self, read_digits_gz, stratified_split, symmetric_noise};
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/digits.csv.gz");
        let all = read_digits_gz(&path).unwrap();
        let (fit_idx, test) = stratified_split(&all.labels, CLASSES, 0.3, &mut Rng::new(1));
        let pick = |idx: &[usize]| idx.iter().map(|&i| all.labels[i]).collect::<Vec<_>>();
        let y_train = symmetric_noise(&pick(&fit_idx), CLASSES, 0.4, &mut Rng::new(2));
        let (mut x_train, mut x_test) = (
            data::rows(&all.pixels, &fit_idx),
            data::rows(&all.pixels, &test),
        );
        data::standardize(&mut x_train, &mut [&mut x_test]);
        let split = Split {
            x_train,
            y_train,
            noise_rate: 0.4,
            x_test,
            y_test: pick(&test),
        };
        let table = super::super::losses::table();
        let entry = table.iter().find(|e| e.name == name).unwrap();
        let cfg = Config {
            steps: 800,
            batch: 32,
            adam: Adam::default(),
        };
        train(&split, entry, Body::Identity, &cfg, 3)
            .unwrap()
            .scores
            .accuracy
    }

    #[test]
    fn co_teaching_beats_cross_entropy_on_noisy_labels() {
        // Each network must learn from its peer's selection: a peer left
        // untrained picks at random and falls far below cross-entropy.
        let (ce, co) = (
            noisy_digits_accuracy("cross-entropy"),
            noisy_digits_accuracy("Co-teaching"),
        );
        assert!(co > ce + 0.03, "Co-teaching {co} vs cross-entropy {ce}");
    }

    #[test]
    fn mean_curve_averages_epoch_by_epoch() {
        assert_eq!(mean_curve(&[&[1.0, 2.0], &[3.0, 4.0, 9.0]]), vec![2.0, 3.0]);
    }
}

/// Mean over runs of a per-epoch series.
pub fn mean_curve(curves: &[&[f64]]) -> Vec<f64> {
    let len = curves.iter().map(|c| c.len()).min().unwrap_or(0);
    let stacked = Array2::from_shape_fn((curves.len(), len), |(r, e)| curves[r][e]);
    stacked
        .mean_axis(Axis(0))
        .map(|m| m.to_vec())
        .unwrap_or_default()
}
