//! Center loss (Wen et al., ECCV 2016) and its center update.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Ix1, Zip};

use crate::base::labels::Labels;
use crate::base::loss::{Call, Compute, Exact, Signature};
use crate::base::options::loss_options;
use crate::base::reduction::{Sum, Totals};
use crate::base::validate::{expect_nonempty, expect_samples_and_features, expect_shape};
use crate::{Float, Result};

/// The input of the center loss: the features and the class centers they
/// are pulled toward.
///
/// The centers are an input without a gradient: they are owned by the
/// caller and moved by [`CenterLoss::update_centers`], as in the paper.
#[derive(Clone, Copy, Debug)]
pub struct CenterInput<'a, F> {
    /// One feature vector (the network's last hidden layer) per sample, `(N, D)`.
    pub features: ArrayView2<'a, F>,
    /// One center per class, `(C, D)`.
    pub centers: ArrayView2<'a, F>,
}

loss_options! {
    /// The center loss: half the squared distance of each feature to the
    /// center of its class.
    ///
    /// Use it next to a softmax loss to make features of a class compact (the
    /// softmax separates classes but leaves each class spread out), for face
    /// recognition and other tasks that compare features rather than class
    /// scores. On its own it collapses every feature and center to one point;
    /// the softmax term prevents that.
    ///
    /// # Formula
    /// ```text
    /// l_i            = 0.5 |x_i - c_{y_i}|^2
    /// d l_i / d x_i  = x_i - c_{y_i}
    /// update (paper): c_j <- c_j - alpha * sum_{i: y_i = j} (c_j - x_i) / (1 + n_j)
    /// ```
    /// `n_j` is the number of samples of class `j` in the batch; a class absent
    /// from the batch keeps its center.
    ///
    /// # Training with cross-entropy
    /// The paper trains `L = L_S + lambda L_C`, the softmax (cross-entropy)
    /// loss of the classifier on the features plus `lambda` times this loss
    /// (`lambda = 0.003` and `alpha = 0.5` in its face experiments). Each step:
    /// the features' gradient is the classifier's back-propagated gradient plus
    /// `lambda` times this loss's gradient, and the centers move by
    /// [`CenterLoss::update_centers`] (not by the optimizer):
    /// ```
    /// use classloss::{CenterInput, CenterLoss, CrossEntropy, Differentiable};
    /// use ndarray::array;
    ///
    /// let features = array![[1.0_f64, 0.0], [0.8, 0.4], [-1.0, 0.5]]; // from the network
    /// let labels = array![0_usize, 0, 1];
    /// let classifier = array![[1.0, 0.0], [-1.0, 0.0]];               // (C, D)
    /// let mut centers = array![[0.5, 0.0], [-0.5, 0.5]];              // owned by the caller
    /// let lambda = 0.003;
    ///
    /// // L_S: cross-entropy on the classifier's logits, back-propagated to the features.
    /// let logits = features.dot(&classifier.t());
    /// let (l_s, d_logits) = CrossEntropy::new()
    ///     .forward_backward(logits.view(), labels.view())?;
    /// // L_C: the center loss on the same features.
    /// let center = CenterLoss::new();
    /// let input = CenterInput { features: features.view(), centers: centers.view() };
    /// let (l_c, d_features_c) = center.forward_backward(input, labels.view())?;
    ///
    /// let loss = l_s + lambda * l_c;
    /// let d_features = d_logits.dot(&classifier) + lambda * &d_features_c; // into the network
    /// center.update_centers(features.view(), labels.view(), centers.view_mut())?;
    ///
    /// // l_c = (0.5 * 0.25 + 0.5 * 0.25 + 0.5 * 0.25) / 3
    /// assert!((l_c - 0.125).abs() < 1e-12);
    /// assert!((loss - (l_s + 0.000375)).abs() < 1e-15);
    /// assert_eq!(d_features.dim(), (3, 2));
    /// // class 0: c - 0.5 * ((c - x_0) + (c - x_1)) / 3 with c = [0.5, 0]
    /// assert!((centers[[0, 0]] - (0.5 - 0.5 * (-0.5 - 0.3) / 3.0)).abs() < 1e-15);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # Shapes
    /// - input: [`CenterInput`] `{ features (N, D), centers (C, D) }`.
    /// - target: labels `(N)` in `0..C`; per-sample `(N)`.
    /// - gradient: `(N, D)`, for the features only.
    /// - `Mean` divides by `N`.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `alpha`: the center learning rate of [`CenterLoss::update_centers`],
    ///   in `(0, 1]` (default 0.5).
    ///
    /// # Errors
    /// An empty batch or feature axis; centers with another `D` than the
    /// features; labels of the wrong length or `>= C`; a gradient (or centers)
    /// buffer of the wrong shape; an `alpha` outside `(0, 1]`.
    ///
    /// # Examples
    /// ```
    /// use classloss::{CenterInput, CenterLoss, Loss, Reduction};
    /// use ndarray::array;
    ///
    /// let features = array![[1.0_f64, 2.0], [0.0, 0.0]];
    /// let centers = array![[1.0, 0.0], [3.0, 4.0]];
    /// let labels = array![0_usize, 1];
    /// let center = CenterLoss::new().with_reduction(Reduction::Sum);
    /// let input = CenterInput { features: features.view(), centers: centers.view() };
    /// assert_eq!(center.forward(input, labels.view())?, 0.5 * 4.0 + 0.5 * 25.0);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// Y. Wen, K. Zhang, Z. Li, Y. Qiao, "A Discriminative Feature Learning
    /// Approach for Deep Face Recognition", ECCV 2016,
    /// <https://doi.org/10.1007/978-3-319-46478-7_31>.
    #[derive(PartialEq)]
    pub struct CenterLoss {
        /// The center learning rate `alpha`.
        alpha: f64 = 0.5,
            /// Sets the center learning rate `alpha` in `(0, 1]` (default 0.5).
            set with_alpha checked by positive_at_most_one;
    }

    /// The center loss with mean reduction and `alpha` 0.5.
    fn new();
}

impl CenterLoss {
    /// Moves each center toward the features of its class in the batch, by
    /// the paper's rule
    /// `c_j <- c_j - alpha * sum_{i: y_i = j} (c_j - x_i) / (1 + n_j)`.
    ///
    /// Equivalently `c_j` moves a fraction `alpha n_j / (1 + n_j)` of the way
    /// to the mean of its class's features; centers of classes absent from
    /// the batch are left exactly as they are. Call it once per step, after
    /// (or before) computing the loss on the same `features`.
    ///
    /// # Errors
    /// As the loss: empty features, centers with another `D`, labels of the
    /// wrong length or `>= C`. The centers are unchanged on error.
    pub fn update_centers<'a, F: Float>(
        &self,
        features: ArrayView2<'_, F>,
        labels: impl Into<Labels<'a>>,
        mut centers: ArrayViewMut2<'_, F>,
    ) -> Result<()> {
        let labels = labels.into();
        check_inputs(&features, &centers.view(), &labels)?;
        let (c, d) = centers.dim();
        let mut counts = vec![0_usize; c];
        for i in 0..labels.len() {
            counts[labels.class(i)] += 1_usize;
        }
        // The new center is the convex combination
        //   c_j (1 - alpha n_j / (1 + n_j)) + alpha / (1 + n_j) sum x_i,
        // which lies within the range of its inputs. It is accumulated in
        // f64 per class of the batch (a scratch of at most N x D), on
        // halved values so that no partial sum passes f64's range, and
        // clamped to F's: rounding can take a combination of values at
        // F's maximum a hair above it (inf in F, though exactly it fits).
        let mut slot = vec![usize::MAX; c];
        let mut classes = Vec::new();
        for (j, &n) in counts.iter().enumerate() {
            if n > 0 {
                slot[j] = classes.len();
                classes.push(j);
            }
        }
        let step = |n: usize| self.alpha / (1 + n) as f64;
        let mut acc = vec![0.0_f64; classes.len() * d];
        for (i, x) in features.rows().into_iter().enumerate() {
            let y = labels.class(i);
            let a = step(counts[y]);
            let row = &mut acc[slot[y] * d..(slot[y] + 1) * d];
            for (s, &v) in row.iter_mut().zip(&x) {
                *s += a * (0.5 * v.as_f64());
            }
        }
        let max = F::max_value().as_f64();
        for (k, &j) in classes.iter().enumerate() {
            let keep = 1.0 - step(counts[j]) * counts[j] as f64;
            let sums = &acc[k * d..(k + 1) * d];
            for (v, &s) in centers.row_mut(j).iter_mut().zip(sums) {
                let half = 0.5 * v.as_f64() * keep + s;
                let new = 2.0 * half;
                // An infinite or NaN input propagates: only a finite half
                // is clamped.
                *v = F::lit(if half.is_finite() {
                    new.clamp(-max, max)
                } else {
                    new
                });
            }
        }
        Ok(())
    }
}

/// The checks shared by the loss and the update.
fn check_inputs<F: Float>(
    features: &ArrayView2<'_, F>,
    centers: &ArrayView2<'_, F>,
    labels: &Labels<'_>,
) -> Result<()> {
    expect_samples_and_features("features", features.shape())?;
    expect_nonempty("centers", centers.shape(), 0, "class")?;
    let (n, d) = features.dim();
    let c = centers.nrows();
    expect_shape("centers", centers.shape(), &[c, d])?;
    labels.expect_shape("labels", &[n])?;
    labels.check("labels", c, None)
}

/// The signature of the center loss: features and centers, labels `(N)`,
/// a gradient for the features.
pub struct FeaturesAndCenters;

impl<F: Float> Signature<F> for FeaturesAndCenters {
    type Input<'a> = CenterInput<'a, F>;
    type Target<'a> = Labels<'a>;
    type Samples = Ix1;
    type Grad = Array2<F>;
    type GradMut<'g> = ArrayViewMut2<'g, F>;

    fn samples(input: &Self::Input<'_>) -> Ix1 {
        Ix1(input.features.nrows())
    }
    fn zeros_grad(input: &Self::Input<'_>) -> Array2<F> {
        Array2::zeros(input.features.raw_dim())
    }
    fn grad_view_mut(grad: &mut Array2<F>) -> ArrayViewMut2<'_, F> {
        grad.view_mut()
    }
    fn reborrow<'s>(grad: &'s mut Self::GradMut<'_>) -> Self::GradMut<'s> {
        grad.view_mut()
    }
    fn scale_grad(grad: &mut Self::GradMut<'_>, factor: F) {
        *grad *= factor;
    }
    fn all_finite(input: &Self::Input<'_>) -> bool {
        let finite = |v: &F| v.is_finite();
        input.features.iter().all(finite) && input.centers.iter().all(finite)
    }
}

impl Exact for FeaturesAndCenters {}

impl<F: Float> Compute<F> for CenterLoss {
    type Sig = FeaturesAndCenters;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let Call {
            input,
            target: labels,
            mut grad,
            mut per,
        } = call;
        let (x, centers) = (input.features, input.centers);
        check_inputs(&x, &centers, &labels)?;
        if let Some(g) = &grad {
            expect_shape("grad", g.shape(), x.shape())?;
        }
        let n = x.nrows();
        let scale: F = self.reduction.grad_scale(n as f64);
        let mut sum = Sum::default();
        for (i, row) in x.rows().into_iter().enumerate() {
            let c = centers.row(labels.class(i));
            // In f64: the squared distance of f32 features can exceed f32.
            let sq = row.iter().zip(&c).fold(0.0, |acc, (&a, &b)| {
                let d = a.as_f64() - b.as_f64();
                acc + d * d
            });
            let value = 0.5 * sq;
            sum.add::<F>(i, value);
            if let Some(p) = per.as_mut() {
                p[i] = F::lit(value);
            }
            if let Some(g) = grad.as_mut() {
                Zip::from(g.row_mut(i))
                    .and(&row)
                    .and(&c)
                    .for_each(|g, &a, &b| *g = scale * (a - b));
            }
        }
        Ok(Totals {
            sum,
            divisor: n as f64,
            what: "features",
        })
    }
}
