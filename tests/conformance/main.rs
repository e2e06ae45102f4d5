//! Runs every PyTorch reference case against the crate.
//!
//! Reads `tests/data/reference_cases.json` and `tests/data/reference_cases_2.json`
//! (the second wave), and also the file named by the environment variable
//! `CLASSLOSS_REFERENCE_CASES` if set. Prints one line per loss (with its
//! largest error in units of the README's tolerance), the losses of the
//! second wave not built yet ([`NOT_YET`], by name, with their case
//! counts), and a last line `N passed, M failed, K not yet known`; exits
//! non-zero if any case failed. Strict: every other case must run, and an
//! unknown loss name, option or expected field fails the case, naming its
//! id.

mod binary;
mod case;
mod eval;
mod head;
mod margin;
mod metric;
mod reference;
mod robust;
mod selfsupervised;
mod softmax;

use std::collections::BTreeMap;

use case::{Case, Outcome};

/// Runs a generic runner in the case's dtype.
macro_rules! in_dtype {
    ($($run:ident)::+, $case:expr) => {
        match $case.dtype.as_str() {
            "f32" => $($run)::+::<f32>($case),
            "f64" => $($run)::+::<f64>($case),
            other => Err(format!("unknown dtype {other:?}")),
        }
    };
}

/// The losses of `reference_cases_2.json` the crate does not have yet:
/// their cases are counted and listed by name, not run (none today). Every
/// other unknown name fails its case.
const NOT_YET: &[&str] = &[];

fn dispatch(case: &Case) -> Result<Outcome, String> {
    match case.loss.as_str() {
        "cross_entropy" => in_dtype!(softmax::cross_entropy, case),
        "cross_entropy_z_loss" => in_dtype!(softmax::cross_entropy_z_loss, case),
        "label_smoothing" => in_dtype!(softmax::label_smoothing, case),
        "hinge" => in_dtype!(margin::hinge, case),
        "multi_margin" => in_dtype!(margin::multi_margin, case),
        "crammer_singer" => in_dtype!(margin::crammer_singer, case),
        "multilabel_margin" => in_dtype!(margin::multilabel_margin, case),
        "exponential" => in_dtype!(margin::exponential, case),
        "soft_margin" => in_dtype!(margin::soft_margin, case),
        "bce" => in_dtype!(binary::bce, case),
        "bce_with_logits" => in_dtype!(binary::bce_with_logits, case),
        "sigmoid_focal" => in_dtype!(binary::sigmoid_focal, case),
        "multilabel_soft_margin" => in_dtype!(binary::multilabel_soft_margin, case),
        "asymmetric" => in_dtype!(binary::asymmetric, case),
        "zero_one" => in_dtype!(eval::zero_one, case),
        "hamming" => in_dtype!(eval::hamming, case),
        "softmax_focal" => in_dtype!(softmax::softmax_focal, case),
        "poly1" => in_dtype!(softmax::poly1, case),
        "logit_adjusted" => in_dtype!(softmax::logit_adjusted, case),
        "ldam" => in_dtype!(softmax::ldam, case),
        "ohem_cross_entropy" => in_dtype!(softmax::ohem_cross_entropy, case),
        "sparsemax" => in_dtype!(softmax::sparsemax, case),
        "wasserstein" => in_dtype!(softmax::wasserstein, case),
        "ordinal_emd" => in_dtype!(softmax::ordinal_emd, case),
        "hierarchical_cross_entropy" => in_dtype!(softmax::hierarchical_cross_entropy, case),
        "kl_divergence" => in_dtype!(softmax::kl_divergence, case),
        "generalized_cross_entropy" => in_dtype!(robust::generalized_cross_entropy, case),
        "symmetric_cross_entropy" => in_dtype!(robust::symmetric_cross_entropy, case),
        "soft_bootstrapping" => in_dtype!(robust::soft_bootstrapping, case),
        "hard_bootstrapping" => in_dtype!(robust::hard_bootstrapping, case),
        "class_balanced_weights" => in_dtype!(robust::class_balanced_weights_case, case),
        "contrastive" => in_dtype!(metric::contrastive, case),
        "cosine_embedding" => in_dtype!(metric::cosine_embedding, case),
        "margin_ranking" => in_dtype!(metric::margin_ranking, case),
        "triplet_margin" => in_dtype!(metric::triplet_margin, case),
        "center" => in_dtype!(metric::center, case),
        "arcface" => in_dtype!(metric::arcface, case),
        "cosface" => in_dtype!(metric::cosface, case),
        "nt_xent" => in_dtype!(selfsupervised::nt_xent, case),
        "supervised_contrastive" => in_dtype!(selfsupervised::supervised_contrastive, case),
        "byol" => in_dtype!(selfsupervised::byol, case),
        "linear_cross_entropy" => in_dtype!(head::linear_cross_entropy, case),
        other => Err(format!("unknown loss {other:?}")),
    }
}

fn main() {
    // One test for `cargo nextest` (the test tool of `cargo mutants`,
    // `.cargo/mutants.toml`), which lists a binary's tests before it runs
    // them: `--list` names the one test, `reference_cases`, and running it
    // (whatever the filter) runs every case.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("reference_cases: test");
        }
        return;
    }
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/");
    let mut paths = vec![
        format!("{data}reference_cases.json"),
        format!("{data}reference_cases_2.json"),
    ];
    paths.extend(std::env::var("CLASSLOSS_REFERENCE_CASES").ok());

    // loss name -> (passed, failed, worst error in units of the tolerance)
    let mut tally: BTreeMap<String, (usize, usize, f64)> = BTreeMap::new();
    let mut not_yet: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for path in &paths {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        let doc: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"));
        let cases = doc["cases"]
            .as_array()
            .unwrap_or_else(|| panic!("{path}: no \"cases\" list"));
        if cases.is_empty() {
            failures.push(format!("{path}: no cases"));
        }
        for raw in cases {
            if let Some(name) = raw["loss"].as_str().filter(|n| NOT_YET.contains(n)) {
                *not_yet.entry(name.to_string()).or_default() += 1;
                continue;
            }
            let case = match Case::parse(raw) {
                Ok(c) => c,
                Err(e) => {
                    let id = raw["id"].as_str().unwrap_or("<no id>").to_string();
                    failures.push(format!("{id}: {e}"));
                    tally.entry("<unparsed>".into()).or_default().1 += 1;
                    continue;
                }
            };
            let entry = tally.entry(case.loss.clone()).or_default();
            match dispatch(&case).and_then(|out| out.check(&case)) {
                Ok(worst) => {
                    entry.0 += 1;
                    entry.2 = entry.2.max(worst);
                }
                Err(e) => {
                    entry.1 += 1;
                    failures.push(format!("{}: {e}", case.id));
                }
            }
        }
    }

    let (mut passed, mut failed) = (0, 0);
    for (loss, (p, f, worst)) in &tally {
        println!("{loss}: {p} passed, {f} failed (largest error {worst:.1e} of the tolerance)");
        passed += p;
        failed += f;
    }
    for (loss, n) in &not_yet {
        println!("not yet known: {loss} ({n} cases)");
    }
    failed += failures
        .iter()
        .filter(|f| f.ends_with(": no cases"))
        .count();
    for f in &failures {
        println!("FAILED {f}");
    }
    let later: usize = not_yet.values().sum();
    println!("{passed} passed, {failed} failed, {later} not yet known");
    if failed > 0 {
        std::process::exit(1);
    }
}
