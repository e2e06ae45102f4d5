//! Co-teaching: the small-loss selection against a rank count, its
//! rounding and tie-break, the schedule against the paper's formula, the
//! peer exchange on a noisy batch, errors.

use classloss::{CoTeachingSchedule, CrossEntropy, Loss, Reduction, small_loss_indices};
use ndarray::{Array1, array};
use proptest::prelude::*;

/// Sample `i` is kept when fewer than `keep` samples come before it in the
/// order (loss, then index).
fn kept_by_rank(losses: &[f64], keep: usize) -> Vec<usize> {
    (0..losses.len())
        .filter(|&i| {
            let before = (0..losses.len())
                .filter(|&j| losses[j] < losses[i] || (losses[j] == losses[i] && j < i))
                .count();
            before < keep
        })
        .collect()
}

#[test]
fn keeps_the_rounded_count_of_smallest_losses() {
    let losses = array![0.3_f64, 2.0, 0.1, 0.9, 5.0];
    // 0.6 * 5 = 3: the three smallest, in index order.
    assert_eq!(small_loss_indices(&losses, 0.4).unwrap(), vec![0, 2, 3]);
    // 0.5 * 5 = 2.5 rounds half away from zero to 3.
    assert_eq!(small_loss_indices(&losses, 0.5).unwrap(), vec![0, 2, 3]);
    assert_eq!(
        small_loss_indices(&losses, 0.0).unwrap(),
        vec![0, 1, 2, 3, 4]
    );
    assert_eq!(
        small_loss_indices(&losses, 1.0).unwrap(),
        Vec::<usize>::new()
    );
    // (1 - 0.9) * 10 is 0.9999999999999998: truncation would keep nothing.
    let ten = Array1::from_iter((0..10).map(|i| i as f64));
    assert_eq!(small_loss_indices(&ten, 0.9).unwrap(), vec![0]);
}

#[test]
fn equal_losses_keep_the_lower_index() {
    let losses = array![1.0_f32, 0.5, 1.0, 1.0, 0.5];
    // keep round(0.6 * 5) = 3: both 0.5s, then the first 1.0.
    assert_eq!(small_loss_indices(&losses, 0.4).unwrap(), vec![0, 1, 4]);
    // Infinite losses rank last (or first), not as errors.
    let inf = array![f64::INFINITY, 1.0, f64::NEG_INFINITY];
    assert_eq!(small_loss_indices(&inf, 1.0 / 3.0).unwrap(), vec![1, 2]);
}

/// The two networks exchange their selections: on a batch whose last
/// sample is mislabeled, each network's per-sample cross-entropy drops it
/// from its peer's batch.
#[test]
fn each_network_trains_on_its_peers_small_loss_samples() {
    let labels = array![0_i64, 1, 2, 1, 0, 0];
    // Both networks are confident in class 2 for the last sample.
    let logits_a = array![
        [3.0_f64, 0.0, 0.0],
        [0.0, 2.0, 0.5],
        [0.0, 0.5, 2.5],
        [0.2, 1.0, 0.0],
        [1.5, 0.0, 0.0],
        [0.0, 0.0, 4.0]
    ];
    let logits_b = logits_a.mapv(|v| 0.8 * v) + array![[0.1, 0.0, -0.1]];
    let per_sample = CrossEntropy::new().with_reduction(Reduction::None);
    let losses_a = per_sample.per_sample(&logits_a, &labels).unwrap();
    let losses_b = per_sample.per_sample(&logits_b, &labels).unwrap();
    let rate = CoTeachingSchedule::new(0.2).unwrap().forget_rate(10);
    let for_b = small_loss_indices(&losses_a, rate).unwrap();
    let for_a = small_loss_indices(&losses_b, rate).unwrap();
    // round(0.8 * 6) = 5 kept by each.
    assert_eq!(for_b.len(), 5);
    assert!(!for_b.contains(&5) && !for_a.contains(&5));
    assert_eq!(for_b, kept_by_rank(losses_a.as_slice().unwrap(), 5));
    assert_eq!(for_a, kept_by_rank(losses_b.as_slice().unwrap(), 5));
}

#[test]
fn the_schedule_is_the_papers_ramp() {
    for (tau, t_k) in [(0.2, 10), (0.45, 5), (0.8, 1), (0.0, 3)] {
        let schedule = CoTeachingSchedule::new(tau)
            .unwrap()
            .with_ramp_epochs(t_k)
            .unwrap();
        assert_eq!((schedule.tau(), schedule.ramp_epochs()), (tau, t_k));
        for epoch in 0..3 * t_k {
            let want = tau * (epoch as f64 / t_k as f64).min(1.0);
            let got = schedule.forget_rate(epoch);
            assert!((got - want).abs() < 1e-15, "{tau} {t_k} {epoch}");
            assert!((0.0..=tau).contains(&got));
        }
    }
    assert_eq!(CoTeachingSchedule::new(0.3).unwrap().ramp_epochs(), 10);
}

#[test]
fn errors_name_the_argument_and_the_values() {
    let e = small_loss_indices(&array![0.5_f64, f64::NAN], 0.2).unwrap_err();
    assert_eq!(
        e.to_string(),
        "losses[1]: expected a loss that is not NaN, got NaN"
    );
    for (bad, shown) in [(-0.1, "-0.1"), (1.5, "1.5"), (f64::NAN, "NaN")] {
        let e = small_loss_indices(&array![0.5_f64], bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("option `forget_rate`: expected a number in [0, 1], got {shown}")
        );
        let e = CoTeachingSchedule::new(bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("option `tau`: expected a number in [0, 1], got {shown}")
        );
    }
    let e = small_loss_indices(&Array1::<f32>::zeros(0), 0.2).unwrap_err();
    assert_eq!(
        e.to_string(),
        "losses: expected at least one sample, got an empty array of shape [0]"
    );
    let e = CoTeachingSchedule::new(0.2)
        .unwrap()
        .with_ramp_epochs(0)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `ramp_epochs`: expected at least 1 epoch, got 0"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn the_selection_is_the_rank_count(
        losses in proptest::collection::vec(0u8..4, 1..20),
        forget_rate in 0.0f64..=1.0,
    ) {
        let losses: Vec<f64> = losses.into_iter().map(f64::from).collect();
        let keep = ((1.0 - forget_rate) * losses.len() as f64).round() as usize;
        let got = small_loss_indices(&Array1::from(losses.clone()), forget_rate).unwrap();
        prop_assert_eq!(got, kept_by_rank(&losses, keep));
        // f32 losses select the same samples.
        let narrow = Array1::from_iter(losses.iter().map(|&l| l as f32));
        prop_assert_eq!(small_loss_indices(&narrow, forget_rate).unwrap(), kept_by_rank(&losses, keep));
    }
}
