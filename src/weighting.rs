//! Per-class weights computed from the class frequencies.

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
    expect_nonempty("samples_per_class", &[samples_per_class.len()], 0, "class")?;
    if let Some(c) = samples_per_class.iter().position(|&n| n == 0) {
        return Err(Error::InvalidTarget {
            what: "samples_per_class",
            index: vec![c],
            value: 0.0,
            expected: "a count >= 1",
        });
    }
    // ln(beta) = ln(1 + (beta - 1)); beta - 1 is exact for beta >= 0.5.
    // For beta = 0 it is -inf and every 1 - beta^n is 1, as it should be.
    let ln_beta = (beta - 1.0).ln_1p();
    let raw: Vec<f64> = samples_per_class
        .iter()
        .map(|&n| (1.0 - beta) / -(n as f64 * ln_beta).exp_m1())
        .collect();
    // Each raw weight is in [1 - beta, 1], so the sum is positive.
    let norm = samples_per_class.len() as f64 / raw.iter().sum::<f64>();
    Ok(raw.iter().map(|&w| F::lit(w * norm)).collect())
}
