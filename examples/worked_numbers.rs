//! Reproduces the worked numbers of the source documents (Chinese technical
//! articles on classification losses) with `classloss`, beside the figure each
//! document gives, and says where a document is wrong.
//!
//! Run: `cargo run --release --example worked_numbers`

use classloss::{ClassTarget, CrossEntropy, LabelSmoothing, Loss, SmoothingConvention};
use ndarray::{array, Array1};

/// Prints one worked number: what the document says and what the crate
/// computes, with a verdict.
fn show(what: &str, document: Option<f64>, ours: f64, digits: usize) {
    match document {
        Some(doc) => {
            let agrees = (doc - ours).abs() <= 0.5 * 10f64.powi(-(digits as i32)) + 1e-12;
            let verdict = if agrees {
                "agrees"
            } else {
                "DOCUMENT IS WRONG"
            };
            println!("  {what:<58} document {doc:>10.digits$}   classloss {ours:>10.digits$}   {verdict}");
        }
        None => println!(
            "  {what:<58} document {:>10}   classloss {ours:>10.digits$}",
            "(none)"
        ),
    }
}

fn section(title: &str) {
    println!("\n== {title}");
}

fn cross_entropy() -> Result<(), classloss::Error> {
    section("Cross-entropy (document 001, section 3)");
    let ce = CrossEntropy::new();
    let v: f64 = ce.forward(
        array![[2.0, 1.0, 0.1]].view(),
        ClassTarget::Labels(array![0].view()),
    )?;
    show(
        "logits [2.0, 1.0, 0.1], label 0 (nn.CrossEntropyLoss)",
        Some(0.4170),
        v,
        4,
    );

    // Cat / dog / bird: softmax output [0.2, 0.7, 0.1], true class dog.
    // Logits ln(p) reproduce exactly that softmax.
    let logits = array![[0.2_f64.ln(), 0.7_f64.ln(), 0.1_f64.ln()]];
    let v = ce.forward(logits.view(), ClassTarget::Labels(array![1].view()))?;
    show(
        "cat/dog/bird, p = [0.2, 0.7, 0.1], label dog: -log 0.7",
        Some(0.3567),
        v,
        4,
    );
    Ok(())
}

fn label_smoothing() -> Result<(), classloss::Error> {
    section("Label smoothing, eps = 0.1 (documents 000 and 002)");
    println!("  Document 000's formula gives the true class 1 - eps and every other class");
    println!("  eps/(C-1) (document 002 says the same); its code instead adds eps/C to every");
    println!("  class after writing 1 - eps on the label, which is PyTorch's convention");
    println!("  (1 - eps) one_hot + eps/C. The two disagree; classloss offers both:");
    let logits = array![[2.0_f64, 1.0, 0.1, -0.5, 0.3]];
    let labels = array![0_usize];
    for (name, convention) in [
        (
            "off_target, the documents' formula",
            SmoothingConvention::OffTarget,
        ),
        (
            "uniform, the documents' code and PyTorch",
            SmoothingConvention::Uniform,
        ),
    ] {
        let ls = LabelSmoothing::new()
            .with_epsilon(0.1)?
            .with_convention(convention);
        let (on, off) = ls.target_values(5)?;
        let v = ls.forward(logits.view(), labels.view())?;
        println!("  {name}: C = 5 target = [{on:.3}, {off:.3}, {off:.3}, {off:.3}, {off:.3}]");
        show(
            "   loss of logits [2.0, 1.0, 0.1, -0.5, 0.3], label 0",
            None,
            v,
            4,
        );
    }
    println!("  Document 000's code has two further bugs: it replaces `targets` by zeros of");
    println!("  the labels' shape (N,) before `scatter_(1, ...)`, so it raises an error (no");
    println!("  dim 1, and a float index) instead of building the (N, C) one-hot matrix from");
    println!("  the labels; and it scores the smoothed targets with KLDivLoss, which differs");
    println!("  from smoothed cross-entropy by the target's entropy (same gradient).");
    let ce_ls = CrossEntropy::new().with_label_smoothing(0.1)?;
    let v: f64 = ce_ls.forward(
        logits.view(),
        ClassTarget::Labels(Array1::from(vec![0]).view()),
    )?;
    show(
        "   CrossEntropy::with_label_smoothing(0.1) = uniform",
        None,
        v,
        4,
    );
    Ok(())
}

fn main() -> Result<(), classloss::Error> {
    println!("Worked numbers of the source documents, recomputed with classloss.");
    println!("'document' is the figure the document prints (rounded as printed).");
    cross_entropy()?;
    label_smoothing()?;
    Ok(())
}
