//! Which classification loss to choose? A study on real images.
//!
//! Trains softmax regression and a one-hidden-layer network on the UCI
//! handwritten digits (8x8 images, 10 classes) with every loss of the table
//! in `choose_loss/losses.rs`, under three regimes of the training split:
//! balanced, long-tailed (100:1) and 40% symmetric label noise. The test
//! split is never touched. Prints a table per regime (accuracy, macro-F1,
//! the worst class's recall, calibration error; mean ± std over seeds),
//! verdicts computed from those numbers, and writes SVG figures (training
//! curves per regime, the focal loss against `p_t`) to `target/choose_loss/`.
//!
//! Run: `cargo run --release --example choose_loss` (about 15 s on 2 cores).
//!
//! The pieces live in `examples/choose_loss/`: `data` (parsing, split,
//! regimes), `model` (the two networks and Adam, backward by hand), `losses`
//! (the table of losses: adding a loss is adding an entry), `train`,
//! `metrics`, `report` (tables and verdicts), `figures` and `plot`,
//! `runner` (parallel runs with a progress line), `rng`.

use std::path::Path;
use std::time::Instant;

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
use model::{Adam, Body};
use report::{Metric, Row};
use rng::Rng;
use train::{Config, Run, Split};

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
        data::standardize(&mut x_train, &mut x_test);
        Split {
            x_train,
            y_train,
            x_test,
            y_test: true_labels(test),
        }
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
    let names: Vec<&str> = table.iter().map(|e| e.name).collect();
    let splits: Vec<Vec<Split>> = Regime::ALL
        .iter()
        .map(|r| {
            SEEDS
                .iter()
                .map(|&s| r.split(&all, &train_idx, &test_idx, s))
                .collect()
        })
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
    let text = format!(
        "Models: {}, trained by Adam (lr {}, batch {}) for {} steps: {} epochs of the balanced and noisy splits, \
         {} of the long-tailed one. {} seeds {:?}. Metrics after the last epoch (no early stopping).",
        MODELS.map(|m| m.0).join(" and "),
        CONFIG.adam.lr,
        CONFIG.batch,
        CONFIG.steps,
        CONFIG.epochs(splits[0][0].y_train.len()),
        CONFIG.epochs(splits[1][0].y_train.len()),
        SEEDS.len(),
        SEEDS
    );
    println!("{}", report::wrap(&text, WIDTH, ""));
    println!(
        "Losses ({}), settings fixed in advance, not tuned on this data:",
        table.len()
    );
    for e in &table {
        println!("  {:<20} {}", e.name, e.settings);
    }

    // Every (regime, model, loss, seed) is one deterministic run.
    let mut jobs = Vec::new();
    for regime in 0..Regime::ALL.len() {
        for model in 0..MODELS.len() {
            for loss in 0..table.len() {
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
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runs: Vec<Run> = runner::run_all(
        &jobs,
        workers,
        |j| {
            train::train(
                &splits[j.regime][j.seed],
                &table[j.loss],
                MODELS[j.model].1,
                &CONFIG,
                SEEDS[j.seed],
            )
        },
        |j| {
            format!(
                "{}, {}, {}, seed {}",
                Regime::ALL[j.regime].name(),
                MODELS[j.model].0,
                table[j.loss].name,
                SEEDS[j.seed]
            )
        },
    )?;
    let at = |r: usize, m: usize, l: usize, s: usize| {
        &runs[((r * MODELS.len() + m) * table.len() + l) * SEEDS.len() + s]
    };
    let rows_of = |r: usize, m: usize| -> Vec<Row<'_>> {
        (0..table.len())
            .map(|l| Row {
                name: table[l].name,
                runs: (0..SEEDS.len()).map(|s| at(r, m, l, s).scores).collect(),
            })
            .collect()
    };

    // Tables.
    let text = format!(
        "\nResults on the test split ({} images): mean ± std over {} seeds; * marks a column's best mean. \
         Higher is better except for ECE (expected calibration error, {} bins).",
        test_idx.len(),
        SEEDS.len(),
        metrics::ECE_BINS
    );
    println!("{}", report::wrap(&text, WIDTH, ""));
    for (r, regime) in Regime::ALL.iter().enumerate() {
        println!("\n== {} ==", regime.name());
        for (m, (model, _)) in MODELS.iter().enumerate() {
            println!("{model}");
            print!("{}", report::table(&rows_of(r, m)));
        }
    }

    // Verdicts, from the numbers above.
    let n = SEEDS.len();
    let text = format!(
        "\nVerdicts. The runs of one seed share everything but the loss (split, subsample, noisy labels, \
         initialization, batch order), so losses are compared seed by seed; \"clear\" means on all {n} seeds."
    );
    println!("{}", report::wrap(&text, WIDTH, ""));
    for (r, regime) in Regime::ALL.iter().enumerate() {
        for (m, (model, _)) in MODELS.iter().enumerate() {
            println!("  {}, {model}:", regime.name());
            print!("{}", report::verdicts(&rows_of(r, m)));
        }
    }
    println!(
        "\nAgainst {} on all {n} seeds (S = softmax regression, M = MLP):",
        names[0]
    );
    for (r, regime) in Regime::ALL.iter().enumerate() {
        println!("  {}:", regime.name());
        for metric in Metric::ALL {
            let (mut better, mut worse) = (Vec::new(), Vec::new());
            for m in 0..MODELS.len() {
                let tag = if m == 0 { "S" } else { "M" };
                let (b, w) = report::against_baseline(&rows_of(r, m), metric);
                better.extend(b.into_iter().map(|x| format!("{x} ({tag})")));
                worse.extend(w.into_iter().map(|x| format!("{x} ({tag})")));
            }
            let strs =
                |v: &[String]| report::join(&v.iter().map(String::as_str).collect::<Vec<_>>());
            let text = format!(
                "    {:<12} better: {}. worse: {}.",
                metric.name(),
                strs(&better),
                strs(&worse)
            );
            println!("{}", report::wrap(&text, WIDTH, "                 "));
        }
    }
    println!("\nIn short: per metric, the best mean and the losses it beat on every seed.");
    for (r, regime) in Regime::ALL.iter().enumerate() {
        for (m, (model, _)) in MODELS.iter().enumerate() {
            println!("  {}, {model}:", regime.name());
            for line in report::summary(&rows_of(r, m)) {
                println!("{}", report::wrap(&line, WIDTH, "                 "));
            }
        }
    }
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
        let models = MODELS.map(|m| m.0);
        figures::training_curves(&path, regime.name(), &models, &names, |m, l| {
            (0..SEEDS.len()).map(|s| at(r, m, l, s)).collect()
        })?;
        written.push(path);
    }
    let path = out.join("focal_vs_pt.svg");
    figures::focal_vs_pt(&path)?;
    written.push(path);

    println!(
        "\n{} runs in {:.1} s on {workers} threads. Figures:",
        runs.len(),
        started.elapsed().as_secs_f64()
    );
    for p in &written {
        println!("  {}", p.file_name().unwrap_or_default().to_string_lossy());
    }
    println!("SVG figures written to {}", out.display());
    Ok(())
}
