//! The losses compared: one entry per loss, built from the crate's public
//! API only. Adding a loss to the study is adding an entry to `table` (class
//! labels) or `multi_label_table` (label sets); an entry's `Objective`
//! says what it trains (a linear or cosine head, one network or
//! Co-teaching's two).

use classloss::{
    ArcFace, Asymmetric, BceWithLogits, ClassifierLoss, CoTeachingSchedule, CosFace, CrossEntropy,
    Differentiable, Embeddings, EmbeddingsGradMut, GeneralizedCrossEntropy, HardBootstrapping,
    LabelSets, LabelSmoothing, Labels, Ldam, LogitAdjusted, MultiLabelMargin, MultiLabelSoftMargin,
    OhemCrossEntropy, Poly1, Reduction, SigmoidFocal, SoftBootstrapping, SoftmaxFocal,
    SymmetricCrossEntropy, class_balanced_weights,
};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis};

use super::model::{cosines, cosines_backward};

/// Where training is, for the losses whose schedule changes with the
/// epoch (deferred re-weighting, Co-teaching's forget rate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage {
    /// The current epoch, from 0.
    pub epoch: usize,
    /// How many epochs the run has.
    pub epochs: usize,
}

/// Value and `d loss / d logits` for a batch with class labels, written
/// into a reused buffer.
pub type LogitsFn = Box<
    dyn Fn(
            ArrayView2<'_, f32>,
            ArrayView1<'_, usize>,
            ArrayViewMut2<'_, f32>,
            Stage,
        ) -> classloss::Result<f32>
        + Send
        + Sync,
>;

/// Value and `d loss / d logits` for a batch with `(N, C)` 0/1 targets
/// (label sets), written into a reused buffer.
pub type TargetsFn = Box<
    dyn Fn(
            ArrayView2<'_, f32>,
            ArrayView2<'_, f32>,
            ArrayViewMut2<'_, f32>,
            Stage,
        ) -> classloss::Result<f32>
        + Send
        + Sync,
>;

/// Value and the gradients for the features `(N, E)` and the class matrix
/// `(C, E)` of a cosine head, written into reused buffers.
pub type CosineFn = Box<
    dyn Fn(
            ArrayView2<'_, f32>,
            ArrayView2<'_, f32>,
            ArrayView1<'_, usize>,
            ArrayViewMut2<'_, f32>,
            ArrayViewMut2<'_, f32>,
            Stage,
        ) -> classloss::Result<f32>
        + Send
        + Sync,
>;

/// Per-sample values for a batch with class labels, and the gradient of
/// their sum (so each row's gradient is its own sample's), written into a
/// reused buffer.
pub type RowsFn = Box<
    dyn Fn(
            ArrayView2<'_, f32>,
            ArrayView1<'_, usize>,
            ArrayViewMut2<'_, f32>,
        ) -> classloss::Result<Array1<f32>>
        + Send
        + Sync,
>;

/// What a loss trains.
pub enum Objective {
    /// A linear head's logits, on class labels.
    Logits(LogitsFn),
    /// A cosine head at scale `s`, on class labels.
    Cosine {
        /// The scale used for the predictions' softmax confidences.
        scale: f32,
        /// The loss.
        loss: CosineFn,
    },
    /// A linear head's logits, on label sets.
    Targets(TargetsFn),
    /// Two linear-head networks trained by Co-teaching with `loss`, the
    /// first one measured.
    CoTeaching {
        /// The loss of every sample.
        loss: RowsFn,
        /// The forget rate of each epoch.
        schedule: CoTeachingSchedule,
    },
}

/// How a trained model's scores become a confidence for its prediction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// The largest softmax probability of the scores.
    Softmax,
    /// `sigmoid` of the largest score: the one-vs-all probability the model
    /// was trained to give for that class.
    Sigmoid,
}

/// What a loss may look at when it is built: the training split's labels as
/// the training code sees them (after subsampling or noise).
pub struct TrainInfo {
    /// Images per class in the training split (for label sets: how many
    /// samples carry each label).
    pub class_counts: Vec<usize>,
    /// The fraction of wrong training labels (0 for clean labels):
    /// Co-teaching assumes it known.
    pub noise_rate: f64,
}

/// One loss of the study.
pub struct Entry {
    /// Its name in the tables.
    pub name: &'static str,
    /// Its settings, printed once.
    pub settings: &'static str,
    /// How its model's confidence is read for the calibration error.
    pub reading: Reading,
    /// Builds the loss for one training split.
    pub build: fn(&TrainInfo) -> classloss::Result<Objective>,
}

/// A loss on `(N, C)` logits and `(N)` labels, as the softmax losses are
/// (cross-entropy included).
fn on_labels<L: ClassifierLoss<f32> + Send + Sync + 'static>(loss: L) -> LogitsFn {
    Box::new(move |x, y, g, _| loss.forward_backward_into(x, Labels::from(y), g))
}

/// A loss's per-sample values and per-row gradients on class labels;
/// `loss` must use `Reduction::Sum`, so that its gradient rows are the
/// samples' own.
fn per_row<L: ClassifierLoss<f32> + Send + Sync + 'static>(loss: L) -> RowsFn {
    Box::new(move |x, y, g| {
        loss.forward_backward_into(x, Labels::from(y), g)?;
        loss.per_sample(x, Labels::from(y))
    })
}

/// A loss on `(N, C)` logits and `(N, C)` targets of the same type: the
/// sigmoid family and the multi-label losses.
fn on_targets<L>(loss: L) -> TargetsFn
where
    L: for<'a> Differentiable<
            f32,
            Input<'a> = ArrayView2<'a, f32>,
            Target<'a> = ArrayView2<'a, f32>,
            GradMut<'a> = ArrayViewMut2<'a, f32>,
        > + Send
        + Sync
        + 'static,
{
    Box::new(move |x, t, g, _| loss.forward_backward_into(x, t, g))
}

/// The ranking loss on label sets: the classes of each 0/1 target row, as
/// lists.
fn on_label_sets(loss: MultiLabelMargin) -> TargetsFn {
    Box::new(move |x, t, g, _| {
        let sets: Vec<Vec<usize>> = t
            .rows()
            .into_iter()
            .map(|row| (0..row.len()).filter(|&c| row[c] > 0.5).collect())
            .collect();
        loss.forward_backward_into(x, LabelSets::from(&sets), g)
    })
}

/// A loss on targets trained one-vs-all on class labels: each class is a
/// binary problem with a one-hot target.
fn one_vs_all(loss: TargetsFn) -> LogitsFn {
    Box::new(move |x, y, g, stage| {
        // The (N, C) one-hot targets are built per batch; they are the
        // caller's data, not something the loss allocates.
        let mut one_hot = Array2::<f32>::zeros(x.raw_dim());
        for (r, &c) in y.iter().enumerate() {
            one_hot[[r, c]] = 1.0;
        }
        loss(x, one_hot.view(), g, stage)
    })
}

/// An angular-margin loss on a cosine head: the features and the class
/// matrix are its inputs, and it returns the gradients of both.
fn cosine_head<L>(scale: f64, loss: L) -> Objective
where
    L: for<'a> Differentiable<
            f32,
            Input<'a> = Embeddings<'a, f32>,
            Target<'a> = Labels<'a>,
            GradMut<'a> = EmbeddingsGradMut<'a, f32>,
        > + Send
        + Sync
        + 'static,
{
    Objective::Cosine {
        scale: scale as f32,
        loss: Box::new(move |z, w, y, g_z, g_w, _| {
            let input = Embeddings {
                embeddings: z,
                weight: w,
            };
            let grad = EmbeddingsGradMut {
                embeddings: g_z,
                weight: g_w,
            };
            loss.forward_backward_into(input, y, grad)
        }),
    }
}

/// A loss on logits applied to the cosines of a cosine head (a normalized
/// linear layer, as LDAM's paper trains it), differentiated back through
/// the normalization.
fn on_cosines(scale: f64, loss: LogitsFn) -> Objective {
    Objective::Cosine {
        scale: scale as f32,
        loss: Box::new(move |z, w, y, g_z, g_w, stage| {
            let cos = cosines(z, w);
            let mut g_cos = Array2::zeros(cos.raw_dim());
            let value = loss(cos.view(), y, g_cos.view_mut(), stage)?;
            cosines_backward(z, w, g_cos.view(), g_z, g_w);
            Ok(value)
        }),
    }
}

/// Deferred re-weighting (Cao et al. 2019): `loss` unweighted until the
/// fraction `from` of the epochs, then the weighted mean
/// `sum w_(y_i) l_i / sum w_(y_i)` (PyTorch's `weight=` mean) with one
/// weight per class. For losses without a `weight` option.
fn deferred_reweighting(loss: RowsFn, weights: Array1<f64>, from: f64) -> LogitsFn {
    Box::new(move |x, y, mut g, stage| {
        let late = stage.epoch as f64 >= from * stage.epochs as f64;
        let w: Array1<f32> = y
            .iter()
            .map(|&c| if late { weights[c] as f32 } else { 1.0 })
            .collect();
        let per = loss(x, y, g.view_mut())?;
        let total = w.sum();
        g *= &(&w / total).insert_axis(Axis(1));
        Ok(w.dot(&per) / total)
    })
}

/// As `f64` counts, for the losses that take `samples_per_class`.
fn counts_f64(info: &TrainInfo) -> Array1<f64> {
    info.class_counts.iter().map(|&n| n as f64).collect()
}

/// The cosine heads' scale: the papers' 64 is for thousands of identities;
/// ten classes reach a confident softmax at a much smaller scale (the
/// crate's `embeddings` example uses the same).
const COSINE_SCALE: f64 = 16.0;

/// LDAM's settings (the paper's for CIFAR-10): scale 30, largest margin
/// 0.5, re-weighting with class-balanced weights (beta 0.9999) deferred to
/// the last fifth of training (epoch 160 of 200 in the paper).
const LDAM_SCALE: f64 = 30.0;
const LDAM_DRW_BETA: f64 = 0.9999;
const LDAM_DRW_FROM: f64 = 0.8;

/// A loss on class labels trained on a linear head.
fn logits(loss: LogitsFn) -> classloss::Result<Objective> {
    Ok(Objective::Logits(loss))
}

/// Every loss of the single-label regimes, the baseline first.
pub fn table() -> Vec<Entry> {
    vec![
        Entry {
            name: "cross-entropy",
            settings: "CrossEntropy::new()",
            reading: Reading::Softmax,
            build: |_| logits(on_labels(CrossEntropy::new())),
        },
        Entry {
            name: "label smoothing",
            settings: "LabelSmoothing, epsilon 0.1, uniform (PyTorch) convention",
            reading: Reading::Softmax,
            build: |_| logits(on_labels(LabelSmoothing::new().with_epsilon(0.1)?)),
        },
        Entry {
            name: "sigmoid focal",
            settings: "SigmoidFocal one-vs-all on one-hot targets, gamma 2, no alpha; \
                       confidence = sigmoid of the top logit",
            reading: Reading::Sigmoid,
            build: |_| {
                logits(one_vs_all(on_targets(
                    SigmoidFocal::new().with_gamma(2.0)?.with_alpha(None)?,
                )))
            },
        },
        Entry {
            name: "softmax focal",
            settings: "SoftmaxFocal, gamma 2, alpha 1",
            reading: Reading::Softmax,
            build: |_| {
                logits(on_labels(
                    SoftmaxFocal::new().with_gamma(2.0)?.with_alpha(1.0)?,
                ))
            },
        },
        Entry {
            name: "class-balanced CE",
            settings: "CrossEntropy weighted by class_balanced_weights(train counts, beta 0.999)",
            reading: Reading::Softmax,
            build: |info| {
                let w = class_balanced_weights(&info.class_counts, 0.999)?;
                logits(on_labels(CrossEntropy::new().with_weight(w)?))
            },
        },
        Entry {
            name: "logit adjustment",
            settings: "LogitAdjusted on the train counts, tau 1 (balanced softmax); predicts with \
                       the raw logits",
            reading: Reading::Softmax,
            build: |info| {
                let la = LogitAdjusted::new().with_samples_per_class(counts_f64(info))?;
                logits(on_labels(la))
            },
        },
        Entry {
            name: "LDAM-DRW",
            settings: "Ldam on the train counts on a cosine head (no bias), scale 30, largest \
                       margin 0.5; deferred re-weighting by class_balanced_weights(beta 0.9999) \
                       over the last 20% of the epochs (the paper's); confidence = softmax of 30 cos",
            reading: Reading::Softmax,
            build: |info| {
                let ldam = Ldam::new()
                    .with_samples_per_class(counts_f64(info))?
                    .with_scale(LDAM_SCALE)?
                    .with_max_margin(0.5)?
                    .with_reduction(Reduction::Sum);
                let w = class_balanced_weights::<f64>(&info.class_counts, LDAM_DRW_BETA)?;
                Ok(on_cosines(
                    LDAM_SCALE,
                    deferred_reweighting(per_row(ldam), w, LDAM_DRW_FROM),
                ))
            },
        },
        Entry {
            name: "GCE",
            settings: "GeneralizedCrossEntropy, q 0.7",
            reading: Reading::Softmax,
            build: |_| logits(on_labels(GeneralizedCrossEntropy::new().with_q(0.7)?)),
        },
        Entry {
            name: "SCE",
            settings: "SymmetricCrossEntropy, alpha 0.1, beta 1, log_zero -4",
            reading: Reading::Softmax,
            build: |_| {
                logits(on_labels(
                    SymmetricCrossEntropy::new()
                        .with_alpha(0.1)?
                        .with_beta(1.0)?
                        .with_log_zero(-4.0)?,
                ))
            },
        },
        Entry {
            name: "Co-teaching",
            settings: "two networks (the first measured), each trained with CrossEntropy on the \
                       samples of smallest loss under the other; forget rate = noise rate * \
                       min(epoch / 10, 1) (the paper's, the noise rate known: 0 on clean labels)",
            reading: Reading::Softmax,
            build: |info| {
                Ok(Objective::CoTeaching {
                    loss: per_row(CrossEntropy::new().with_reduction(Reduction::Sum)),
                    schedule: CoTeachingSchedule::new(info.noise_rate)?.with_ramp_epochs(10)?,
                })
            },
        },
        Entry {
            name: "OHEM",
            settings: "OhemCrossEntropy, keep ratio 0.5 (the hardest 16 of each batch of 32)",
            reading: Reading::Softmax,
            build: |_| logits(on_labels(OhemCrossEntropy::new().with_keep_ratio(0.5)?)),
        },
        Entry {
            name: "Poly-1",
            settings: "Poly1, epsilon 1",
            reading: Reading::Softmax,
            build: |_| logits(on_labels(Poly1::new().with_epsilon(1.0)?)),
        },
        Entry {
            name: "soft bootstrapping",
            settings: "SoftBootstrapping, beta 0.95",
            reading: Reading::Softmax,
            build: |_| logits(on_labels(SoftBootstrapping::new().with_beta(0.95)?)),
        },
        Entry {
            name: "hard bootstrapping",
            settings: "HardBootstrapping, beta 0.8",
            reading: Reading::Softmax,
            build: |_| logits(on_labels(HardBootstrapping::new().with_beta(0.8)?)),
        },
        Entry {
            name: "ArcFace",
            settings: "ArcFace on a cosine head (no bias), scale 16, margin 0.5 (the paper's); \
                       confidence = softmax of 16 cos",
            reading: Reading::Softmax,
            build: |_| {
                let loss = ArcFace::new().with_scale(COSINE_SCALE)?.with_margin(0.5)?;
                Ok(cosine_head(COSINE_SCALE, loss))
            },
        },
        Entry {
            name: "CosFace",
            settings: "CosFace on a cosine head (no bias), scale 16, margin 0.35 (the paper's); \
                       confidence = softmax of 16 cos",
            reading: Reading::Softmax,
            build: |_| {
                let loss = CosFace::new().with_scale(COSINE_SCALE)?.with_margin(0.35)?;
                Ok(cosine_head(COSINE_SCALE, loss))
            },
        },
    ]
}

/// Every loss of the multi-label regime, the baseline first. The reading
/// is unused there (no single prediction to be confident in).
pub fn multi_label_table() -> Vec<Entry> {
    vec![
        Entry {
            name: "BCE",
            settings: "BceWithLogits::new(), one sigmoid per label",
            reading: Reading::Sigmoid,
            build: |_| Ok(Objective::Targets(on_targets(BceWithLogits::new()))),
        },
        Entry {
            name: "sigmoid focal",
            settings: "SigmoidFocal, gamma 2, no alpha",
            reading: Reading::Sigmoid,
            build: |_| {
                Ok(Objective::Targets(on_targets(
                    SigmoidFocal::new().with_gamma(2.0)?.with_alpha(None)?,
                )))
            },
        },
        Entry {
            name: "ASL",
            settings: "Asymmetric::new(): gamma_neg 4, gamma_pos 1, clip 0.05 (the paper's code)",
            reading: Reading::Sigmoid,
            build: |_| Ok(Objective::Targets(on_targets(Asymmetric::new()))),
        },
        Entry {
            name: "multi-label soft margin",
            settings: "MultiLabelSoftMargin::new(), no class weights",
            reading: Reading::Sigmoid,
            build: |_| Ok(Objective::Targets(on_targets(MultiLabelSoftMargin::new()))),
        },
        Entry {
            name: "ranking (label sets)",
            settings: "MultiLabelMargin::new() (PyTorch's MultiLabelMarginLoss): every label 1 above \
                       every other class; its scores are margins, not probabilities, so the untuned \
                       threshold (score 0) means nothing for it",
            reading: Reading::Sigmoid,
            build: |_| Ok(Objective::Targets(on_label_sets(MultiLabelMargin::new()))),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    const LOGITS: [[f32; 3]; 4] = [
        [1.0, -0.5, 0.2],
        [0.3, 0.8, -1.0],
        [-0.2, 0.1, 0.9],
        [2.0, 0.0, -2.0],
    ];

    fn close(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> bool {
        a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
    }

    #[test]
    fn deferred_reweighting_is_the_mean_then_the_weighted_mean() {
        let x = Array2::from(LOGITS.to_vec());
        let y = array![0_usize, 1, 2, 1];
        let w = array![0.5, 2.0, 1.0];
        let sum = CrossEntropy::new().with_reduction(Reduction::Sum);
        let drw = deferred_reweighting(per_row(sum), w.clone(), 0.5);
        let mut g = Array2::zeros(x.raw_dim());
        let mut want = Array2::zeros(x.raw_dim());
        // Before half of the epochs: cross-entropy's mean.
        let early = Stage {
            epoch: 4,
            epochs: 10,
        };
        let v = drw(x.view(), y.view(), g.view_mut(), early).unwrap();
        let mean = CrossEntropy::new()
            .forward_backward_into(&x, &y, &mut want)
            .unwrap();
        assert!((v - mean).abs() < 1e-6 && close(g.view(), want.view()));
        // From then on: PyTorch's class-weighted mean, as CrossEntropy's weight.
        let late = Stage {
            epoch: 5,
            epochs: 10,
        };
        let v = drw(x.view(), y.view(), g.view_mut(), late).unwrap();
        let weighted = CrossEntropy::new()
            .with_weight(w.mapv(|v| v as f32))
            .unwrap();
        let wmean = weighted.forward_backward_into(&x, &y, &mut want).unwrap();
        assert!((v - wmean).abs() < 1e-6 && close(g.view(), want.view()));
        assert!((v - mean).abs() > 1e-3);
    }

    #[test]
    fn the_ranking_loss_sees_each_row_as_the_set_of_its_ones() {
        let x = Array2::from(LOGITS.to_vec());
        let t = array![
            [1.0_f32, 0.0, 1.0],
            [0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0],
            [1.0, 1.0, 1.0]
        ];
        let padded = array![[0_i64, 2, -1], [1, -1, 0], [-1, 0, 0], [0, 1, 2]];
        let stage = Stage {
            epoch: 0,
            epochs: 1,
        };
        let mut g = Array2::zeros(x.raw_dim());
        let v = on_label_sets(MultiLabelMargin::new())(x.view(), t.view(), g.view_mut(), stage)
            .unwrap();
        let (want, want_g) = MultiLabelMargin::new()
            .forward_backward(x.view(), LabelSets::from(&padded))
            .unwrap();
        assert!((v - want).abs() < 1e-6 && close(g.view(), want_g.view()));
    }
}
