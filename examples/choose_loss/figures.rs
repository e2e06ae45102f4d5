//! The study's figures: training curves, the multi-label metrics as bars,
//! and the focal loss against `p_t` (the focal paper's Figure 1) computed
//! with the crate.

use std::path::Path;

use classloss::{Loss, SigmoidFocal};
use ndarray::array;

use super::plot::{BarPanel, BarSeries, Panel, Series, bar_panels, panels};
use super::report::{Metric, Row, Scored};
use super::train::{Run, mean_curve};

type FigResult = Result<(), Box<dyn std::error::Error>>;

/// One regime's training curves: per model (one row of panels each), the
/// training loss relative to its first epoch and the followed test metric
/// (`curve`: accuracy, or mAP), each the mean over seeds.
/// `runs_of(model, loss)` gives a cell's runs.
pub fn training_curves<'a, S: 'a>(
    path: &Path,
    regime: &str,
    curve: &str,
    models: &[&str],
    losses: &[&'a str],
    runs_of: impl Fn(usize, usize) -> Vec<&'a Run<S>>,
) -> FigResult {
    let mut all = Vec::new();
    for (b, model) in models.iter().enumerate() {
        let mut loss_series = Vec::new();
        let mut acc_series = Vec::new();
        let (mut top, mut epochs, mut low_acc) = (1.0_f64, 1.0_f64, 1.0_f64);
        for (e, &name) in losses.iter().enumerate() {
            let runs = runs_of(b, e);
            let loss = mean_curve(
                &runs
                    .iter()
                    .map(|r| r.train_loss.as_slice())
                    .collect::<Vec<_>>(),
            );
            let acc = mean_curve(
                &runs
                    .iter()
                    .map(|r| r.test_curve.as_slice())
                    .collect::<Vec<_>>(),
            );
            epochs = epochs.max(loss.len() as f64);
            let first = loss.first().copied().filter(|v| *v > 0.0).unwrap_or(1.0);
            let rel: Vec<(f64, f64)> = loss
                .iter()
                .enumerate()
                .map(|(i, v)| ((i + 1) as f64, v / first))
                .collect();
            top = rel.iter().fold(top, |t, p| t.max(p.1));
            loss_series.push(Series { name, points: rel });
            low_acc = acc.iter().fold(low_acc, |l, &a| l.min(a));
            acc_series.push(Series {
                name,
                points: acc
                    .iter()
                    .enumerate()
                    .map(|(i, v)| ((i + 1) as f64, *v))
                    .collect(),
            });
        }
        all.push(Panel {
            title: format!("{regime}, {model}: training loss"),
            x_desc: "epoch",
            y_desc: "training loss / its epoch-1 value",
            x: (1.0, epochs),
            y: (0.0, top * 1.05),
            series: loss_series,
        });
        all.push(Panel {
            title: format!("{regime}, {model}: {curve}"),
            x_desc: "epoch",
            y_desc: curve,
            x: (1.0, epochs),
            // From the lowest accuracy seen (rounded down to a tenth), so the
            // differences between losses are visible.
            y: ((low_acc * 10.0).floor() / 10.0, 1.0),
            series: acc_series,
        });
    }
    panels(path, &all, 2, (600, 460))
}

/// Per model (one panel each), the mean over seeds of each metric in
/// `metrics`, one bar per loss, with an error bar of one standard deviation.
/// `rows_of(model)` gives the model's rows.
pub fn metric_bars<'a, S: Scored>(
    path: &Path,
    regime: &str,
    models: &[&str],
    metrics: &[Metric],
    rows_of: impl Fn(usize) -> Vec<Row<'a, S>>,
) -> FigResult {
    let mut all = Vec::new();
    let mut low = 1.0_f64;
    for (m, model) in models.iter().enumerate() {
        let series: Vec<BarSeries<'a>> = rows_of(m)
            .iter()
            .map(|row| BarSeries {
                name: row.name,
                bars: metrics.iter().map(|&k| row.stat(k)).collect(),
            })
            .collect();
        low = series
            .iter()
            .flat_map(|s| &s.bars)
            .fold(low, |l, &(v, e)| l.min(v - e));
        all.push(BarPanel {
            title: format!("{regime}, {model}"),
            groups: metrics.iter().map(|k| k.name).collect(),
            y_desc: "on the test composites (mean ± std over seeds)",
            y: (0.0, 1.0),
            series,
        });
    }
    // From the lowest bar (rounded down to a tenth), so the differences
    // between losses are visible.
    let floor = ((low * 10.0).floor() / 10.0).clamp(0.0, 0.9);
    for p in &mut all {
        p.y.0 = floor;
    }
    bar_panels(path, &all, (620, 480))
}

/// The focusing parameters of the focal paper's Figure 1.
pub const GAMMAS: [f64; 5] = [0.0, 0.5, 1.0, 2.0, 5.0];

/// `FL(p_t)` for one example whose true class has probability `p`: the
/// crate's sigmoid focal loss on the logit `ln(p / (1 - p))` with target 1
/// and no alpha, so `p_t = p`.
pub fn focal_at(p: f64, gamma: f64) -> classloss::Result<f64> {
    let fl = SigmoidFocal::<f64>::new()
        .with_gamma(gamma)?
        .with_alpha(None)?;
    let logit = p.ln() - (-p).ln_1p();
    fl.forward(array![[logit]].view(), array![[1.0]].view())
}

/// The focal loss against `p_t` for each of [`GAMMAS`], as in Lin et al.
/// (2017), Figure 1 (`gamma = 0` is cross-entropy).
pub fn focal_vs_pt(path: &Path) -> FigResult {
    // From p_t = 0.0075 (cross-entropy 4.9, inside the 0..5 frame) to 1.
    let grid: Vec<f64> = (3..=400).map(|k| k as f64 / 400.0).collect();
    let names: Vec<String> = GAMMAS
        .iter()
        .map(|g| {
            if *g == 0.0 {
                "γ = 0 (cross-entropy)".to_string()
            } else {
                format!("γ = {g}")
            }
        })
        .collect();
    let mut series = Vec::new();
    for (g, name) in GAMMAS.iter().zip(&names) {
        let points = grid
            .iter()
            .map(|&p| focal_at(p.min(1.0 - 1e-12), *g).map(|l| (p, l)))
            .collect::<classloss::Result<Vec<_>>>()?;
        series.push(Series { name, points });
    }
    let panel = Panel {
        title: "Focal loss FL(p_t) = -(1 - p_t)^γ ln(p_t), computed by classloss::SigmoidFocal"
            .to_string(),
        x_desc: "probability of the ground-truth class, p_t",
        y_desc: "loss",
        x: (0.0, 1.0),
        y: (0.0, 5.0),
        series,
    };
    panels(path, &[panel], 1, (760, 520))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn focal_at_matches_the_formula() {
        for &g in &GAMMAS {
            for p in [0.01_f64, 0.3, 0.5, 0.9, 0.999] {
                let want = -(1.0 - p).powf(g) * p.ln();
                let got = focal_at(p, g).unwrap();
                assert!(
                    (got - want).abs() < 1e-9 * (1.0 + want.abs()),
                    "gamma {g} p {p}: {got} vs {want}"
                );
            }
        }
    }
}
