//! One training run: minibatch Adam on one regime's training split with one
//! loss, then the metrics on the untouched test split.

use classloss::numerics::{sigmoid, softmax_into};
use ndarray::{Array1, Array2, ArrayView2, Axis, s};

use super::data::{CLASSES, class_counts};
use super::losses::{Entry, Objective, Reading, TrainInfo};
use super::metrics::{Scores, accuracy, scores};
use super::model::{Adam, Body, Head, Net};
use super::rng::Rng;

/// A training split (as the regime made it) and the untouched test split,
/// standardized with the training split's statistics.
pub struct Split {
    /// `(N_train, 64)`.
    pub x_train: Array2<f32>,
    /// Training labels, possibly noisy.
    pub y_train: Vec<usize>,
    /// `(N_test, 64)`.
    pub x_test: Array2<f32>,
    /// True test labels.
    pub y_test: Vec<usize>,
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
pub struct Run {
    /// Metrics on the test split after the last epoch.
    pub scores: Scores,
    /// Mean training loss of each epoch (in the loss's own units).
    pub train_loss: Vec<f64>,
    /// Test accuracy after each epoch.
    pub test_accuracy: Vec<f64>,
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

/// Trains one model with one loss; `seed` fixes initialization and batch
/// order.
pub fn train(
    split: &Split,
    entry: &Entry,
    body: Body,
    cfg: &Config,
    seed: u64,
) -> Result<Run, String> {
    let info = TrainInfo {
        class_counts: class_counts(&split.y_train, CLASSES),
    };
    let objective = (entry.build)(&info).map_err(|e| format!("{}: {e}", entry.name))?;
    let head = match &objective {
        Objective::Logits(_) => Head::Linear,
        Objective::Cosine { scale, .. } => Head::Cosine { scale: *scale },
    };
    let features = split.x_train.ncols();
    let mut net = Net::new(features, CLASSES, body, head, &mut Rng::derive(seed, 1));
    let mut order_rng = Rng::derive(seed, 2);

    // Buffers reused by every step: the batch and the loss's gradients.
    let batch = cfg.batch.min(split.y_train.len());
    let width = match body {
        Body::Identity => features,
        Body::Hidden(h) => h,
    };
    let mut xb = Array2::<f32>::zeros((batch, features));
    let mut yb = Array1::<usize>::zeros(batch);
    let mut g_logits = Array2::<f32>::zeros((batch, CLASSES));
    let mut g_z = Array2::<f32>::zeros((batch, width));
    let mut g_w = Array2::<f32>::zeros((CLASSES, width));

    let mut order: Vec<usize> = (0..split.y_train.len()).collect();
    let epochs = cfg.epochs(order.len());
    let mut train_loss = Vec::with_capacity(epochs);
    let mut test_accuracy = Vec::with_capacity(epochs);
    for _ in 0..epochs {
        order_rng.shuffle(&mut order);
        let mut total = 0.0;
        for chunk in order.chunks(batch) {
            let n = chunk.len();
            for (r, &i) in chunk.iter().enumerate() {
                xb.row_mut(r).assign(&split.x_train.row(i));
                yb[r] = split.y_train[i];
            }
            let y = yb.slice(s![..n]);
            let value = match &objective {
                Objective::Logits(loss) => {
                    net.features(xb.slice(s![..n, ..]));
                    let logits = net.logits();
                    let v = loss(logits.view(), y, g_logits.slice_mut(s![..n, ..]));
                    net.backward_logits(g_logits.slice(s![..n, ..]));
                    v
                }
                Objective::Cosine { loss, .. } => {
                    let z = net.features(xb.slice(s![..n, ..])).to_owned();
                    let v = loss(
                        z.view(),
                        net.class_matrix(),
                        y,
                        g_z.slice_mut(s![..n, ..]),
                        g_w.view_mut(),
                    );
                    net.backward_cosine(g_z.slice(s![..n, ..]), g_w.view());
                    v
                }
            }
            .map_err(|e| format!("{}: {e}", entry.name))?;
            net.step(&cfg.adam);
            total += f64::from(value) * n as f64;
        }
        train_loss.push(total / split.y_train.len() as f64);
        let (pred, _) = predict(net.scores(split.x_test.view()).view(), entry.reading);
        test_accuracy.push(accuracy(&pred, &split.y_test));
    }
    let test_scores = net.scores(split.x_test.view());
    let (pred, confidence) = predict(test_scores.view(), entry.reading);
    Ok(Run {
        scores: scores(&pred, &confidence, &split.y_test, CLASSES),
        train_loss,
        test_accuracy,
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
