//! Finite-difference gradient checking.
//!
//! The crate's own tests check every differentiable loss with this module,
//! and it is public so that users can check the losses (or their own code
//! around them) the same way.
//!
//! Central differences in `f64`: `(f(x + h u) - f(x - h u)) / 2h`, with the
//! step `h` scaled to the magnitude of the coordinate. Two modes:
//! element by element (every coordinate of `x`), and along seeded random
//! directions `u` (compared with `grad . u`), which exercises all
//! coordinates at once. A mismatch is `|numeric - analytic| > atol + rtol *
//! max(|numeric|, |analytic|)`.
//!
//! ```
//! use classloss::gradcheck::GradCheck;
//! let f = |x: &[f64]| x[0] * x[0] + 3.0 * x[1];
//! let report = GradCheck::default().check(f, &[1.5, -2.0], &[3.0, 3.0]).unwrap();
//! assert!(report.max_abs_error < 1e-7);
//! // A wrong gradient fails, naming the coordinate.
//! let err = GradCheck::default().check(f, &[1.5, -2.0], &[3.0, 2.0]).unwrap_err();
//! assert_eq!(err.index, Some(1));
//! ```

use std::fmt;

use crate::numerics::random::SplitMix64;

/// Settings of a finite-difference check.
#[derive(Clone, Debug)]
pub struct GradCheck {
    /// Relative step: `h = step * max(1, |x_i|)` element-wise, `step` along a
    /// unit direction scaled by `max(1, max |x|)`. Default `1e-5`.
    pub step: f64,
    /// Absolute tolerance. Default `1e-6`.
    pub atol: f64,
    /// Relative tolerance. Default `1e-5`.
    pub rtol: f64,
    /// Number of random directions checked after the element-wise pass
    /// (default 4; 0 skips the directional mode).
    pub directions: usize,
    /// Seed for the random directions. Default 0x5EED.
    pub seed: u64,
    /// Whether to run the element-by-element pass (default true).
    pub elementwise: bool,
}

impl Default for GradCheck {
    fn default() -> Self {
        GradCheck {
            step: 1e-5,
            atol: 1e-6,
            rtol: 1e-5,
            directions: 4,
            seed: 0x5EED,
            elementwise: true,
        }
    }
}

/// The outcome of a passing check.
#[derive(Clone, Debug, PartialEq)]
pub struct GradCheckReport {
    /// Largest `|numeric - analytic|` seen.
    pub max_abs_error: f64,
    /// Number of comparisons made.
    pub comparisons: usize,
}

/// The first comparison that failed.
#[derive(Clone, Debug, PartialEq)]
pub struct GradCheckFailure {
    /// The coordinate (element-wise mode) or `None` (a random direction).
    pub index: Option<usize>,
    /// The direction's number in directional mode.
    pub direction: Option<usize>,
    /// The finite-difference value.
    pub numeric: f64,
    /// The analytic value (`grad[i]`, or `grad . u`).
    pub analytic: f64,
    /// The tolerance that was exceeded.
    pub tolerance: f64,
}

impl fmt::Display for GradCheckFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = match (self.index, self.direction) {
            (Some(i), _) => format!("element {i}"),
            (None, Some(d)) => format!("random direction {d}"),
            (None, None) => "unknown place".to_string(),
        };
        write!(
            f,
            "gradient check failed at {place}: numeric {:.12e}, analytic {:.12e}, error {:.3e} > tolerance {:.3e}",
            self.numeric,
            self.analytic,
            (self.numeric - self.analytic).abs(),
            self.tolerance
        )
    }
}

impl std::error::Error for GradCheckFailure {}

impl GradCheck {
    /// Checks `analytic` (the gradient of `f` at `x`, same length as `x`)
    /// against central differences of `f`.
    ///
    /// # Panics
    /// If `analytic.len() != x.len()` (a bug in the calling test).
    pub fn check(
        &self,
        f: impl Fn(&[f64]) -> f64,
        x: &[f64],
        analytic: &[f64],
    ) -> Result<GradCheckReport, GradCheckFailure> {
        assert_eq!(x.len(), analytic.len(), "gradient length must match x");
        let mut report = GradCheckReport {
            max_abs_error: 0.0,
            comparisons: 0,
        };
        let mut probe = x.to_vec();
        if self.elementwise {
            for i in 0..x.len() {
                let h = self.step * x[i].abs().max(1.0);
                probe[i] = x[i] + h;
                let up = f(&probe);
                probe[i] = x[i] - h;
                let down = f(&probe);
                probe[i] = x[i];
                let numeric = (up - down) / (2.0 * h);
                self.compare(numeric, analytic[i], Some(i), None, &mut report)?;
            }
        }
        let mut rng = SplitMix64(self.seed);
        let magnitude = x.iter().fold(1.0_f64, |m, v| m.max(v.abs()));
        for d in 0..self.directions {
            let mut u: Vec<f64> = (0..x.len()).map(|_| rng.uniform() * 2.0 - 1.0).collect();
            let norm = u
                .iter()
                .map(|v| v * v)
                .sum::<f64>()
                .sqrt()
                .max(f64::MIN_POSITIVE);
            u.iter_mut().for_each(|v| *v /= norm);
            let h = self.step * magnitude;
            let shifted = |sign: f64| -> Vec<f64> {
                x.iter()
                    .zip(&u)
                    .map(|(xi, ui)| xi + sign * h * ui)
                    .collect()
            };
            let numeric = (f(&shifted(1.0)) - f(&shifted(-1.0))) / (2.0 * h);
            let along: f64 = analytic.iter().zip(&u).map(|(g, ui)| g * ui).sum();
            self.compare(numeric, along, None, Some(d), &mut report)?;
        }
        Ok(report)
    }

    fn compare(
        &self,
        numeric: f64,
        analytic: f64,
        index: Option<usize>,
        direction: Option<usize>,
        report: &mut GradCheckReport,
    ) -> Result<(), GradCheckFailure> {
        let err = (numeric - analytic).abs();
        let tolerance = self.atol + self.rtol * numeric.abs().max(analytic.abs());
        report.comparisons += 1;
        report.max_abs_error = report.max_abs_error.max(err);
        if err <= tolerance && err.is_finite() {
            Ok(())
        } else {
            Err(GradCheckFailure {
                index,
                direction,
                numeric,
                analytic,
                tolerance,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A check with no tolerance: every comparison fails, so the failure
    /// reports the first numeric value.
    fn strict(step: f64, directions: usize, elementwise: bool) -> GradCheck {
        GradCheck {
            step,
            atol: 0.0,
            rtol: 0.0,
            directions,
            seed: 7,
            elementwise,
        }
    }

    #[test]
    fn central_difference_of_a_cubic_carries_the_step_squared() {
        // ((x + h)^3 - (x - h)^3) / 2h = 3 x^2 + h^2, with h = step max(1, |x|).
        let cube = |x: &[f64]| x[0].powi(3);
        for (x, h) in [(2.0, 0.2), (-0.5, 0.1)] {
            let err = strict(0.1, 0, true).check(cube, &[x], &[0.0]).unwrap_err();
            assert!((err.numeric - (3.0 * x * x + h * h)).abs() < 1e-12, "{err}");
            assert_eq!(
                (err.index, err.direction, err.analytic),
                (Some(0), None, 0.0)
            );
        }
    }

    #[test]
    fn a_random_direction_is_a_unit_vector_and_its_step_scales_with_x() {
        // In one dimension the direction is +-1: the difference of x^3 at
        // x = 2 is +-(12 + h^2) with h = step max(1, max |x|) = 0.2.
        let cube = |x: &[f64]| x[0].powi(3);
        let err = strict(0.1, 1, false)
            .check(cube, &[2.0], &[0.0])
            .unwrap_err();
        assert!((err.numeric.abs() - 12.04).abs() < 1e-12, "{err}");
        assert_eq!((err.index, err.direction), (None, Some(0)));
        // Along u, the analytic value is grad . u: the right gradient of a
        // linear function passes at any tolerance above rounding.
        let a = [0.5, -2.0, 3.0];
        let linear = |x: &[f64]| x.iter().zip(&a).map(|(x, a)| x * a).sum::<f64>();
        let check = GradCheck {
            atol: 1e-9,
            rtol: 0.0,
            elementwise: false,
            ..GradCheck::default()
        };
        let report = check.check(linear, &[1.0, 2.0, 3.0], &a).unwrap();
        assert_eq!(report.comparisons, 4);
        let err = check
            .check(linear, &[1.0, 2.0, 3.0], &[0.5, -2.0, 3.1])
            .unwrap_err();
        assert_eq!(err.direction, Some(0));
    }

    #[test]
    fn random_directions_are_uniform_in_the_cube_then_normalized() {
        // Along u, the difference of f(x) = x_0 is u_0, where u is
        // (2 U - 1) normalized for uniforms U of the seeded generator.
        let mut rng = SplitMix64(7);
        let (a, b) = (rng.uniform() * 2.0 - 1.0, rng.uniform() * 2.0 - 1.0);
        let expected = a / (a * a + b * b).sqrt();
        let first = |x: &[f64]| x[0];
        let err = strict(1e-3, 1, false)
            .check(first, &[0.5, 0.5], &[0.0, 0.0])
            .unwrap_err();
        assert!((err.numeric - expected).abs() < 1e-9, "{err} vs {expected}");
    }

    #[test]
    fn tolerance_and_report_follow_their_definitions() {
        let f = |x: &[f64]| 2.0 * x[0] - x[1];
        let check = GradCheck {
            atol: 0.5,
            rtol: 0.25,
            directions: 0,
            ..GradCheck::default()
        };
        // |2 - 100| > 0.5 + 0.25 * 100.
        let err = check.check(f, &[1.0, 1.0], &[100.0, -1.0]).unwrap_err();
        assert_eq!(err.tolerance, 25.5);
        // Within tolerance: the report counts both and keeps the largest error.
        let report = check.check(f, &[1.0, 1.0], &[2.3, -1.1]).unwrap();
        assert_eq!(report.comparisons, 2);
        assert!((report.max_abs_error - 0.3).abs() < 1e-6, "{report:?}");
        // A NaN never passes.
        let err = check.check(|_| f64::NAN, &[1.0], &[0.0]).unwrap_err();
        assert!(err.numeric.is_nan());
    }

    #[test]
    fn failures_name_their_place() {
        let failure = |index, direction| GradCheckFailure {
            index,
            direction,
            numeric: 1.0,
            analytic: 2.0,
            tolerance: 0.5,
        };
        let text = failure(Some(3), None).to_string();
        assert!(
            text.contains("element 3") && text.contains("error 1.000e0"),
            "{text}"
        );
        assert!(
            failure(None, Some(2))
                .to_string()
                .contains("random direction 2")
        );
        assert!(failure(None, None).to_string().contains("unknown place"));
    }
}
