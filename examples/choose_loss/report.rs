//! The printed tables and the verdicts, computed from the measured numbers.

use super::metrics::{MultiScores, Scores, mean_std};

/// A reported metric: a column of the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metric {
    /// Its column title.
    pub name: &'static str,
    /// Whether a larger value is better.
    pub higher_is_better: bool,
    /// Its position in [`Scored::values`].
    pub at: usize,
}

const fn metric(name: &'static str, higher_is_better: bool, at: usize) -> Metric {
    Metric {
        name,
        higher_is_better,
        at,
    }
}

/// What one run reports: its metrics, in table order.
pub trait Scored {
    /// The columns.
    const METRICS: &'static [Metric];
    /// The values, one per column.
    fn values(&self) -> Vec<f64>;
}

impl Scored for Scores {
    const METRICS: &'static [Metric] = &[
        metric("accuracy", true, 0),
        metric("macro-F1", true, 1),
        metric("worst recall", true, 2),
        metric("ECE", false, 3),
    ];
    fn values(&self) -> Vec<f64> {
        vec![self.accuracy, self.macro_f1, self.worst_recall, self.ece]
    }
}

impl Scored for MultiScores {
    const METRICS: &'static [Metric] = &[
        metric("mAP", true, 0),
        metric("micro-F1", true, 1),
        metric("macro-F1", true, 2),
        metric("Hamming", false, 3),
        metric("micro-F1 @0.5", true, 4),
    ];
    fn values(&self) -> Vec<f64> {
        vec![
            self.map,
            self.micro_f1,
            self.macro_f1,
            self.hamming,
            self.micro_f1_untuned,
        ]
    }
}

impl Metric {
    /// Its value in one run.
    pub fn of<S: Scored>(self, s: &S) -> f64 {
        s.values()[self.at]
    }

    /// The metric of `S` called `name`.
    pub fn named<S: Scored>(name: &str) -> Option<Metric> {
        S::METRICS.iter().copied().find(|m| m.name == name)
    }
}

/// One loss's results in one regime and model, over the seeds.
pub struct Row<'a, S> {
    /// The loss's name.
    pub name: &'a str,
    /// One entry per seed.
    pub runs: Vec<S>,
}

impl<S: Scored> Row<'_, S> {
    /// Mean and standard deviation of a metric over the seeds.
    pub fn stat(&self, m: Metric) -> (f64, f64) {
        let xs: Vec<f64> = self.runs.iter().map(|s| m.of(s)).collect();
        mean_std(&xs)
    }
}

/// The table of one model in one regime, as printed.
pub fn table<S: Scored>(rows: &[Row<'_, S>]) -> String {
    let name_w = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    let mut out = format!("  {:<name_w$}", "loss");
    for m in S::METRICS {
        out += &format!("  {:>15}", m.name);
    }
    out.push('\n');
    // Mark the best mean of each column.
    let best: Vec<f64> = S::METRICS
        .iter()
        .map(|&m| {
            let means = rows.iter().map(|r| r.stat(m).0);
            if m.higher_is_better {
                means.fold(f64::NEG_INFINITY, f64::max)
            } else {
                means.fold(f64::INFINITY, f64::min)
            }
        })
        .collect();
    for r in rows {
        out += &format!("  {:<name_w$}", r.name);
        for (k, &m) in S::METRICS.iter().enumerate() {
            let (mean, std) = r.stat(m);
            let mark = if mean == best[k] { '*' } else { ' ' };
            out += &format!("  {mean:>6.3} ± {std:.3}{mark}");
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    }
    out
}

/// The pairs of losses whose every metric is the same on every seed (the
/// same training, written twice).
pub fn same_results<'a, S: Scored>(rows: &[Row<'a, S>]) -> Vec<(&'a str, &'a str)> {
    let values = |r: &Row<'_, S>| r.runs.iter().map(Scored::values).collect::<Vec<_>>();
    let mut pairs = Vec::new();
    for (i, a) in rows.iter().enumerate() {
        for b in &rows[i + 1..] {
            if values(a) == values(b) {
                pairs.push((a.name, b.name));
            }
        }
    }
    pairs
}

/// On how many seeds `a` beats `b` on `m` (strictly). The runs of one
/// seed share the split, subsample, noisy labels, initialization and batch
/// order, so the comparison is paired.
pub fn wins<S: Scored>(m: Metric, a: &Row<'_, S>, b: &Row<'_, S>) -> usize {
    let of = |r: &Row<'_, S>| r.runs.iter().map(|s| m.of(s)).collect::<Vec<_>>();
    paired_wins(m.higher_is_better, &of(a), &of(b))
}

/// On how many seeds value `a[k]` beats `b[k]` (strictly).
pub fn paired_wins(higher_is_better: bool, a: &[f64], b: &[f64]) -> usize {
    a.iter()
        .zip(b)
        .filter(|(x, y)| if higher_is_better { x > y } else { x < y })
        .count()
}

/// Whether `a` beats `b` on every seed: what the verdicts call "clearly".
pub fn clearly_better<S: Scored>(m: Metric, a: &Row<'_, S>, b: &Row<'_, S>) -> bool {
    !a.runs.is_empty() && wins(m, a, b) == a.runs.len()
}

/// The rows sorted by their mean on `m`, best first.
fn ranked<'r, 'a, S: Scored>(rows: &'r [Row<'a, S>], m: Metric) -> Vec<&'r Row<'a, S>> {
    let mut order: Vec<&Row<'_, S>> = rows.iter().collect();
    order.sort_by(|a, b| {
        let o = a
            .stat(m)
            .0
            .partial_cmp(&b.stat(m).0)
            .unwrap_or(std::cmp::Ordering::Equal);
        if m.higher_is_better { o.reverse() } else { o }
    });
    order
}

/// The verdicts of one model in one regime, as a small table: per metric,
/// the best mean, the next best, and on how many seeds the best beats the
/// next and the baseline (the first row). "clear" means on every seed.
pub fn verdicts<S: Scored>(rows: &[Row<'_, S>]) -> String {
    let base = &rows[0];
    let name_w = rows.iter().map(|r| r.name.len()).max().unwrap_or(4);
    let mut out = format!(
        "    {:<13}  {:<w$}  {:<w$}  {:<13}  beats {} on\n",
        "metric",
        "best (mean ± std)",
        "next best",
        "beats next on",
        base.name,
        w = name_w + 16,
    );
    for &m in S::METRICS {
        let order = ranked(rows, m);
        let best = order[0];
        let n = best.runs.len();
        let (bm, bs) = best.stat(m);
        let best_cell = format!("{} {bm:.3} ± {bs:.3}", best.name);
        let (next_cell, vs_next) = match order.get(1) {
            Some(next) => {
                let k = wins(m, best, next);
                let clear = if k == n { "clear" } else { "not clear" };
                (
                    format!(
                        "{} {:.3} ± {:.3}",
                        next.name,
                        next.stat(m).0,
                        next.stat(m).1
                    ),
                    format!("{k}/{n} {clear}"),
                )
            }
            None => (String::new(), String::new()),
        };
        let vs_base = if best.name == base.name {
            "(baseline)".to_string()
        } else {
            format!("{}/{n}", wins(m, best, base))
        };
        out += &format!(
            "    {:<13}  {best_cell:<w$}  {next_cell:<w$}  {vs_next:<13}  {vs_base}\n",
            m.name,
            w = name_w + 16,
        );
    }
    out
}

/// Per metric, the loss with the best mean, and the other losses it does
/// NOT beat on every seed (empty: it beat them all, on every seed).
pub fn winners<'a, S: Scored>(rows: &[Row<'a, S>]) -> Vec<(Metric, &'a str, Vec<&'a str>)> {
    S::METRICS
        .iter()
        .map(|&m| {
            let order = ranked(rows, m);
            let best = order[0];
            let open = order[1..]
                .iter()
                .filter(|r| !clearly_better(m, best, r))
                .map(|r| r.name)
                .collect();
            (m, best.name, open)
        })
        .collect()
}

/// One line per metric of [`winners`], in words.
pub fn summary<S: Scored>(rows: &[Row<'_, S>]) -> Vec<String> {
    let others = rows.len().saturating_sub(1);
    winners(rows)
        .into_iter()
        .map(|(m, best, open)| {
            let ahead = others - open.len();
            let mut line = format!(
                "    {:<13} {best}: ahead of {ahead} of the {others} others on every seed",
                m.name
            );
            if !open.is_empty() {
                line += &format!("; not always ahead of {}", join(&open));
            }
            line
        })
        .collect()
}

/// The losses that beat the baseline (first row) on every seed, and those
/// the baseline beats on every seed, on a metric.
pub fn against_baseline<'a, S: Scored>(
    rows: &[Row<'a, S>],
    m: Metric,
) -> (Vec<&'a str>, Vec<&'a str>) {
    let base = &rows[0];
    let better = rows[1..]
        .iter()
        .filter(|r| clearly_better(m, r, base))
        .map(|r| r.name)
        .collect();
    let worse = rows[1..]
        .iter()
        .filter(|r| clearly_better(m, base, r))
        .map(|r| r.name)
        .collect();
    (better, worse)
}

/// `text` broken into lines of at most `width` characters (words are not
/// split), every line after the first indented by `indent`.
pub fn wrap(text: &str, width: usize, indent: &str) -> String {
    // Leading spaces are kept on the first line; runs of spaces inside
    // (table padding) are kept as they are.
    let body = text.trim_start_matches(' ');
    let mut line = text[..text.len() - body.len()].to_string();
    let start = line.clone();
    let mut out = String::new();
    for word in body.split(' ') {
        let fresh = line == start || line == indent;
        if !fresh && line.chars().count() + 1 + word.chars().count() > width {
            out += line.trim_end();
            out.push('\n');
            line = indent.to_string() + word;
        } else {
            if !fresh {
                line.push(' ');
            }
            line += word;
        }
    }
    out + &line
}

/// "a, b and c".
pub fn join(names: &[&str]) -> String {
    match names {
        [] => "none".to_string(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACC: Metric = <Scores as Scored>::METRICS[0];
    const ECE: Metric = <Scores as Scored>::METRICS[3];

    fn s(acc: f64, ece: f64) -> Scores {
        Scores {
            accuracy: acc,
            macro_f1: acc,
            worst_recall: acc,
            ece,
        }
    }

    fn row(name: &'static str, runs: &[(f64, f64)]) -> Row<'static, Scores> {
        Row {
            name,
            runs: runs.iter().map(|&(a, e)| s(a, e)).collect(),
        }
    }

    #[test]
    fn clear_means_better_on_every_seed() {
        let a = row("a", &[(0.9, 0.1), (0.8, 0.1), (0.7, 0.3)]);
        let b = row("b", &[(0.85, 0.2), (0.75, 0.2), (0.7, 0.2)]);
        assert_eq!(wins(ACC, &a, &b), 2); // a tie is not a win
        assert!(!clearly_better(ACC, &a, &b));
        assert_eq!(wins(ECE, &a, &b), 2);
        assert_eq!(wins(ECE, &b, &a), 1);
        let c = row("c", &[(0.95, 0.0), (0.81, 0.0), (0.71, 0.0)]);
        assert!(clearly_better(ACC, &c, &a));
        assert!(clearly_better(ECE, &c, &a));
    }

    #[test]
    fn verdicts_name_the_best_the_next_and_the_baseline() {
        let rows = vec![
            row("ce", &[(0.80, 0.10), (0.82, 0.12)]),
            row("x", &[(0.90, 0.05), (0.92, 0.05)]),
            row("y", &[(0.91, 0.20), (0.89, 0.20)]),
        ];
        let v = verdicts(&rows);
        let lines: Vec<&str> = v.lines().collect();
        assert_eq!(lines.len(), 5, "{v}");
        assert!(lines[0].contains("beats ce on"), "{v}");
        let cells = |l: &str| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            cells(lines[1]),
            [
                "accuracy",
                "x 0.910 ± 0.014",
                "y 0.900 ± 0.014",
                "1/2 not clear",
                "2/2"
            ]
        );
        assert_eq!(
            cells(lines[4]),
            [
                "ECE",
                "x 0.050 ± 0.000",
                "ce 0.110 ± 0.014",
                "2/2 clear",
                "2/2"
            ]
        );
        let w = winners(&rows);
        assert_eq!(w[0], (ACC, "x", vec!["y"]));
        assert_eq!(w[3], (ECE, "x", vec![]));
        let words = summary(&rows);
        assert_eq!(
            words[0],
            "    accuracy      x: ahead of 1 of the 2 others on every seed; not always ahead of y"
        );
        assert_eq!(
            words[3],
            "    ECE           x: ahead of 2 of the 2 others on every seed"
        );
        // When the baseline is the best, the last column says so.
        let v = verdicts(&rows[..1]);
        assert!(v.lines().nth(1).unwrap().ends_with("(baseline)"), "{v}");
        assert_eq!(against_baseline(&rows, ACC), (vec!["x", "y"], vec![]));
        assert_eq!(against_baseline(&rows, ECE), (vec!["x"], vec!["y"]));
        assert_eq!(same_results(&rows), vec![]);
        let twice = [
            row("a", &[(0.5, 0.1)]),
            row("b", &[(0.5, 0.1)]),
            row("c", &[(0.5, 0.2)]),
        ];
        assert_eq!(same_results(&twice), vec![("a", "b")]);
        assert_eq!(join(&["a", "b", "c"]), "a, b and c");
        assert_eq!(join(&[]), "none");
        assert_eq!(wrap("aa bb cc dd", 5, "  "), "aa bb\n  cc\n  dd");
        assert_eq!(wrap("short", 80, "  "), "short");
        assert_eq!(wrap("  ab  cd ef", 8, "    "), "  ab  cd\n    ef");
    }

    #[test]
    fn table_marks_the_best_of_each_column() {
        let rows = vec![
            Row {
                name: "ce",
                runs: vec![s(0.8, 0.1)],
            },
            Row {
                name: "x",
                runs: vec![s(0.9, 0.2)],
            },
        ];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[1].contains("0.100 ± 0.000*"), "{t}");
        assert!(lines[2].contains("0.900 ± 0.000*"), "{t}");
    }
}
