//! What the documents (and the papers behind the losses) claim, checked
//! against the run: each claim names the regime, the metric and the losses
//! it compares, and the verdict is computed from the seeds' numbers. A
//! claim the run does not support is printed as such.

use super::report::{Metric, Row, Scored, paired_wins};

/// One side of a comparison: a loss's value of a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell {
    /// The loss, by its name in the table.
    pub loss: &'static str,
    /// The metric, by its column title.
    pub metric: &'static str,
}

/// A claim: `better` beats each of `than` in `regime`.
#[derive(Clone, Copy, Debug)]
pub struct Claim {
    /// Who says so, and where.
    pub source: &'static str,
    /// What they say, in a few words.
    pub says: &'static str,
    /// The regime's name.
    pub regime: &'static str,
    /// The side claimed better.
    pub better: Cell,
    /// The sides claimed worse.
    pub than: &'static [Cell],
}

const fn cell(loss: &'static str, metric: &'static str) -> Cell {
    Cell { loss, metric }
}

/// The claims checked. Names must match the loss tables and the metrics'
/// column titles (a unit test holds them to it).
pub const CLAIMS: &[Claim] = &[
    Claim {
        source: "document 000, 3.1 and 5",
        says: "on class imbalance, switch to the focal loss",
        regime: "long-tailed",
        better: cell("softmax focal", "macro-F1"),
        than: &[cell("cross-entropy", "macro-F1")],
    },
    Claim {
        source: "document 000, 3.1",
        says: "on class imbalance, re-weight (class-balanced loss)",
        regime: "long-tailed",
        better: cell("class-balanced CE", "macro-F1"),
        than: &[cell("cross-entropy", "macro-F1")],
    },
    Claim {
        source: "document 000, 3.1",
        says: "on class imbalance, mine hard examples (OHEM)",
        regime: "long-tailed",
        better: cell("OHEM", "macro-F1"),
        than: &[cell("cross-entropy", "macro-F1")],
    },
    Claim {
        source: "Menon et al. 2021",
        says: "logit adjustment beats re-weighting and the focal loss on a long tail",
        regime: "long-tailed",
        better: cell("logit adjustment", "macro-F1"),
        than: &[
            cell("class-balanced CE", "macro-F1"),
            cell("softmax focal", "macro-F1"),
        ],
    },
    Claim {
        source: "Cao et al. 2019",
        says: "LDAM-DRW beats re-weighting and the focal loss on a long tail",
        regime: "long-tailed",
        better: cell("LDAM-DRW", "macro-F1"),
        than: &[
            cell("class-balanced CE", "macro-F1"),
            cell("softmax focal", "macro-F1"),
        ],
    },
    Claim {
        source: "document 000, 3.2",
        says: "on symmetric label noise, use GCE (Co-teaching for asymmetric noise)",
        regime: "noisy labels",
        better: cell("GCE", "accuracy"),
        than: &[
            cell("cross-entropy", "accuracy"),
            cell("Co-teaching", "accuracy"),
        ],
    },
    Claim {
        source: "document 000, 3.2; Han et al. 2018",
        says: "Co-teaching filters out the noisy samples",
        regime: "noisy labels",
        better: cell("Co-teaching", "accuracy"),
        than: &[cell("cross-entropy", "accuracy")],
    },
    Claim {
        source: "document 000, 3.2",
        says: "bootstrapping corrects noisy labels",
        regime: "noisy labels",
        better: cell("hard bootstrapping", "accuracy"),
        than: &[cell("cross-entropy", "accuracy")],
    },
    Claim {
        source: "classloss docs, OhemCrossEntropy",
        says: "OHEM keeps the mislabeled samples: worse than cross-entropy on noisy labels",
        regime: "noisy labels",
        better: cell("cross-entropy", "accuracy"),
        than: &[cell("OHEM", "accuracy")],
    },
    Claim {
        source: "document 000, 4.2",
        says: "for multi-label, BCE with (tuned) thresholds",
        regime: "multi-label",
        better: cell("BCE", "micro-F1"),
        than: &[cell("BCE", "micro-F1 @0.5")],
    },
    Claim {
        source: "Ridnik et al. 2021",
        says: "ASL beats BCE and the focal loss on multi-label mAP",
        regime: "multi-label",
        better: cell("ASL", "mAP"),
        than: &[cell("BCE", "mAP"), cell("sigmoid focal", "mAP")],
    },
];

/// A cell's values over the seeds, as a one-metric row.
fn values<S: Scored>(rows: &[Row<'_, S>], c: Cell) -> Result<(Metric, Vec<f64>), String> {
    let metric = Metric::named::<S>(c.metric).ok_or(format!("no metric {:?}", c.metric))?;
    let row = rows
        .iter()
        .find(|r| r.name == c.loss)
        .ok_or(format!("no loss {:?}", c.loss))?;
    Ok((metric, row.runs.iter().map(|s| metric.of(s)).collect()))
}

/// The verdict on `claim` from each model's rows of its regime: one line
/// with the word ("supported": better on every seed against every other
/// side; "contradicted": worse on every seed against every other side;
/// "not clear" otherwise), per model with the seed counts, and overall
/// (the models' common word, or "mixed").
pub fn verdict<S: Scored>(
    claim: &Claim,
    models: &[&str],
    by_model: &[Vec<Row<'_, S>>],
) -> Result<String, String> {
    let mut words = Vec::new();
    let mut details = Vec::new();
    for (model, rows) in models.iter().zip(by_model) {
        let (metric, a) = values(rows, claim.better)?;
        let (mut all_for, mut all_against) = (true, true);
        let mut parts = Vec::new();
        for &c in claim.than {
            let (m, b) = values(rows, c)?;
            if m.higher_is_better != metric.higher_is_better {
                return Err(format!(
                    "{} and {} point in opposite directions",
                    m.name, metric.name
                ));
            }
            let better = metric.higher_is_better;
            let (won, lost, n) = (
                paired_wins(better, &a, &b),
                paired_wins(better, &b, &a),
                a.len(),
            );
            all_for &= won == n;
            all_against &= lost == n;
            let what = if c.loss == claim.better.loss {
                c.metric
            } else {
                c.loss
            };
            parts.push(format!("{won}/{n} over {what}"));
        }
        let word = if all_for {
            "supported"
        } else if all_against {
            "contradicted"
        } else {
            "not clear"
        };
        words.push(word);
        details.push(format!("{model}: {word} ({})", parts.join(", ")));
    }
    let overall = match words.first() {
        Some(w) if words.iter().all(|x| x == w) => *w,
        _ => "mixed",
    };
    Ok(format!(
        "{overall}: {} ({}; {}, {}). Seeds won: {}",
        claim.says,
        claim.source,
        claim.regime,
        claim.better.metric,
        details.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::super::losses::{multi_label_table, table};
    use super::super::metrics::{MultiScores, Scores};
    use super::*;

    #[test]
    fn every_claim_names_real_losses_and_metrics() {
        let single: Vec<&str> = table().iter().map(|e| e.name).collect();
        let multi: Vec<&str> = multi_label_table().iter().map(|e| e.name).collect();
        for c in CLAIMS {
            let (losses, metric_ok): (&[&str], fn(&str) -> bool) = if c.regime == "multi-label" {
                (&multi, |m| Metric::named::<MultiScores>(m).is_some())
            } else {
                (&single, |m| Metric::named::<Scores>(m).is_some())
            };
            for cell in std::iter::once(&c.better).chain(c.than) {
                assert!(losses.contains(&cell.loss), "{c:?}");
                assert!(metric_ok(cell.metric), "{c:?}");
            }
            assert!(["long-tailed", "noisy labels", "multi-label"].contains(&c.regime));
        }
    }

    fn rows(a: &[f64], b: &[f64]) -> Vec<Row<'static, Scores>> {
        let s = |x: f64| Scores {
            accuracy: x,
            macro_f1: x,
            worst_recall: x,
            ece: x,
        };
        vec![
            Row {
                name: "a",
                runs: a.iter().map(|&x| s(x)).collect(),
            },
            Row {
                name: "b",
                runs: b.iter().map(|&x| s(x)).collect(),
            },
        ]
    }

    #[test]
    fn verdict_follows_the_seeds() {
        let claim = |better: &'static str, metric: &'static str| Claim {
            source: "src",
            says: "says",
            regime: "long-tailed",
            better: cell(better, metric),
            than: &[],
        };
        let mut c = claim("a", "accuracy");
        c.than = &[Cell {
            loss: "b",
            metric: "accuracy",
        }];
        let both = |a: &[f64], b: &[f64]| vec![rows(a, b), rows(a, b)];
        let v = verdict(&c, &["S", "M"], &both(&[0.9, 0.8], &[0.5, 0.7])).unwrap();
        assert!(
            v.starts_with("supported: says (src; long-tailed, accuracy)"),
            "{v}"
        );
        assert!(
            v.ends_with("S: supported (2/2 over b); M: supported (2/2 over b)"),
            "{v}"
        );
        let v = verdict(&c, &["S", "M"], &both(&[0.9, 0.6], &[0.5, 0.7])).unwrap();
        assert!(v.starts_with("not clear"), "{v}");
        let v = verdict(&c, &["S", "M"], &both(&[0.4, 0.6], &[0.5, 0.7])).unwrap();
        assert!(v.starts_with("contradicted"), "{v}");
        // Models that disagree make a mixed verdict.
        let split = vec![
            rows(&[0.9, 0.8], &[0.5, 0.7]),
            rows(&[0.4, 0.6], &[0.5, 0.7]),
        ];
        let v = verdict(&c, &["S", "M"], &split).unwrap();
        assert!(v.starts_with("mixed"), "{v}");
        assert!(
            v.contains("S: supported (2/2 over b); M: contradicted (0/2 over b)"),
            "{v}"
        );
        // Lower is better for the calibration error: a smaller ECE wins.
        let mut e = claim("a", "ECE");
        e.than = &[Cell {
            loss: "b",
            metric: "ECE",
        }];
        let v = verdict(&e, &["S"], &both(&[0.1, 0.2], &[0.3, 0.4])[..1]).unwrap();
        assert!(v.starts_with("supported"), "{v}");
        // A misspelt loss is an error, not a verdict.
        let mut bad = claim("nope", "accuracy");
        bad.than = c.than;
        assert!(verdict(&bad, &["S"], &both(&[0.1], &[0.2])[..1]).is_err());
    }
}
