//! Which classification loss to choose? A study on real images.
//!
//! Trains softmax regression and a one-hidden-layer network on the UCI
//! handwritten digits (8x8 images, 10 classes) with every loss of the
//! table in `choose_loss/losses.rs`, under three regimes of the training
//! split: balanced, long-tailed (100:1) and 40% symmetric label noise. The
//! test split is never touched. Prints a table per regime (accuracy,
//! macro-F1, worst class's recall, calibration error, mean ± std over
//! seeds), verdicts computed from those numbers, and writes SVG figures.
//!
//! Run: `cargo run --release --example choose_loss`

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

#[path = "choose_loss/data.rs"]
mod data;
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
#[path = "choose_loss/train.rs"]
mod train;

use data::{class_counts, Digits, CLASSES};
use model::{Adam, Body};
use report::{Metric, Row};
use rng::Rng;
use train::{Config, Run, Split};

/// Seeds of the runs; each fixes initialization, batch order, the
/// long-tailed subsample and the noisy labels.
const SEEDS: [u64; 5] = [0, 1, 2, 3, 4];
/// The split is the same for every seed.
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

    /// The training split this regime makes for one seed, standardized.
    fn split(self, all: &Digits, train: &[usize], test: &[usize], seed: u64) -> Split {
        let (idx, labels) = match self {
            Regime::Balanced => (train.to_vec(), None),
            Regime::LongTailed => {
                // Which digit is the head and which the tail changes with
                // the seed, so the results are about imbalance, not about
                // one digit being hard.
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
                (idx, None)
            }
            Regime::Noisy => {
                let clean: Vec<usize> = train.iter().map(|&i| all.labels[i]).collect();
                let noisy =
                    data::symmetric_noise(&clean, CLASSES, NOISE_RATE, &mut Rng::derive(seed, 5));
                (train.to_vec(), Some(noisy))
            }
        };
        let y_train = labels.unwrap_or_else(|| idx.iter().map(|&i| all.labels[i]).collect());
        let mut x_train = data::rows(&all.pixels, &idx);
        let mut x_test = data::rows(&all.pixels, test);
        data::standardize(&mut x_train, &mut x_test);
        Split {
            x_train,
            y_train,
            x_test,
            y_test: test.iter().map(|&i| all.labels[i]).collect(),
        }
    }
}

const BODIES: [(&str, Body); 2] = [
    ("softmax regression", Body::Identity),
    ("MLP, 64 ReLU units", Body::Hidden(HIDDEN)),
];

struct Job {
    regime: usize,
    body: usize,
    entry: usize,
    seed: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let all = data::read_digits_gz(&root.join("examples/data/digits.csv.gz"))?;
    println!("Which loss? A study on the UCI handwritten digits with classloss.");
    println!(
        "Data: \"Optical Recognition of Handwritten Digits\", E. Alpaydin and C. Kaynak (1998), \
         UCI Machine Learning Repository, https://doi.org/10.24432/C50P49, CC BY 4.0."
    );

    let (train_idx, test_idx) = data::stratified_split(
        &all.labels,
        CLASSES,
        TEST_FRACTION,
        &mut Rng::new(SPLIT_SEED),
    );
    let table = losses::table();
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
        "\n{} images, 8x8, {CLASSES} classes; fixed stratified split: {} train, {} test (the test split is never changed).",
        all.len(),
        train_idx.len(),
        test_idx.len()
    );
    for (r, regime) in Regime::ALL.iter().enumerate() {
        let mut counts = class_counts(&splits[r][0].y_train, CLASSES);
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let what = match regime {
            Regime::Balanced => "the whole training split".to_string(),
            Regime::LongTailed => format!(
                "class sizes falling exponentially {LARGEST}:{} (which digit is the tail changes with the seed)",
                (LARGEST as f64 / TAIL_RATIO).round()
            ),
            Regime::Noisy => format!(
                "the whole training split, {:.0}% of its labels replaced by a uniformly drawn other class",
                NOISE_RATE * 100.0
            ),
        };
        println!(
            "  {:<13} {what}; train images per class, largest first: {counts:?}",
            regime.name()
        );
    }
    println!(
        "Models: {}; Adam lr {}, batch {}, {} steps (whole epochs: {} on the balanced and noisy splits, {} on the \
         long-tailed one); {} seeds {:?}; metrics after the last epoch.",
        BODIES.map(|b| b.0).join(" and "),
        CONFIG.adam.lr,
        CONFIG.batch,
        CONFIG.steps,
        CONFIG.epochs(splits[0][0].y_train.len()),
        CONFIG.epochs(splits[1][0].y_train.len()),
        SEEDS.len(),
        SEEDS
    );
    println!("Losses ({}):", table.len());
    for e in &table {
        println!("  {:<22} {}", e.name, e.settings);
    }

    // Every (regime, model, loss, seed) is one run; the runs are spread over
    // the cores, each deterministic on its own.
    let jobs: Vec<Job> = (0..Regime::ALL.len())
        .flat_map(|regime| {
            (0..BODIES.len()).flat_map(move |body| {
                (0..losses::table().len()).flat_map(move |entry| {
                    (0..SEEDS.len()).map(move |seed| Job {
                        regime,
                        body,
                        entry,
                        seed,
                    })
                })
            })
        })
        .collect();
    let results: Vec<Mutex<Option<Run>>> = jobs.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failure: Mutex<Option<String>> = Mutex::new(None);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(k) else { break };
                if failure.lock().unwrap().is_some() {
                    break;
                }
                let split = &splits[job.regime][job.seed];
                let entry = &table[job.entry];
                match train::train(split, entry, BODIES[job.body].1, &CONFIG, SEEDS[job.seed]) {
                    Ok(run) => *results[k].lock().unwrap() = Some(run),
                    Err(e) => *failure.lock().unwrap() = Some(e),
                }
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                let mut err = std::io::stderr().lock();
                let _ = write!(
                    err,
                    "\r  training {n:>3}/{}: {:<12} {:<18} {:<22} seed {}   ",
                    jobs.len(),
                    Regime::ALL[job.regime].name(),
                    BODIES[job.body].0,
                    entry.name,
                    SEEDS[job.seed]
                );
                let _ = err.flush();
            });
        }
    });
    eprint!("\r{:<100}\r", "");
    if let Some(e) = failure.into_inner()? {
        return Err(e.into());
    }
    let runs: Vec<Run> = results
        .into_iter()
        .map(|m| m.into_inner().map(|r| r.expect("every job ran")))
        .collect::<Result<_, _>>()?;
    let at = |r: usize, b: usize, e: usize, s: usize| {
        &runs[((r * BODIES.len() + b) * table.len() + e) * SEEDS.len() + s]
    };

    // Tables.
    let rows_of = |r: usize, b: usize| -> Vec<Row<'_>> {
        (0..table.len())
            .map(|e| Row {
                name: table[e].name,
                runs: (0..SEEDS.len()).map(|s| at(r, b, e, s).scores).collect(),
            })
            .collect()
    };
    println!(
        "\nResults on the test split ({} images), mean ± std over {} seeds; * marks the best mean of a column \
         (higher is better except ECE, 15 bins).",
        test_idx.len(),
        SEEDS.len()
    );
    for (r, regime) in Regime::ALL.iter().enumerate() {
        println!("\n== {} ==", regime.name());
        for (b, (body_name, _)) in BODIES.iter().enumerate() {
            println!("{body_name}");
            print!("{}", report::table(&rows_of(r, b)));
        }
    }

    // Verdicts.
    println!(
        "\nWhat this run measured. Runs of one seed share everything but the loss (subsample, noisy \
         labels, initialization, batch order), so losses are compared seed by seed; \"clearly\" means \
         on all {} seeds.",
        SEEDS.len()
    );
    for (r, regime) in Regime::ALL.iter().enumerate() {
        for (b, (body_name, _)) in BODIES.iter().enumerate() {
            println!("  {}, {body_name}:", regime.name());
            for line in report::verdicts(&rows_of(r, b)) {
                println!("{line}");
            }
        }
    }
    println!(
        "\nAgainst {} (the baseline), per regime, on either model:",
        table[0].name
    );
    for (r, regime) in Regime::ALL.iter().enumerate() {
        for m in Metric::ALL {
            let mut better = Vec::new();
            let mut worse = Vec::new();
            for b in 0..BODIES.len() {
                let (bt, wr) = report::against_baseline(&rows_of(r, b), m);
                let tag = if b == 0 { "softreg" } else { "MLP" };
                better.extend(bt.into_iter().map(|n| format!("{n} ({tag})")));
                worse.extend(wr.into_iter().map(|n| format!("{n} ({tag})")));
            }
            let b: Vec<&str> = better.iter().map(String::as_str).collect();
            let w: Vec<&str> = worse.iter().map(String::as_str).collect();
            println!(
                "  {:<12} {:<12} better on every seed: {}; worse on every seed: {}",
                regime.name(),
                m.name(),
                report::join(&b),
                report::join(&w)
            );
        }
    }
    println!(
        "These are measurements on 8x8 digits with small models, fixed hyper-parameters (listed above) \
         and {} seeds; they say nothing beyond this data.",
        SEEDS.len()
    );

    // Figures.
    let out = root.join("target/choose_loss");
    std::fs::create_dir_all(&out)?;
    let mut written = Vec::new();
    for (r, regime) in Regime::ALL.iter().enumerate() {
        let path = out.join(format!("curves_{}.svg", regime.file_stem()));
        curves_figure(&path, *regime, &table, |b, e| {
            (0..SEEDS.len()).map(|s| at(r, b, e, s)).collect()
        })?;
        written.push(path);
    }
    println!(
        "\nTook {:.1} s on {workers} threads.",
        started.elapsed().as_secs_f64()
    );
    for p in &written {
        println!(
            "  wrote {}",
            p.file_name().unwrap_or_default().to_string_lossy()
        );
    }
    println!("SVG figures written to {}", out.display());
    Ok(())
}

/// One regime's training curves: per model, the training loss relative to
/// its first epoch and the test accuracy, each the mean over seeds.
fn curves_figure<'a>(
    path: &Path,
    regime: Regime,
    table: &[losses::Entry],
    runs_of: impl Fn(usize, usize) -> Vec<&'a Run>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut panels = Vec::new();
    for (b, (body_name, _)) in BODIES.iter().enumerate() {
        let mut loss_series = Vec::new();
        let mut acc_series = Vec::new();
        let mut top = 1.0_f64;
        let mut epochs = 1.0_f64;
        for (e, entry) in table.iter().enumerate() {
            let runs = runs_of(b, e);
            let loss = train::mean_curve(
                &runs
                    .iter()
                    .map(|r| r.train_loss.as_slice())
                    .collect::<Vec<_>>(),
            );
            let acc = train::mean_curve(
                &runs
                    .iter()
                    .map(|r| r.test_accuracy.as_slice())
                    .collect::<Vec<_>>(),
            );
            let first = loss.first().copied().filter(|v| *v > 0.0).unwrap_or(1.0);
            epochs = epochs.max(loss.len() as f64);
            let rel: Vec<(f64, f64)> = loss
                .iter()
                .enumerate()
                .map(|(i, v)| ((i + 1) as f64, v / first))
                .collect();
            top = rel.iter().fold(top, |t, p| t.max(p.1));
            loss_series.push(plot::Series {
                name: entry.name,
                points: rel,
            });
            acc_series.push(plot::Series {
                name: entry.name,
                points: acc
                    .iter()
                    .enumerate()
                    .map(|(i, v)| ((i + 1) as f64, *v))
                    .collect(),
            });
        }
        panels.push(plot::Panel {
            title: format!("{}, {body_name}: training loss", regime.name()),
            x_desc: "epoch",
            y_desc: "training loss / its epoch-1 value",
            x: (1.0, epochs),
            y: (0.0, top * 1.05),
            series: loss_series,
        });
        panels.push(plot::Panel {
            title: format!("{}, {body_name}: test accuracy", regime.name()),
            x_desc: "epoch",
            y_desc: "test accuracy",
            x: (1.0, epochs),
            y: (0.0, 1.0),
            series: acc_series,
        });
    }
    plot::panels(path, &panels, 2, (600, 460))
}
