//! Reproduces the worked numbers of the source documents with `classloss`,
//! beside the figure each document gives, and says where a document is wrong.
//!
//! The documents are five Chinese articles on choosing a classification loss,
//! numbered 000 to 004. They are not shipped with the crate: the developers
//! have them in the project's shared folder, `../shared/seeds/` beside the
//! repository (`001_*.txt` is document 001).
//!
//! Sections that name a method without a worked number or a stated example
//! to compute one from have nothing to reproduce, and no number is made up
//! for them: document 000's multi-label (BCE with thresholding, Hamming,
//! ranking), self-supervised (SimCLR, BYOL), noisy-label (Co-teaching, GCE,
//! bootstrapping), mixed-precision and evaluation sections, and document
//! 002's topological and distribution-matching losses. (The F1 and Hamming
//! figures below are read on document 001's own worked examples.)
//!
//! Run: `cargo run --release --example worked_numbers`

use classloss::{
    ArcFace, Bce, BceWithLogits, CenterInput, CenterLoss, Contrastive, CrossEntropy, Embeddings,
    Exponential, Hamming, Hinge, LabelSmoothing, Loss, MultiLabelSoftMargin, Pair, Reduction,
    SigmoidFocal, SmoothingConvention, SoftmaxFocal, ZeroDivision, ZeroOne, argmax_predictions,
    class_balanced_weights, inverse_frequency_weights, multiclass_f1,
    sqrt_inverse_frequency_weights,
};
use ndarray::{Array1, Array2, Axis, Ix1, array};

/// `x` with `decimals` decimals, or more where a small value needs them to
/// keep four significant digits: `num(0.0089258, 4)` is `0.008926`, not
/// `0.0089`. Zero and values of magnitude 1 or more keep `decimals`.
fn num(x: f64, decimals: usize) -> String {
    let mut d = decimals;
    if x != 0.0 && x.abs() < 1.0 {
        // floor(log10 |x|) <= -1 here, so this is at least 4.
        d = d.max((3 - x.abs().log10().floor() as i32) as usize);
    }
    format!("{x:.d$}")
}

/// Prints one worked number: what the document says (as rounded there, to
/// `digits` decimals) and what the crate computes (with at least four
/// significant digits), with a verdict.
fn show(what: &str, document: Option<f64>, ours: f64, digits: usize) {
    match document {
        Some(doc) => {
            let agrees = (doc - ours).abs() <= 0.5 * 10f64.powi(-(digits as i32)) + 1e-12;
            let verdict = if agrees {
                "agrees"
            } else {
                "DOCUMENT IS WRONG"
            };
            println!(
                "  {what:<58} document {doc:>10.digits$}   classloss {:>10}   {verdict}",
                num(ours, digits)
            );
        }
        None => println!(
            "  {what:<58} document {:>10}   classloss {:>10}",
            "(none)",
            num(ours, digits)
        ),
    }
}

fn section(title: &str) {
    println!("\n== {title}");
}

fn cross_entropy() -> Result<(), classloss::Error> {
    section("Cross-entropy (document 001, section 3)");
    let ce = CrossEntropy::new();
    let v: f64 = ce.forward(array![[2.0, 1.0, 0.1]].view(), array![0].view())?;
    // The document prints the code, not its output: no figure to compare.
    show(
        "logits [2.0, 1.0, 0.1], label 0 (nn.CrossEntropyLoss; the code's output)",
        None,
        v,
        4,
    );

    // Cat / dog / bird: softmax output [0.2, 0.7, 0.1], true class dog.
    // Logits ln(p) reproduce exactly that softmax.
    let logits = array![[0.2_f64.ln(), 0.7_f64.ln(), 0.1_f64.ln()]];
    let v = ce.forward(logits.view(), array![1].view())?;
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
        let (on, off) = (num(on, 3), num(off, 3));
        println!("  {name}: C = 5 target = [{on}, {off}, {off}, {off}, {off}]");
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
    let v: f64 = ce_ls.forward(logits.view(), Array1::from(vec![0]).view())?;
    show(
        "   CrossEntropy::with_label_smoothing(0.1) = uniform",
        None,
        v,
        4,
    );
    println!("  Document 002's table also gives label smoothing a 'temperature T, T = 2");
    println!("  common'. Label smoothing has one parameter, eps: it mixes the target with the");
    println!("  uniform distribution. A temperature divides the scores instead, softmax(z / T):");
    println!("  a teacher's softened outputs in distillation (Hinton et al. 2015; score them");
    println!("  with KlDivergence), or calibration after training (Guo et al. 2017).");
    Ok(())
}

/// The largest weight over the smallest: how far a weighting departs from
/// leaving every class alone (1).
fn spread(weights: &Array1<f64>) -> f64 {
    let max = weights.fold(f64::NEG_INFINITY, |m, &w| m.max(w));
    let min = weights.fold(f64::INFINITY, |m, &w| m.min(w));
    max / min
}

fn imbalance() -> Result<(), classloss::Error> {
    section("Class imbalance: reweighting (document 000, section 3.1)");
    println!("  Document 000 weights class c by 1/freq(c), or by the square root of its count");
    println!("  (which it calls the effective-number method), and makes its case on CIFAR-100:");
    println!("  100 classes of 600 images each. On those counts:");
    let counts = [600_usize; 100];
    show(
        "inverse frequency: largest weight / smallest",
        None,
        spread(&inverse_frequency_weights(&counts)?),
        4,
    );
    show(
        "inverse square root: largest weight / smallest",
        None,
        spread(&sqrt_inverse_frequency_weights(&counts)?),
        4,
    );
    // The document gives no beta; Cui et al. tried these, and any beta
    // weights equal counts equally.
    let mut effective = 1.0_f64;
    for beta in [0.9, 0.99, 0.999, 0.9999] {
        effective = effective.max(spread(&class_balanced_weights(&counts, beta)?));
    }
    show(
        "effective number, beta 0.9 to 0.9999: largest / smallest",
        None,
        effective,
        4,
    );
    println!("  CIFAR-100 is balanced, so every weighting gives every class the same weight:");
    println!("  whatever the case study's gain of focal loss over cross-entropy (last section),");
    println!("  it cannot come from correcting class imbalance. And the effective number of");
    println!("  samples (Cui et al. 2019) is E_n = (1 - beta^n) / (1 - beta), weight 1 / E_n,");
    println!("  not a square root; 1 / sqrt(n) is a separate, milder scheme. classloss has both");
    println!("  (class_balanced_weights, sqrt_inverse_frequency_weights).");
    println!("  Its focal-loss advice sets alpha 'to the inverse frequency of the minority");
    println!("  class', yet its code uses 0.25 and documents 001 and 002 keep alpha in [0, 1]:");
    println!("  at gamma = 2, Lin et al. 2017 found 0.25 on the rare class best, a weight below");
    println!("  the frequent class's 0.75 (the focal term already mutes the easy majority).");
    Ok(())
}

fn binary_cross_entropy() -> Result<(), classloss::Error> {
    section("BCE (document 001, section 2)");
    let p = array![0.9_f64, 0.1, 0.4];
    let t = array![1.0_f64, 0.0, 1.0];
    let v = Bce::<f64, Ix1>::spatial().forward(p.view(), t.view())?;
    show("nn.BCELoss, p = [0.9, 0.1, 0.4], y = [1, 0, 1]", None, v, 4);
    println!("  (the document prints the code but not its output; by hand:");
    println!("   (-ln 0.9 - ln 0.9 - ln 0.4) / 3 = (0.1054 + 0.1054 + 0.9163) / 3)");
    let logits = p.mapv(|q: f64| (q / (1.0 - q)).ln());
    let w = BceWithLogits::<f64, Ix1>::spatial().forward(logits.view(), t.view())?;
    show(
        "BCEWithLogitsLoss on the logits ln(p / (1 - p)): same value",
        None,
        w,
        4,
    );
    // The document's table puts BCE to multi-label use, each label a binary
    // task; its three probabilities (summing to 1.4, not a softmax) read
    // naturally as one image's three labels.
    let image = logits.insert_axis(Axis(0));
    let labels = t.insert_axis(Axis(0));
    let m = MultiLabelSoftMargin::new().forward(image.view(), labels.view())?;
    show(
        "as one image's 3 labels: MultiLabelSoftMarginLoss, same",
        None,
        m,
        4,
    );
    let h = Hamming::new().forward(image.view(), labels.view())?;
    show(
        "  Hamming loss at threshold 0.5: label 3 (p = 0.4) missed",
        None,
        h,
        4,
    );
    Ok(())
}

fn zero_one() -> Result<(), classloss::Error> {
    section("0-1 loss (document 001, section 1)");
    // Two samples whose prediction (argmax) is class 1; true labels 1 and 2.
    let logits = array![[0.1_f64, 2.0, 0.3], [0.2, 1.5, 0.4]];
    let labels = array![1_usize, 2];
    let zo = ZeroOne::new().with_reduction(Reduction::None);
    let per: Array1<f64> = zo.per_sample(logits.view(), labels.view())?;
    show("y = 1, prediction 1", Some(0.0), per[0], 0);
    show("y = 2, prediction 1", Some(1.0), per[1], 0);
    let rate: f64 = ZeroOne::new().forward(logits.view(), labels.view())?;
    show(
        "mean over the table (the code's .mean(): the error rate)",
        None,
        rate,
        2,
    );
    // Document 000 (section 5) asks for F1 beside accuracy; this table is the
    // documents' only worked set of predictions to read it on.
    let predicted = argmax_predictions(&logits)?;
    let f1 = multiclass_f1(&labels, &predicted, 3)?;
    let undefined = "defined: the table predicts two samples";
    show(
        "micro F1 of the table (= accuracy, 1 - the error rate)",
        None,
        f1.micro_f1().expect(undefined),
        4,
    );
    show(
        "macro F1 over the table's classes 1 and 2: (2/3 + 0) / 2",
        None,
        f1.macro_f1(ZeroDivision::Exclude).expect(undefined),
        4,
    );
    println!("  (the document's pseudo-code names its variable `0_1_loss`, which is not a");
    println!("   valid Python identifier: a name cannot start with a digit.)");
    Ok(())
}

fn focal() -> Result<(), classloss::Error> {
    section("Focal loss, 3 classes, label 1, alpha = 1, gamma = 2 (document 001)");
    let focal = SoftmaxFocal::new().with_gamma(2.0)?.with_alpha(1.0)?;
    let ce = CrossEntropy::new();
    let mut ratios = Vec::new();
    for (name, p, doc_ce) in [
        (
            "hard sample p = [0.5, 0.3, 0.2]",
            [0.5_f64, 0.3, 0.2],
            1.204,
        ),
        ("easy sample p = [0.1, 0.8, 0.1]", [0.1, 0.8, 0.1], 0.223),
    ] {
        let logits = Array2::from_shape_fn((1, 3), |(_, c)| p[c].ln());
        let labels = array![1_usize];
        let c: f64 = ce.forward(logits.view(), labels.view())?;
        let f: f64 = focal.forward(logits.view(), labels.view())?;
        show(
            &format!("{name}: cross-entropy -log p_y"),
            Some(doc_ce),
            c,
            3,
        );
        let factor = (1.0 - p[1]).powi(2);
        println!("  {name}: focal = {} x {}", num(factor, 2), num(c, 3));
        show(&format!("{name}: focal loss"), None, f, 4);
        ratios.push(c / f);
    }
    println!(
        "  cross-entropy / focal: hard {:.2}x, easy {:.2}x",
        ratios[0], ratios[1]
    );
    show(
        "document 001: the easy sample's loss shrinks 'nearly 100 times'",
        Some(100.0),
        ratios[1],
        0,
    );
    println!("  Wrong: (1 - 0.8)^2 = 0.04, a 25x reduction. The hard sample's 'about two");
    println!("  times' is right (1 / 0.49 = 2.04x). Relative to each other, the hard sample's");
    println!("  weight grows 0.49 / 0.04 = {:.2}x.", 0.49 / 0.04);
    let amplification = num((1.0_f64 - 0.5).powi(2), 2);
    println!("  Document 002 says gamma = 2 'amplifies the loss of a misclassified sample 4");
    println!("  times'. Wrong: the factor (1 - p_t)^gamma is at most 1, so focal loss never");
    println!(
        "  amplifies any loss; at p_t = 0.5 it multiplies it by {amplification}, a 4x REDUCTION,"
    );
    println!(
        "  and even a badly misclassified p_t = 0.1 keeps only {} of it.",
        num(0.9_f64.powi(2), 2)
    );

    section("Focal loss code in the documents (binary, alpha = 0.25, gamma = 2)");
    // Document 000 passes probabilities (sigmoid already applied) to
    // binary_cross_entropy_with_logits, which applies sigmoid again.
    let z = array![2.0_f64];
    let t = array![1.0_f64];
    let right = SigmoidFocal::<f64, Ix1>::spatial().forward(z.view(), t.view())?;
    let sig = z.mapv(|v: f64| 1.0 / (1.0 + (-v).exp()));
    let doc000 = SigmoidFocal::<f64, Ix1>::spatial().forward(sig.view(), t.view())?;
    show(
        "logit 2.0, y = 1: torchvision sigmoid_focal_loss",
        None,
        right,
        5,
    );
    show(
        "document 000's FocalLoss (sigmoid applied twice)",
        None,
        doc000,
        5,
    );
    println!("  Document 000 feeds sigmoid(x) to binary_cross_entropy_with_logits: the sigmoid");
    println!(
        "  is applied twice, so a confident correct prediction keeps {:.0}x the loss.",
        doc000 / right
    );
    // Document 001's function uses (1 - p)^gamma whatever the target, so an
    // easy negative (p = 0.1, y = 0) is not down-weighted.
    let p = 0.1_f64;
    let bce = -(1.0 - p).ln();
    let doc001 = 0.25 * (1.0 - p).powi(2) * bce;
    let z = array![(p / (1.0 - p)).ln()];
    let right = SigmoidFocal::<f64, Ix1>::spatial().forward(z.view(), array![0.0_f64].view())?;
    show(
        "p = 0.1, y = 0 (an easy negative): torchvision",
        None,
        right,
        5,
    );
    show(
        "document 001's focal_loss ((1 - p)^gamma for every target)",
        None,
        doc001,
        5,
    );
    println!("  Document 001's code weights by (1 - p)^gamma for negatives too, where the");
    println!("  focal factor is p^gamma: the easy negative keeps 81% of its loss instead of 1%");
    println!("  (it also spells torch as `troch`, and applies alpha to both classes).");
    Ok(())
}

fn margins() -> Result<(), classloss::Error> {
    section("Hinge, exponential and logistic losses (document 002's table)");
    println!("  Document 002 compares the 'error sensitivity' of cross-entropy (logarithmic),");
    println!("  exponential and hinge loss (linear). On margins z = y f(x):");
    let z = array![-3.0_f64, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0];
    let y = Array1::from_elem(z.len(), 1.0_f64);
    let none = Reduction::None;
    let hinge = Hinge::new()
        .with_reduction(none)
        .per_sample(z.view(), y.view())?;
    let expo = Exponential::new()
        .with_reduction(none)
        .per_sample(z.view(), y.view())?;
    let logistic = BceWithLogits::<f64, Ix1>::spatial()
        .with_reduction(none)
        .per_sample(z.view(), y.view())?;
    println!(
        "  {:>6} {:>12} {:>12} {:>12}",
        "z", "logistic", "exponential", "hinge"
    );
    for i in 0..z.len() {
        println!(
            "  {:>6.1} {:>12} {:>12} {:>12}",
            z[i],
            num(logistic[i], 4),
            num(expo[i], 4),
            num(hinge[i], 4)
        );
    }
    println!("  Cross-entropy's response is logarithmic in the probability (-log p), but in the");
    println!("  margin it grows linearly far on the wrong side, like the hinge; only the");
    println!("  exponential loss explodes there (why AdaBoost is sensitive to outliers and");
    println!("  mislabeled points). The hinge is exactly 0 past the margin z = 1.");
    Ok(())
}

fn embeddings() -> Result<(), classloss::Error> {
    section("Contrastive loss (document 002): 0.5 y D^2 + 0.5 (1 - y) max(0, m - D)^2");
    let x1 = array![[0.0_f64, 0.0], [0.0, 0.0], [0.0, 0.0]];
    let x2 = array![[3.0_f64, 4.0], [3.0, 4.0], [1.0, 0.0]];
    let similar = array![1.0_f64, 0.0, 0.0];
    let per = Contrastive::new()
        .with_margin(6.0)?
        .with_reduction(Reduction::None)
        .per_sample(
            Pair {
                x1: x1.view(),
                x2: x2.view(),
            },
            similar.view(),
        )?;
    show("similar pair at distance 5", None, per[0], 4);
    show(
        "dissimilar pair at distance 5, margin 6: 0.5 (6 - 5)^2",
        None,
        per[1],
        4,
    );
    show(
        "dissimilar pair at distance 1, margin 6: 0.5 (6 - 1)^2",
        None,
        per[2],
        4,
    );

    section("Center loss (document 003): L_c = 0.5 sum_i ||x_i - c_{y_i}||^2");
    let features = array![[1.0_f64, 0.0], [3.0, 0.0], [0.0, 2.0]];
    let mut centers = array![[0.0_f64, 0.0], [0.0, 1.0]];
    let labels = array![0_usize, 0, 1];
    let center = CenterLoss::new()
        .with_alpha(0.5)?
        .with_reduction(Reduction::Sum);
    let input = CenterInput {
        features: features.view(),
        centers: centers.view(),
    };
    let v: f64 = center.forward(input, labels.view())?;
    show(
        "features (1,0), (3,0) of class 0, (0,2) of class 1",
        None,
        v,
        4,
    );
    center.update_centers(features.view(), labels.view(), centers.view_mut())?;
    println!("  Document 003's 'implementation details' set each center to the batch mean of");
    println!("  its class (class 0 -> (2, 0)); the paper (Wen et al. 2016) moves it only part");
    println!("  way, c_j -= alpha sum (c_j - x_i) / (1 + n_j): with alpha = 0.5, class 0 ->");
    println!(
        "  ({}, {}), class 1 -> ({}, {}). classloss implements the paper's update.",
        num(centers[[0, 0]], 4),
        num(centers[[0, 1]], 4),
        num(centers[[1, 0]], 4),
        num(centers[[1, 1]], 4)
    );

    section(
        "ArcFace (document 003): -log e^{s cos(theta_y + m)} / (e^{s cos(theta_y + m)} + sum e^{s cos theta_j})",
    );
    // One embedding at 60 degrees from its class weight and 45 degrees from
    // another class's: the margin makes the true class harder still.
    let e = array![[1.0_f64, 0.0]];
    let deg = std::f64::consts::PI / 180.0;
    let w = array![
        [(60.0 * deg).cos(), (60.0 * deg).sin()],
        [(45.0 * deg).cos(), -(45.0 * deg).sin()]
    ];
    let input = Embeddings {
        embeddings: e.view(),
        weight: w.view(),
    };
    for m in [0.0, 0.5] {
        let arc = ArcFace::new().with_scale(16.0)?.with_margin(m)?;
        let v: f64 = arc.forward(input, array![0_usize].view())?;
        let target = 16.0 * (60.0 * deg + m).cos();
        let by_hand = (target.exp() + (16.0 * (45.0 * deg).cos()).exp()).ln() - target;
        show(
            &format!("theta_y = 60, theta_other = 45 deg, s = 16, m = {m}"),
            None,
            v,
            4,
        );
        show(
            "  the document's formula evaluated directly",
            None,
            by_hand,
            4,
        );
    }
    Ok(())
}

/// The figures the documents report from training runs: no loss
/// evaluation reproduces them, so they are named, not shown.
fn training_results() {
    section("Figures from training runs (not recomputed: they need the data and the runs)");
    println!("  document 000: focal loss +3.2% accuracy over cross-entropy on CIFAR-100;");
    println!("  document 002: focal loss +10% AP in industrial defect detection, label");
    println!("  smoothing -2 to 3% test error on ResNet-50, contrastive loss 98.7% face");
    println!("  verification, topological loss -15% hierarchical error on 'ITU-T'.");
    println!("  `--example choose_loss` measures such comparisons on the bundled digits.");
}

fn main() -> Result<(), classloss::Error> {
    println!("Worked numbers of the source documents, recomputed with classloss.");
    println!("The documents: five Chinese articles on choosing a classification loss");
    println!("(000 to 004), not shipped with the crate (see this example's doc comment).");
    println!("'document' is the figure the document prints (rounded as printed).");
    cross_entropy()?;
    binary_cross_entropy()?;
    zero_one()?;
    label_smoothing()?;
    focal()?;
    imbalance()?;
    margins()?;
    embeddings()?;
    training_results();
    Ok(())
}
