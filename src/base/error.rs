//! The crate's one error type.

use thiserror::Error;

/// Every way a loss call can reject its input or options.
///
/// Messages name the argument and give the expected and the actual value,
/// for example `logits: expected shape [4, 10], got [4, 9]`.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum Error {
    /// Two arrays that must agree in shape do not.
    #[error("{what}: expected shape {expected}, got {actual}")]
    ShapeMismatch {
        /// The argument whose shape is wrong.
        what: &'static str,
        /// The shape it must have, written as `[a, b]`.
        expected: String,
        /// The shape it has.
        actual: String,
    },
    /// An array has the wrong number of dimensions.
    #[error("{what}: expected {expected} dimensions, got {actual} (shape {shape})")]
    RankMismatch {
        /// The argument whose rank is wrong.
        what: &'static str,
        /// The rank it must have (for example `2` or `at least 2`).
        expected: String,
        /// The rank it has.
        actual: usize,
        /// Its shape.
        shape: String,
    },
    /// A class label is not in `0..num_classes`.
    #[error("{what}{index:?}: label {label} is out of range for {num_classes} classes (expected 0..={max})", max = num_classes.saturating_sub(1))]
    LabelOutOfRange {
        /// The argument holding the labels.
        what: &'static str,
        /// The position of the offending label.
        index: Vec<usize>,
        /// The label found there (any integer type, as `i64`; a `u64` label
        /// beyond `i64::MAX` shows as `i64::MAX`).
        label: i64,
        /// The number of classes.
        num_classes: usize,
    },
    /// A target value is outside the set or range the loss accepts.
    #[error("{what}{index:?}: expected {expected}, got {value}")]
    InvalidTarget {
        /// The argument holding the targets.
        what: &'static str,
        /// The position of the offending value.
        index: Vec<usize>,
        /// The value found there.
        value: f64,
        /// What the loss accepts (for example `a value in [0, 1]`).
        expected: &'static str,
    },
    /// A target of a kind the loss does not take (probabilities for the
    /// fused head, per-token weights for a loss without them).
    #[error("{what}: expected {expected}, got {actual}")]
    UnsupportedTarget {
        /// The argument holding the target.
        what: &'static str,
        /// The kinds the loss takes.
        expected: &'static str,
        /// The kind given.
        actual: &'static str,
    },
    /// An input value the loss cannot use: a row of zero norm that must be
    /// normalized, or a cosine outside `[-1, 1]`.
    #[error("{what}{index:?}: expected {expected}, got {value}")]
    InvalidInput {
        /// The argument holding the value.
        what: &'static str,
        /// The position of the offending value (the row for a norm).
        index: Vec<usize>,
        /// The value found there (the row's norm for a zero-norm row).
        value: f64,
        /// What the loss accepts (for example `a row with a nonzero norm`).
        expected: &'static str,
    },
    /// An option is outside its valid range.
    #[error("option `{name}`: expected {expected}, got {value}")]
    InvalidOption {
        /// The option's name.
        name: &'static str,
        /// The value given.
        value: String,
        /// What the option accepts.
        expected: &'static str,
    },
    /// The batch has no samples (or a sample has no classes or features).
    #[error("{what}: expected at least one {unit}, got an empty array of shape {shape}")]
    EmptyBatch {
        /// The argument that is empty.
        what: &'static str,
        /// What is missing: `sample`, `class` or `feature`.
        unit: &'static str,
        /// Its shape.
        shape: String,
    },
    /// A finite input whose loss is too large for the float type: the true
    /// value exists but cannot be represented, so no value is returned.
    #[error("{what}{index:?}: {quantity} overflows {dtype}: expected at most {max}, got {actual}")]
    Overflow {
        /// The argument whose values make the loss overflow.
        what: &'static str,
        /// The sample's position, or empty when the reduced value (the sum
        /// of finite per-sample values) overflows.
        index: Vec<usize>,
        /// What overflows, for example `exp(-y * s)`.
        quantity: &'static str,
        /// The float type, `f32` or `f64`.
        dtype: &'static str,
        /// The type's largest finite value, written as `3.4028235e38`.
        max: String,
        /// The true value, for example `exp(100), about 2.688e43`.
        actual: String,
    },
    /// A distributed call failed on other processes of its group: their
    /// error is theirs to report, and this process stops with them rather
    /// than wait for collectives they will not join.
    #[error(
        "{what}: expected every process of the group to succeed, got an error on {failed} of {processes}"
    )]
    PeerFailed {
        /// The distributed call.
        what: &'static str,
        /// How many processes failed.
        failed: usize,
        /// The size of the group.
        processes: usize,
    },
    /// The processes of a distributed call disagree on something they must
    /// share: their class shards (which must tile the classes), or an input
    /// or option every process must pass alike (the hidden states, the
    /// labels, the options).
    #[error("{what}: expected {expected}, got {actual}")]
    GroupMismatch {
        /// What disagrees.
        what: &'static str,
        /// What the processes must agree on.
        expected: String,
        /// What they passed.
        actual: String,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
