//! Per-class weights computed from the class frequencies: class-balanced
//! (effective number of samples), inverse and square-root inverse
//! frequency, all normalized to sum to the number of classes.

use ndarray::Array1;

use crate::base::validate::{check_option, expect_nonempty};
use crate::{Error, Float, Result};

/// Class-balanced weights from the number of training samples per class,
/// by the "effective number of samples" of Cui et al.
///
/// Use them against class imbalance as the `weight` of
/// [`crate::CrossEntropy::with_weight`] or the per-class `alpha` of
/// [`crate::SoftmaxFocal::with_class_alpha`]. Unlike inverse frequencies
/// they saturate: past a point, more samples of a class add little new
/// information, and `beta` sets where (`beta = 0` gives equal weights,
/// `beta -> 1` approaches inverse frequency).
///
/// # Formula
/// ```text
/// E_c = (1 - beta^n_c) / (1 - beta)          (effective number of class c)
/// w_c = (1 - beta) / (1 - beta^n_c) = 1 / E_c
/// w_c <- w_c * C / sum_k w_k                 (normalized to sum to C)
/// ```
/// `1 - beta^n` is computed as `-expm1(n ln(beta))`, which stays exact for
/// `beta` close to 1 (0.9999) where `1.0 - beta.powi(n)` loses digits.
/// Computed in `f64`, then converted to `F`.
///
/// # Shapes
/// `samples_per_class`: `C` counts (one per class, in class order);
/// the result: `C` weights summing to `C`.
///
/// # Errors
/// - `beta` outside `[0, 1)` (`beta = 1` would divide by zero).
/// - no classes (an empty `samples_per_class`).
/// - a count of 0: the effective number of no samples is 0 and its weight
///   infinite, and a class absent from the data cannot be balanced, so it
///   is an error (`samples_per_class[c]: expected a count >= 1, got 0`)
///   rather than a weight to guess. Drop the class, or count it as 1 if
///   its few samples arrive later.
///
/// # Examples
/// ```
/// use classloss::{class_balanced_weights, CrossEntropy};
///
/// let w = class_balanced_weights::<f64>(&[500, 50, 5], 0.999)?;
/// assert!((w[0] - 0.03411077374021973).abs() < 1e-12);
/// assert!((w[2] - 2.6907198111181385).abs() < 1e-12);
/// assert!((w.sum() - 3.0).abs() < 1e-12);
/// let ce = CrossEntropy::<f64>::new().with_weight(w)?;
/// # let _ = ce;
/// # Ok::<(), classloss::Error>(())
/// ```
///
/// # References
/// Y. Cui, M. Jia, T.-Y. Lin, Y. Song, S. Belongie, "Class-Balanced Loss
/// Based on Effective Number of Samples", CVPR 2019,
/// <https://arxiv.org/abs/1901.05555>.
pub fn class_balanced_weights<F: Float>(
    samples_per_class: &[usize],
    beta: f64,
) -> Result<Array1<F>> {
    check_option(
        "beta",
        beta,
        "a number in [0, 1)",
        (0.0..1.0).contains(&beta),
    )?;
    // ln(beta) = ln(1 + (beta - 1)); beta - 1 is exact for beta >= 0.5.
    // For beta = 0 it is -inf and every 1 - beta^n is 1, as it should be.
    let ln_beta = (beta - 1.0).ln_1p();
    // Each raw weight is in [1 - beta, 1], so the sum is positive.
    normalized(samples_per_class, |n| {
        (1.0 - beta) / -(n * ln_beta).exp_m1()
    })
}

/// Inverse-frequency class weights: `w_c` proportional to `1 / n_c`,
/// normalized to sum to `C`.
///
/// Use them against class imbalance as the `weight` of
/// [`crate::CrossEntropy::with_weight`] (or the per-class `alpha` of
/// [`crate::SoftmaxFocal::with_class_alpha`]): every class then carries the
/// same total weight in the training set. With a heavy tail they give the
/// rarest classes very large weights; [`sqrt_inverse_frequency_weights`]
/// and [`class_balanced_weights`] are the milder choices.
///
/// # Formula
/// ```text
/// w_c = (1 / n_c) * C / sum_k (1 / n_k)
/// ```
/// The same weights, up to one factor, as sklearn's
/// `compute_class_weight("balanced")`, `N / (C n_c)`: a weighted `Mean`
/// (which divides by the weights summed over the samples) is the same
/// with either; a `Sum` is scaled. Computed in `f64`, then converted to `F`.
///
/// # Shapes
/// `samples_per_class`: `C` counts (one per class, in class order);
/// the result: `C` weights summing to `C`, as [`class_balanced_weights`].
///
/// # Errors
/// As [`class_balanced_weights`]: no classes, or a count of 0 (its inverse
/// frequency is infinite: `samples_per_class[c]: expected a count >= 1,
/// got 0`).
///
/// # Examples
/// ```
/// use classloss::inverse_frequency_weights;
///
/// let w = inverse_frequency_weights::<f64>(&[300, 100, 50])?;
/// // 1/300 : 1/100 : 1/50 = 1 : 3 : 6, scaled to sum to 3.
/// assert!((w[0] - 0.3).abs() < 1e-15 && (w[1] - 0.9).abs() < 1e-15 && (w[2] - 1.8).abs() < 1e-15);
/// # Ok::<(), classloss::Error>(())
/// ```
///
/// # References
/// G. King and L. Zeng, "Logistic regression in rare events data",
/// Political Analysis 9(2), 2001; sklearn,
/// `sklearn.utils.class_weight.compute_class_weight`
/// (<https://scikit-learn.org/stable/modules/generated/sklearn.utils.class_weight.compute_class_weight.html>).
pub fn inverse_frequency_weights<F: Float>(samples_per_class: &[usize]) -> Result<Array1<F>> {
    normalized(samples_per_class, |n| 1.0 / n)
}

/// Square-root inverse-frequency class weights: `w_c` proportional to
/// `1 / sqrt(n_c)`, normalized to sum to `C`.
///
/// Use them where [`inverse_frequency_weights`] over-corrects a long tail
/// (the rarest class of a 100:1 split gets 10 times, not 100 times, the
/// weight of the most frequent).
///
/// # Formula
/// ```text
/// w_c = (1 / sqrt(n_c)) * C / sum_k (1 / sqrt(n_k))
/// ```
/// Computed in `f64`, then converted to `F`.
///
/// # Shapes
/// As [`inverse_frequency_weights`]: `C` counts in, `C` weights summing to
/// `C` out.
///
/// # Errors
/// As [`class_balanced_weights`]: no classes, or a count of 0.
///
/// # Examples
/// ```
/// use classloss::sqrt_inverse_frequency_weights;
///
/// let w = sqrt_inverse_frequency_weights::<f32>(&[400, 100, 4])?;
/// // 1/20 : 1/10 : 1/2 = 1 : 2 : 10, scaled to sum to 3.
/// assert!((w[0] - 0.23076923).abs() < 1e-7 && (w[2] - 2.3076923).abs() < 1e-6);
/// # Ok::<(), classloss::Error>(())
/// ```
///
/// # References
/// D. Mahajan et al., "Exploring the limits of weakly supervised
/// pretraining", ECCV 2018, <https://arxiv.org/abs/1805.00932> (square-root
/// resampling); Y. Cui et al., CVPR 2019 (section 2, re-weighting by the
/// inverse square root of the class frequency).
pub fn sqrt_inverse_frequency_weights<F: Float>(samples_per_class: &[usize]) -> Result<Array1<F>> {
    normalized(samples_per_class, |n| 1.0 / n.sqrt())
}

/// `raw(n_c)` for each class count, normalized to sum to `C`, after the
/// checks every count-based weighting shares: at least one class, no count
/// of 0. `raw` must be positive and finite for counts `>= 1`.
fn normalized<F: Float>(
    samples_per_class: &[usize],
    raw: impl Fn(f64) -> f64,
) -> Result<Array1<F>> {
    expect_nonempty("samples_per_class", &[samples_per_class.len()], 0, "class")?;
    if let Some(c) = samples_per_class.iter().position(|&n| n == 0) {
        return Err(Error::InvalidTarget {
            what: "samples_per_class",
            index: vec![c],
            value: 0.0,
            expected: "a count >= 1",
        });
    }
    let raw: Vec<f64> = samples_per_class.iter().map(|&n| raw(n as f64)).collect();
    let norm = samples_per_class.len() as f64 / raw.iter().sum::<f64>();
    Ok(raw.iter().map(|&w| F::lit(w * norm)).collect())
}
