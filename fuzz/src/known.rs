//! Failures known and not fixed yet, and documented limits (issue 11): the
//! fuzzer counts them and goes on instead of stopping at the first. The
//! issue's reproducers and most failures these targets found are fixed
//! (each with a test in `tests/suite/float_edges.rs`) and their entries
//! removed; what is left was still hit by a run of every target after the
//! fixes. Each is as narrow as the facts a case records allow; remove an
//! entry with its fix, and run with `CLASSLOSS_FUZZ_STRICT=1` (the list
//! ignored) to see what is left.

use crate::check::{Facts, Kind};

/// The losses computed from a softmax of the logits.
const SOFTMAX: [&str; 9] = [
    "CrossEntropy",
    "LabelSmoothing",
    "SoftmaxFocal",
    "Poly1",
    "KlDivergence",
    "GeneralizedCrossEntropy",
    "SymmetricCrossEntropy",
    "SoftBootstrapping",
    "HardBootstrapping",
];

/// Whether `kind` on a case with `facts` is a known issue: its index (for
/// the hit counter) and name.
pub fn known_issue(facts: &Facts, kind: Kind) -> Option<(usize, &'static str)> {
    use Kind::*;
    let f = facts;
    let huge = |x: f64| x >= 1e38;
    let option_max = crate::check::option_max();
    let f32_max = f32::MAX as f64;
    let type_max = if f.f32 { f32_max } else { f64::MAX };
    let list: [(bool, &'static str); 10] = [
        (
            f.loss == "CrossEntropy"
                && f.f32
                && f.smoothing > 0.0
                && (f.max_abs * f.weight_max.max(1.0) >= 1e37 || f.weight_max >= 1e37)
                && matches!(kind, SpuriousOverflow | Disagree),
            "CE f32 with smoothing: class weights whose sum passes f32 (w_sum is formed in F): a spurious Overflow or NaN; also 1e37 logits with weights",
        ),
        (
            matches!(f.loss, "CosFace" | "ArcFace" | "CombinedMargin")
                && f.tiny_row
                && matches!(kind, NonFinite | SpuriousOverflow),
            "angular losses: rows of tiny or subnormal norm in f32: the gradient's rounding, amplified by 1 / |w|, gives NaN or a spurious gradient Overflow",
        ),
        (
            f.loss == "CosFace" && f.f32 && huge(f.max_abs),
            "angular losses f32: embeddings or scale near f32::MAX overflow an intermediate of the gradient (a spurious gradient Overflow)",
        ),
        (
            SOFTMAX.contains(&f.loss) && f.max_abs > type_max / 4.0 && kind == NonFinite,
            "softmax losses on logits spanning beyond the type's range (f64 +-1.8e308): 0 * inf = NaN in per-sample values",
        ),
        (
            option_max > type_max.sqrt() && matches!(kind, NonFinite | SpuriousOverflow),
            "an option whose product with another overflows the type (SCE beta * log_zero near f64::MAX; CombinedMargin s * m1^2 in f32)",
        ),
        (
            matches!(f.loss, "Bce" | "BceWithLogits" | "SigmoidFocal")
                && f.strided_input
                && kind == FusedValue,
            "documented limit (README): binary losses on strided inputs, forward and the fused call differ in the last bit",
        ),
        (
            !f.finite && kind == Strided,
            "documented limit: with non-finite inputs the gradient's NaN or inf pattern depends on the buffer's layout",
        ),
        (
            f.loss == "CrossEntropy" && kind == Strided,
            "documented limit (README): CE spatial with a strided buffer, the value differs by an ulp of the logsumexp (2x on a near-zero f32 loss)",
        ),
        (
            f.loss == "CrossEntropy" && f.weight_max > type_max / 16.0 && kind == NonFinite,
            "CE with class weights near the type's max and smoothing: NaN per-sample values (w_sum formed in F)",
        ),
        (
            f.loss == "SigmoidFocal" && f.f32 && f.gamma > 1e6 && kind == Strided,
            "documented limit: sigmoid focal in f32 with gamma above 1e6, the vectorized path drops the focus term where exp(-|x|) underflows f32 (relative error up to 1e-5 against the f64 path)",
        ),
    ];
    list.iter()
        .position(|(hit, _)| *hit)
        .map(|k| (k, list[k].1))
}
