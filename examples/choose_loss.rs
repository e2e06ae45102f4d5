//! Which classification loss to choose? A study on real images.
//!
//! Trains softmax regression and a one-hidden-layer network on the UCI
//! handwritten digits (8x8 images, 10 classes) in four regimes. Three are
//! regimes of the training split, trained with every loss of the table in
//! `choose_loss/losses.rs`: balanced, long-tailed (100:1) and 40% symmetric
//! label noise; the test split is never touched. The fourth is multi-label:
//! two digits side by side labelled with the set of digits shown, trained
//! with the losses of the multi-label table, thresholds tuned per class on
//! held-out composites. Prints a table per regime (accuracy, macro-F1, the
//! worst class's recall, calibration error; for multi-label mAP, micro- and
//! macro-F1, the Hamming loss; mean ± std over seeds), verdicts computed
//! from those numbers, the documents' claims checked seed by seed
//! (`claims`), and writes SVG figures (training curves per regime, the
//! multi-label metrics as bars, the focal loss against `p_t`) to
//! `target/choose_loss/`.
//!
//! Run: `cargo run --release --example choose_loss` (about 36 s of CPU, so
//! about 20 s on 2 idle cores).
//!
//! The pieces live in `examples/choose_loss/`: `data` (parsing, split,
//! regimes, composites), `model` (the two networks and Adam, backward by
//! hand), `losses` (the tables of losses: adding a loss is adding an
//! entry), `train`, `metrics`, `report` (tables and verdicts), `claims`,
//! `figures` and `plot`, `runner` (parallel runs with a progress line),
//! `rng`.

use std::path::Path;
use std::time::Instant;

#[path = "choose_loss/claims.rs"]
mod claims;
#[path = "choose_loss/data.rs"]
mod data;
#[path = "choose_loss/figures.rs"]
mod figures;
#[path = "choose_loss/losses.rs"]
mod losses;
#[path = "choose_loss/metrics.rs"]
mod metrics;
#[path = "choose_loss/model.rs"]
mod model;
#[path = "choose_loss/plot.rs"]
mod plot;
#[path = "choose_loss/report.rs"]
mod report;
#[path = "choose_loss/rng.rs"]
mod rng;
#[path = "choose_loss/runner.rs"]
mod runner;
#[path = "choose_loss/train.rs"]
mod train;

use data::{CLASSES, Digits, class_counts};
use metrics::{MultiScores, Scores};
use model::{Adam, Body};
use report::{Row, Scored};
use rng::Rng;
use train::{Config, MultiSplit, Run, Split};

/// Seeds of the runs; each fixes initialization, batch order, the
/// long-tailed subsample and the noisy labels.
const SEEDS: [u64; 5] = [0, 1, 2, 3, 4];
/// The train/test split is the same for every seed.
const SPLIT_SEED: u64 = 2024;
const TEST_FRACTION: f64 = 0.3;
const HIDDEN: usize = 64;
const CONFIG: Config = Config {
    steps: 1600,
    batch: 32,
    adam: Adam {
        lr: 3e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    },
};
/// Long tail: the largest class keeps this many training images, the
/// smallest `LARGEST / TAIL_RATIO`.
const LARGEST: usize = 100;
const TAIL_RATIO: f64 = 100.0;
const NOISE_RATE: f64 = 0.4;
/// Multi-label: each image stands in this many composites, and this
/// fraction of the training images make the threshold-tuning composites.
const PER_IMAGE: usize = 2;
const TUNE_FRACTION: f64 = 0.2;
const MODELS: [(&str, Body); 2] = [
    ("softmax regression", Body::Identity),
    ("MLP (64 ReLU units)", Body::Hidden(HIDDEN)),
];
const WIDTH: usize = 110;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Regime {
    Balanced,
    LongTailed,
    Noisy,
}

impl Regime {
    const ALL: [Regime; 3] = [Regime::Balanced, Regime::LongTailed, Regime::Noisy];

    fn name(self) -> &'static str {
        match self {
            Regime::Balanced => "balanced",
            Regime::LongTailed => "long-tailed",
            Regime::Noisy => "noisy labels",
        }
    }

    fn file_stem(self) -> &'static str {
        match self {
            Regime::Balanced => "balanced",
            Regime::LongTailed => "long_tailed",
            Regime::Noisy => "noisy",
        }
    }

    fn describe(self) -> String {
        match self {
            Regime::Balanced => "the whole training split".to_string(),
            Regime::LongTailed => format!(
                "class sizes falling exponentially {LARGEST}:{}, which digit is the tail changing with the seed",
                (LARGEST as f64 / TAIL_RATIO).round()
            ),
            Regime::Noisy => format!(
                "the whole training split with {:.0}% of its labels replaced by a uniformly drawn other class",
                NOISE_RATE * 100.0
            ),
        }
    }

    /// The training split this regime makes for one seed, standardized
    /// with its own statistics; the test split is always the same images
    /// with their true labels.
    fn split(self, all: &Digits, train: &[usize], test: &[usize], seed: u64) -> Split {
        let true_labels = |idx: &[usize]| idx.iter().map(|&i| all.labels[i]).collect::<Vec<_>>();
        let (idx, y_train) = match self {
            Regime::Balanced => (train.to_vec(), true_labels(train)),
            Regime::LongTailed => {
                // Which digit is the head and which the tail changes with
                // the seed, so that the results are about imbalance rather
                // than about one digit being hard.
                let mut rank: Vec<usize> = (0..CLASSES).collect();
                Rng::derive(seed, 3).shuffle(&mut rank);
                let counts = data::long_tail_counts(LARGEST, TAIL_RATIO, CLASSES);
                let idx = data::long_tail_subsample(
                    train,
                    &all.labels,
                    &counts,
                    &rank,
                    &mut Rng::derive(seed, 4),
                );
                let y = true_labels(&idx);
                (idx, y)
            }
            Regime::Noisy => {
                let noisy = data::symmetric_noise(
                    &true_labels(train),
                    CLASSES,
                    NOISE_RATE,
                    &mut Rng::derive(seed, 5),
                );
                (train.to_vec(), noisy)
            }
        };
        let mut x_train = data::rows(&all.pixels, &idx);
        let mut x_test = data::rows(&all.pixels, test);
        data::standardize(&mut x_train, &mut [&mut x_test]);
        let noise_rate = if self == Regime::Noisy {
            NOISE_RATE
        } else {
            0.0
        };
        Split {
            x_train,
            y_train,
            noise_rate,
            x_test,
            y_test: true_labels(test),
        }
    }
}

/// The multi-label regime: composites of two digits side by side. The
/// training split's images are divided (stratified) into those the
/// training composites are made of and those of the composites that tune
/// the thresholds; the test composites are made of test images only.
/// Pairings and the division change with the seed.
fn multi_label_split(all: &Digits, train: &[usize], test: &[usize], seed: u64) -> MultiSplit {
    let train_labels: Vec<usize> = train.iter().map(|&i| all.labels[i]).collect();
    let (fit, tune) = data::stratified_split(
        &train_labels,
        CLASSES,
        TUNE_FRACTION,
        &mut Rng::derive(seed, 6),
    );
    let pick = |local: &[usize]| local.iter().map(|&k| train[k]).collect::<Vec<_>>();
    let compose = |pool: &[usize], stream: u64| {
        data::side_by_side(
            all,
            pool,
            PER_IMAGE,
            CLASSES,
            &mut Rng::derive(seed, stream),
        )
    };
    let (mut x_fit, t_fit) = compose(&pick(&fit), 7);
    let (mut x_tune, t_tune) = compose(&pick(&tune), 8);
    let (mut x_test, t_test) = compose(test, 9);
    data::standardize(&mut x_fit, &mut [&mut x_tune, &mut x_test]);
    MultiSplit {
        train: (x_fit, t_fit),
        tune: (x_tune, t_tune),
        test: (x_test, t_test),
    }
}

struct Job {
    regime: usize,
    model: usize,
    loss: usize,
    seed: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let all = data::read_digits_gz(&root.join("examples/data/digits.csv.gz"))?;
    println!("Which loss? A study on the UCI handwritten digits with classloss.");
    println!(
        "Data: \"Optical Recognition of Handwritten Digits\", E. Alpaydin and C. Kaynak (1998), UCI Machine \
         Learning Repository, https://doi.org/10.24432/C50P49, CC BY 4.0."
    );

    let (train_idx, test_idx) = data::stratified_split(
        &all.labels,
        CLASSES,
        TEST_FRACTION,
        &mut Rng::new(SPLIT_SEED),
    );
    let table = losses::table();
    let ml_table = losses::multi_label_table();
    let names: Vec<&str> = table.iter().map(|e| e.name).collect();
    let ml_names: Vec<&str> = ml_table.iter().map(|e| e.name).collect();
    let splits: Vec<Vec<Split>> = Regime::ALL
        .iter()
        .map(|r| {
            SEEDS
                .iter()
                .map(|&s| r.split(&all, &train_idx, &test_idx, s))
                .collect()
        })
        .collect();
    let ml_splits: Vec<MultiSplit> = SEEDS
        .iter()
        .map(|&s| multi_label_split(&all, &train_idx, &test_idx, s))
        .collect();

    println!(
        "\n{} images of 8x8 pixels, {CLASSES} classes; one fixed stratified split: {} train, {} test.",
        all.len(),
        train_idx.len(),
        test_idx.len()
    );
    println!("Regimes of the training split (the test split and its labels are never changed):");
    for (r, regime) in Regime::ALL.iter().enumerate() {
        let mut counts = class_counts(&splits[r][0].y_train, CLASSES);
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let text = format!(
            "  {:<13} {}; images per class, largest first: {counts:?}",
            regime.name(),
            regime.describe()
        );
        println!("{}", report::wrap(&text, WIDTH, "                "));
    }
    let first = &ml_splits[0];
    let single = |t: &ndarray::Array2<f32>| t.rows().into_iter().filter(|r| r.sum() < 1.5).count();
    let text = format!(
        "  {:<13} two images side by side (8x16 pixels), labelled with the set of their digits; each image \
         in {PER_IMAGE} composites: {} training composites ({} with one label, the same digit twice) from \
         {:.0}% of the training images, {} composites from the other {:.0}% to tune each class's threshold, \
         {} test composites from the test images only",
        "multi-label",
        first.train.1.nrows(),
        single(&first.train.1),
        (1.0 - TUNE_FRACTION) * 100.0,
        first.tune.1.nrows(),
        TUNE_FRACTION * 100.0,
        first.test.1.nrows(),
    );
    println!("{}", report::wrap(&text, WIDTH, "                "));
    let text = format!(
        "Models: {}, trained by Adam (lr {}, batch {}) for {} steps: {} epochs of the balanced and noisy splits, \
         {} of the long-tailed one, {} of the multi-label one. {} seeds {:?}. Metrics after the last epoch (no \
         early stopping).",
        MODELS.map(|m| m.0).join(" and "),
        CONFIG.adam.lr,
        CONFIG.batch,
        CONFIG.steps,
        CONFIG.epochs(splits[0][0].y_train.len()),
        CONFIG.epochs(splits[1][0].y_train.len()),
        CONFIG.epochs(first.train.1.nrows()),
        SEEDS.len(),
        SEEDS
    );
    println!("{}", report::wrap(&text, WIDTH, ""));
    for (what, entries) in [("", &table), (" of the multi-label regime", &ml_table)] {
        println!(
            "Losses{what} ({}), settings fixed in advance, not tuned on this data:",
            entries.len()
        );
        for e in entries.iter() {
            let text = format!("  {:<24} {}", e.name, e.settings);
            println!("{}", report::wrap(&text, WIDTH, &" ".repeat(27)));
        }
    }

    // Every (regime, model, loss, seed) is one deterministic run; the
    // multi-label regime is regime `Regime::ALL.len()`.
    let jobs_of = |regimes: std::ops::Range<usize>, losses: usize| {
        let mut jobs = Vec::new();
        for regime in regimes {
            for model in 0..MODELS.len() {
                for loss in 0..losses {
                    for seed in 0..SEEDS.len() {
                        jobs.push(Job {
                            regime,
                            model,
                            loss,
                            seed,
                        });
                    }
                }
            }
        }
        jobs
    };
    let multi = Regime::ALL.len();
    let jobs = jobs_of(0..multi, table.len());
    let ml_jobs = jobs_of(multi..multi + 1, ml_table.len());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runs: Vec<Run<Scores>> = run_grid(
        (&jobs, &table, workers),
        |j| &splits[j.regime][j.seed],
        train::train,
    )?;
    let ml_runs: Vec<Run<MultiScores>> = run_grid(
        (&ml_jobs, &ml_table, workers),
        |j| &ml_splits[j.seed],
        train::train_multi,
    )?;
    let at = |r: usize, m: usize, l: usize, s: usize| {
        &runs[((r * MODELS.len() + m) * table.len() + l) * SEEDS.len() + s]
    };
    let ml_at = |m: usize, l: usize, s: usize| &ml_runs[(m * ml_table.len() + l) * SEEDS.len() + s];
    let rows_of = |r: usize, m: usize| -> Vec<Row<'_, Scores>> {
        (0..table.len())
            .map(|l| Row {
                name: table[l].name,
                runs: (0..SEEDS.len()).map(|s| at(r, m, l, s).scores).collect(),
            })
            .collect()
    };
    let ml_rows_of = |m: usize| -> Vec<Row<'_, MultiScores>> {
        (0..ml_table.len())
            .map(|l| Row {
                name: ml_table[l].name,
                runs: (0..SEEDS.len()).map(|s| ml_at(m, l, s).scores).collect(),
            })
            .collect()
    };
    let single_rows: Vec<(&str, Vec<Vec<Row<'_, Scores>>>)> = Regime::ALL
        .iter()
        .enumerate()
        .map(|(r, regime)| {
            (
                regime.name(),
                (0..MODELS.len()).map(|m| rows_of(r, m)).collect(),
            )
        })
        .collect();
    let ml_rows: Vec<Vec<Row<'_, MultiScores>>> = (0..MODELS.len()).map(ml_rows_of).collect();
    let models = MODELS.map(|m| m.0);

    // Tables.
    let text = format!(
        "\nResults on the test split ({} images): mean ± std over {} seeds; * marks a column's best mean. \
         Higher is better except for ECE (expected calibration error, {} bins) and the Hamming loss.",
        test_idx.len(),
        SEEDS.len(),
        metrics::ECE_BINS
    );
    println!("{}", report::wrap(&text, WIDTH, ""));
    for (regime, by_model) in &single_rows {
        print_tables(regime, by_model);
    }
    let text = "\nMulti-label, on the test composites: mAP (mean over classes of the average precision of the \
                scores), micro-F1 (all decisions pooled), macro-F1 (mean of the classes' F1) and the Hamming loss \
                (fraction of wrong decisions) at the threshold of each class that maximized its F1 on the \
                tuning composites; micro-F1 @0.5 is at the untuned threshold sigmoid(score) = 0.5.";
    println!("{}", report::wrap(text, WIDTH, ""));
    print_tables("multi-label", &ml_rows);

    // Verdicts, from the numbers above.
    let n = SEEDS.len();
    let text = format!(
        "\nVerdicts. The runs of one seed share everything but the loss (split, subsample, noisy labels, \
         composites, initialization, batch order), so losses are compared seed by seed; \"clear\" means on all \
         {n} seeds."
    );
    println!("{}", report::wrap(&text, WIDTH, ""));
    for (regime, by_model) in &single_rows {
        print_verdicts(regime, by_model);
    }
    print_verdicts("multi-label", &ml_rows);
    println!(
        "\nAgainst each regime's baseline (the first loss) on all {n} seeds (S = softmax regression, M = MLP):"
    );
    for (regime, by_model) in &single_rows {
        print_against(regime, by_model);
    }
    print_against("multi-label", &ml_rows);
    println!(
        "\nThe claims of the documents and papers, checked per model (\"supported\": better on every seed \
         than every loss it is compared with; \"contradicted\": worse on every seed; \"mixed\": the models \
         disagree):"
    );
    for claim in claims::CLAIMS {
        let line = match single_rows.iter().find(|(name, _)| *name == claim.regime) {
            Some((_, by_model)) => claims::verdict(claim, &models, by_model),
            None if claim.regime == "multi-label" => claims::verdict(claim, &models, &ml_rows),
            None => Err(format!("no regime {:?}", claim.regime)),
        }?;
        println!("{}", report::wrap(&format!("  {line}"), WIDTH, "    "));
    }
    println!("\nIn short: per metric, the best mean and the losses it beat on every seed.");
    for (regime, by_model) in &single_rows {
        print_summary(regime, by_model);
    }
    print_summary("multi-label", &ml_rows);
    let text = format!(
        "These numbers come from 8x8 digits, two small models, the fixed settings listed above and {n} seeds; \
         they show what happened here, not what will happen on other data."
    );
    println!("{}", report::wrap(&text, WIDTH, ""));

    // Figures.
    let out = root.join("target/choose_loss");
    std::fs::create_dir_all(&out)?;
    let mut written = Vec::new();
    for (r, regime) in Regime::ALL.iter().enumerate() {
        let path = out.join(format!("curves_{}.svg", regime.file_stem()));
        figures::training_curves(
            &path,
            regime.name(),
            "test accuracy",
            &models,
            &names,
            |m, l| (0..SEEDS.len()).map(|s| at(r, m, l, s)).collect(),
        )?;
        written.push(path);
    }
    let path = out.join("curves_multi_label.svg");
    figures::training_curves(
        &path,
        "multi-label",
        "test mAP",
        &models,
        &ml_names,
        |m, l| (0..SEEDS.len()).map(|s| ml_at(m, l, s)).collect(),
    )?;
    written.push(path);
    let path = out.join("multi_label.svg");
    let shown = &<MultiScores as Scored>::METRICS[..3];
    figures::metric_bars(&path, "multi-label", &models, shown, ml_rows_of)?;
    written.push(path);
    let path = out.join("focal_vs_pt.svg");
    figures::focal_vs_pt(&path)?;
    written.push(path);

    println!(
        "\n{} runs in {:.1} s on {workers} threads. Figures:",
        runs.len() + ml_runs.len(),
        started.elapsed().as_secs_f64()
    );
    for p in &written {
        println!("  {}", p.file_name().unwrap_or_default().to_string_lossy());
    }
    println!("SVG figures written to {}", out.display());
    Ok(())
}

/// A training function: one split, one loss, one model, one seed.
type TrainFn<T, S> = fn(&T, &losses::Entry, Body, &Config, u64) -> Result<Run<S>, String>;

/// Runs `jobs` (of the losses `entries`, on `workers` threads), each on the
/// split `split_of` gives it, with a progress line.
fn run_grid<'s, T: Sync + 's, S: Send>(
    (jobs, entries, workers): (&[Job], &[losses::Entry], usize),
    split_of: impl Fn(&Job) -> &'s T + Sync,
    train: TrainFn<T, S>,
) -> Result<Vec<Run<S>>, String> {
    runner::run_all(
        jobs,
        workers,
        |j| {
            let (entry, body) = (&entries[j.loss], MODELS[j.model].1);
            train(split_of(j), entry, body, &CONFIG, SEEDS[j.seed])
        },
        |j| {
            let regime = Regime::ALL
                .get(j.regime)
                .map_or("multi-label", |r| r.name());
            let (model, loss) = (MODELS[j.model].0, entries[j.loss].name);
            format!("{regime}, {model}, {loss}, seed {}", SEEDS[j.seed])
        },
    )
}

/// The model's tag in the one-line lists.
fn tag(m: usize) -> &'static str {
    if m == 0 { "S" } else { "M" }
}

/// One regime's tables, one per model.
fn print_tables<S: Scored>(regime: &str, by_model: &[Vec<Row<'_, S>>]) {
    println!("\n== {regime} ==");
    for ((model, _), rows) in MODELS.iter().zip(by_model) {
        println!("{model}");
        print!("{}", report::table(rows));
        for (a, b) in report::same_results(rows) {
            println!("  ({a} and {b}: the same numbers on every seed)");
        }
    }
}

fn print_verdicts<S: Scored>(regime: &str, by_model: &[Vec<Row<'_, S>>]) {
    for ((model, _), rows) in MODELS.iter().zip(by_model) {
        println!("  {regime}, {model}:");
        print!("{}", report::verdicts(rows));
    }
}

/// Per metric, the losses that beat the baseline on every seed and those it
/// beat on every seed, both models on one line.
fn print_against<S: Scored>(regime: &str, by_model: &[Vec<Row<'_, S>>]) {
    println!("  {regime}:");
    for &metric in S::METRICS {
        let (mut better, mut worse) = (Vec::new(), Vec::new());
        for (m, rows) in by_model.iter().enumerate() {
            let (b, w) = report::against_baseline(rows, metric);
            better.extend(b.into_iter().map(|x| format!("{x} ({})", tag(m))));
            worse.extend(w.into_iter().map(|x| format!("{x} ({})", tag(m))));
        }
        let strs = |v: &[String]| report::join(&v.iter().map(String::as_str).collect::<Vec<_>>());
        let text = format!(
            "    {:<13} better: {}. worse: {}.",
            metric.name,
            strs(&better),
            strs(&worse)
        );
        println!("{}", report::wrap(&text, WIDTH, &" ".repeat(18)));
    }
}

fn print_summary<S: Scored>(regime: &str, by_model: &[Vec<Row<'_, S>>]) {
    for ((model, _), rows) in MODELS.iter().zip(by_model) {
        println!("  {regime}, {model}:");
        for line in report::summary(rows) {
            println!("{}", report::wrap(&line, WIDTH, &" ".repeat(18)));
        }
    }
}
