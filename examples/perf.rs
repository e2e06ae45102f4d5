//! How fast are the losses? Nanoseconds per logit, against a memory copy.
//!
//! For every loss and shape of the table in `perf/cases.rs` (`(N, C)`
//! logits, and a spatial `(N, C, H, W)` cell with `(N, H, W)` labels), times
//! - `fused`: `forward_backward_into` a gradient buffer reused across calls,
//! - `unfused`: `forward`, then `backward` (which allocates the gradient),
//! - `copy`: reading the logits and writing a gradient-sized buffer, the
//!   floor any loss-and-gradient pass has to pay (one thread's `memcpy`,
//!   whatever the thread setting),
//!
//! and prints ns per element (per logit) and `fused / copy`. Every buffer
//! (logits, binary targets, gradient, copy) starts at a 64-byte cache
//! line, as PyTorch's CPU allocator places its tensors. Each time is
//! the median over batches of repeated calls (about 0.3 s per measurement);
//! inputs are fixed-seed (`perf/inputs.rs`).
//!
//! Run: `cargo run --release --example perf` (about a minute on 2 cores).
//! Options: `--quick` (a short budget, rough numbers, for smoke runs),
//! `--filter SUBSTR` (only cells whose `"loss dtype NxC"` or
//! `"loss dtype NxCxHxW"` contains it, for example `--filter cross_entropy`,
//! `--filter 4096x1000` or `--filter spatial`), `--json` (the same results
//! as JSON on stdout, a spatial cell with `"spatial": [H, W]` beside its
//! `"n"` and `"c"`; progress goes to stderr).
//! `benches/compare_pytorch.py` runs this with `--json` and times the same
//! cells in PyTorch; then, with `--serve`, it asks for slices of fused
//! calls alternating with PyTorch's (`LABEL ITERS` a line on stdin, a cell
//! prepared when its label first comes, and warmed up; the reply is the
//! slice's ns per element on a line of stdout).
//!
//! At the end it says how many cores other processes kept busy meanwhile:
//! above 0.1, the numbers are disturbed.
//!
//! The thread setting printed is the environment's `RAYON_NUM_THREADS`
//! (unset means rayon's default, every core, where the crate uses rayon).

use std::collections::HashMap;
use std::hint::black_box;
use std::io::Write;
use std::process::ExitCode;

#[path = "perf/cases.rs"]
mod cases;
#[path = "perf/inputs.rs"]
mod inputs;
#[path = "perf/load.rs"]
mod load;
#[path = "perf/measure.rs"]
mod measure;

use cases::{CASES, Case};
use measure::{Budget, ns_per_call};

const USAGE: &str =
    "usage: cargo run --release --example perf -- [--quick] [--filter SUBSTR] [--json | --serve]";

struct Options {
    quick: bool,
    filter: Option<String>,
    json: bool,
    serve: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut opts = Options {
        quick: false,
        filter: None,
        json: false,
        serve: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => opts.quick = true,
            "--json" => opts.json = true,
            "--serve" => opts.serve = true,
            "--filter" => {
                opts.filter = Some(args.next().ok_or("--filter needs a value")?);
            }
            "-h" | "--help" => return Err(String::new()),
            _ => match arg.strip_prefix("--filter=") {
                Some(f) => opts.filter = Some(f.to_string()),
                None => return Err(format!("unknown argument {arg:?}")),
            },
        }
    }
    Ok(opts)
}

/// One measured cell, times in ns per element.
struct Row {
    case: Case,
    fused: f64,
    unfused: f64,
    copy: f64,
}

/// The CPU's model name from `/proc/cpuinfo` ("unknown" without it),
/// with the vector extensions that matter to the kernels.
fn machine() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let model = field("model name").unwrap_or_else(|| "unknown".to_string());
    let flags = field("flags").unwrap_or_default();
    let simd: Vec<&str> = ["avx2", "fma", "avx512f"]
        .into_iter()
        .filter(|f| flags.split_whitespace().any(|g| g == *f))
        .collect();
    if simd.is_empty() {
        model
    } else {
        format!("{model} [{}]", simd.join(" "))
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn rayon_threads() -> Option<String> {
    std::env::var("RAYON_NUM_THREADS").ok()
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("perf: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(if msg.is_empty() { 0 } else { 2 });
        }
    };
    if cfg!(debug_assertions) {
        eprintln!("perf: warning: a debug build; use --release for meaningful numbers");
    }
    if opts.serve {
        return serve();
    }
    let budget = if opts.quick {
        Budget::QUICK
    } else {
        Budget::DEFAULT
    };
    let selected: Vec<Case> = CASES
        .iter()
        .copied()
        .filter(|c| {
            opts.filter
                .as_ref()
                .is_none_or(|f| c.label().contains(f.as_str()))
        })
        .collect();
    if selected.is_empty() {
        eprintln!(
            "perf: no cell matches the filter; cells are named like \"cross_entropy f32 256x1000\""
        );
        return ExitCode::from(2);
    }

    if !opts.json {
        print_header(&budget);
    }
    let start = load::Snapshot::now();
    // The copy floor depends only on dtype and shape: measured once each.
    let mut floors: HashMap<(&str, Vec<usize>), f64> = HashMap::new();
    let mut rows = Vec::new();
    for (i, case) in selected.iter().enumerate() {
        if opts.json {
            eprintln!("[{}/{}] {}", i + 1, selected.len(), case.label());
        }
        let mut ops = case.prepare();
        let per_elem = |ns: f64| ns / case.elements() as f64;
        let fused = per_elem(ns_per_call(&budget, &mut ops.fused));
        let unfused = per_elem(ns_per_call(&budget, &mut ops.unfused));
        let copy = *floors
            .entry((case.dtype, case.dims()))
            .or_insert_with(|| per_elem(ns_per_call(&budget, &mut ops.copy)));
        drop(black_box(ops));
        let row = Row {
            case: *case,
            fused,
            unfused,
            copy,
        };
        if !opts.json {
            print_row(&row);
        }
        rows.push(row);
    }
    let others = start.and_then(|s| s.others_since(cores()));
    if opts.json {
        print_json(&budget, &rows, others);
    } else {
        print_load(others);
    }
    ExitCode::SUCCESS
}

/// `--serve`: for each line `LABEL ITERS` of stdin, `ITERS` (at least 1)
/// fused calls of the cell `LABEL` and their ns per element on a line of
/// stdout. The last two cells asked for stay prepared (their buffers warm,
/// as in a training loop, and two cells can alternate); a third label
/// replaces the one asked for longest ago.
fn serve() -> ExitCode {
    const KEPT: usize = 2;
    // The cells, the one asked for last at the end.
    let mut kept: Vec<(String, cases::Prepared)> = Vec::new();
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lines() {
        let Ok(line) = line else { break };
        let Some((label, iters)) = line.rsplit_once(' ') else {
            eprintln!("perf: expected \"LABEL ITERS\", got {line:?}");
            return ExitCode::from(2);
        };
        let (Some(iters), Some(case)) = (
            iters.parse::<u32>().ok().filter(|&n| n > 0),
            CASES.iter().find(|c| c.label() == label),
        ) else {
            eprintln!("perf: no cell {label:?}, or a bad count in {line:?}");
            return ExitCode::from(2);
        };
        match kept.iter().position(|(l, _)| l == label) {
            Some(i) => {
                let cell = kept.remove(i);
                kept.push(cell);
            }
            None => {
                if kept.len() == KEPT {
                    // The old cell's buffers go before the new cell's are made.
                    kept.remove(0);
                }
                let mut ops = case.prepare();
                (ops.fused)();
                kept.push((label.to_string(), ops));
            }
        }
        let Some((_, ops)) = kept.last_mut() else {
            unreachable!("a cell was just pushed")
        };
        let ns =
            measure::time(iters.into(), &mut ops.fused).as_nanos() as f64 / f64::from(iters.max(1));
        if writeln!(out, "{}", ns / case.elements() as f64)
            .and_then(|()| out.flush())
            .is_err()
        {
            break;
        }
    }
    ExitCode::SUCCESS
}

fn print_header(budget: &Budget) {
    println!("classloss perf: ns per element (per logit), lower is better");
    println!(
        "machine: {} ({} logical CPUs available)",
        machine(),
        cores()
    );
    match rayon_threads() {
        Some(n) => println!("threads: RAYON_NUM_THREADS={n}"),
        None => println!("threads: RAYON_NUM_THREADS unset"),
    }
    println!(
        "timing: median of {} batches, ~{:.2} s per measurement{}",
        budget.batches,
        budget.target.as_secs_f64(),
        if budget.target < Budget::DEFAULT.target {
            " (--quick: rough numbers)"
        } else {
            ""
        }
    );
    println!("fused = forward_backward_into a reused buffer; unfused = forward + backward;");
    println!("copy = read the logits, write a gradient-sized buffer (the floor)");
    println!();
    println!(
        "{:<21} {:<5} {:>12} {:>11} {:>9} {:>9} {:>8} {:>10}",
        "loss", "dtype", "shape", "elements", "fused", "unfused", "copy", "fused/copy"
    );
}

fn print_row(r: &Row) {
    println!(
        "{:<21} {:<5} {:>12} {:>11} {:>9.3} {:>9.3} {:>8.3} {:>10.1}",
        r.case.loss,
        r.case.dtype,
        r.case.shape(),
        r.case.elements(),
        r.fused,
        r.unfused,
        r.copy,
        r.fused / r.copy
    );
    // Rows come slowly; show each as it is measured.
    std::io::stdout().flush().ok();
}

/// Says how busy other processes kept the machine during the run.
fn print_load(others: Option<f64>) {
    let Some(others) = others else { return };
    println!();
    println!(
        "other processes kept {others:.2} of {} cores busy during the run",
        cores()
    );
    if others > 0.1 {
        println!("warning: the machine was not quiet; these numbers are disturbed");
    }
}

fn print_json(budget: &Budget, rows: &[Row], others: Option<f64>) {
    let results: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let mut cell = serde_json::json!({
                "loss": r.case.loss,
                "dtype": r.case.dtype,
                "n": r.case.n,
                "c": r.case.c,
                "elements": r.case.elements(),
                "fused_ns_per_elem": r.fused,
                "unfused_ns_per_elem": r.unfused,
                "copy_ns_per_elem": r.copy,
                "fused_over_copy": r.fused / r.copy,
            });
            // Only spatial cells have it: the others' JSON is unchanged.
            if let Some((h, w)) = r.case.spatial {
                cell["spatial"] = serde_json::json!([h, w]);
            }
            cell
        })
        .collect();
    let doc = serde_json::json!({
        "machine": machine(),
        "cores": cores(),
        "rayon_num_threads": rayon_threads(),
        "budget_s": budget.target.as_secs_f64(),
        "batches": budget.batches,
        "other_busy_cores": others,
        "results": results,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&doc).expect("JSON of plain values")
    );
}
