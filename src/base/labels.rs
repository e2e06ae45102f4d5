//! Class labels of any primitive integer type.
//!
//! PyTorch hands labels over as `i64`, candle as `u32`, burn as `i64` or
//! `i32`, and Rust code indexes with `usize`. [`Labels`] borrows an array of
//! any of them without a copy, so every label loss takes the caller's array
//! as it is: `&labels`, `labels.view()`, or a [`Labels`] made from either.
//! The engines read one label at a time through [`Labels::class`], which
//! costs a predictable branch per sample next to a row of `C` logits.

use ndarray::{ArrayBase, ArrayView, Data, Dimension, IntoDimension, Ix1, Ix2};

use crate::{Error, Result};

/// A borrowed array of class labels of any primitive integer type (`u8` to
/// `u64`, `i8` to `i64`, `usize`, `isize`).
///
/// Made with `From` from an array or a view, which is what every label loss
/// does with the `target` argument, so a caller rarely names this type:
///
/// ```
/// use classloss::{Labels, Loss, SoftmaxFocal};
/// use ndarray::array;
///
/// let logits = array![[2.0_f32, 0.5, -1.0], [0.1, 0.2, 0.3]];
/// let torch_style = array![0_i64, 2];
/// let candle_style = array![0_u32, 2];
/// let focal = SoftmaxFocal::new();
/// let a = focal.forward(&logits, &torch_style)?;
/// let b = focal.forward(logits.view(), candle_style.view())?;
/// let c = focal.forward(&logits, Labels::from(&array![0_usize, 2]))?;
/// assert_eq!((a, b), (c, c));
/// # Ok::<(), classloss::Error>(())
/// ```
///
/// A negative label (other than a cross-entropy `ignore_index`) or one
/// `>= C` is an [`Error::LabelOutOfRange`] naming its position.
#[derive(Clone, Debug)]
pub struct Labels<'a, D: Dimension = Ix1> {
    view: View<'a, D>,
}

#[derive(Clone, Debug)]
enum View<'a, D: Dimension> {
    U8(ArrayView<'a, u8, D>),
    U16(ArrayView<'a, u16, D>),
    U32(ArrayView<'a, u32, D>),
    U64(ArrayView<'a, u64, D>),
    Usize(ArrayView<'a, usize, D>),
    I8(ArrayView<'a, i8, D>),
    I16(ArrayView<'a, i16, D>),
    I32(ArrayView<'a, i32, D>),
    I64(ArrayView<'a, i64, D>),
    Isize(ArrayView<'a, isize, D>),
}

/// Runs `$body` with `$v` bound to the view, whatever its element type.
macro_rules! with_view {
    ($view:expr, $v:ident => $body:expr) => {
        match $view {
            View::U8($v) => $body,
            View::U16($v) => $body,
            View::U32($v) => $body,
            View::U64($v) => $body,
            View::Usize($v) => $body,
            View::I8($v) => $body,
            View::I16($v) => $body,
            View::I32($v) => $body,
            View::I64($v) => $body,
            View::Isize($v) => $body,
        }
    };
}

/// The labels of a [`Labels`] in logical order, widened to `i128`; made by
/// [`Labels::iter`].
pub struct LabelIter<'a, D: Dimension> {
    items: Items<'a, D>,
}

enum Items<'a, D: Dimension> {
    U8(ndarray::iter::Iter<'a, u8, D>),
    U16(ndarray::iter::Iter<'a, u16, D>),
    U32(ndarray::iter::Iter<'a, u32, D>),
    U64(ndarray::iter::Iter<'a, u64, D>),
    Usize(ndarray::iter::Iter<'a, usize, D>),
    I8(ndarray::iter::Iter<'a, i8, D>),
    I16(ndarray::iter::Iter<'a, i16, D>),
    I32(ndarray::iter::Iter<'a, i32, D>),
    I64(ndarray::iter::Iter<'a, i64, D>),
    Isize(ndarray::iter::Iter<'a, isize, D>),
}

impl<D: Dimension> Iterator for LabelIter<'_, D> {
    type Item = i128;

    #[inline]
    fn next(&mut self) -> Option<i128> {
        match &mut self.items {
            Items::U8(it) => it.next().map(|l| l.to_i128()),
            Items::U16(it) => it.next().map(|l| l.to_i128()),
            Items::U32(it) => it.next().map(|l| l.to_i128()),
            Items::U64(it) => it.next().map(|l| l.to_i128()),
            Items::Usize(it) => it.next().map(|l| l.to_i128()),
            Items::I8(it) => it.next().map(|l| l.to_i128()),
            Items::I16(it) => it.next().map(|l| l.to_i128()),
            Items::I32(it) => it.next().map(|l| l.to_i128()),
            Items::I64(it) => it.next().map(|l| l.to_i128()),
            Items::Isize(it) => it.next().map(|l| l.to_i128()),
        }
    }
}

/// A primitive integer type usable as a class label. Sealed.
pub trait Label: Copy + sealed::Sealed + 'static {
    /// The value, widened without loss.
    fn to_i128(self) -> i128;
    /// The value as `u64`, a negative one wrapped to `2^63` or beyond: it
    /// is below a number of classes exactly when the label is a class.
    #[doc(hidden)]
    fn to_u64_wrapping(self) -> u64;
    #[doc(hidden)]
    fn labels<D: Dimension>(view: ArrayView<'_, Self, D>) -> Labels<'_, D>;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! label_types {
    ($($t:ty => $variant:ident),*) => {$(
        impl sealed::Sealed for $t {}
        impl Label for $t {
            #[inline(always)]
            fn to_i128(self) -> i128 {
                self as i128
            }
            #[inline(always)]
            fn to_u64_wrapping(self) -> u64 {
                self as i64 as u64
            }
            fn labels<D: Dimension>(view: ArrayView<'_, Self, D>) -> Labels<'_, D> {
                Labels { view: View::$variant(view) }
            }
        }
    )*};
}

label_types!(u8 => U8, u16 => U16, u32 => U32, u64 => U64, usize => Usize,
    i8 => I8, i16 => I16, i32 => I32, i64 => I64, isize => Isize);

impl<'a, L: Label, D: Dimension> From<ArrayView<'a, L, D>> for Labels<'a, D> {
    fn from(view: ArrayView<'a, L, D>) -> Self {
        L::labels(view)
    }
}

impl<'a, L: Label, S: Data<Elem = L>, D: Dimension> From<&'a ArrayBase<S, D>> for Labels<'a, D> {
    fn from(array: &'a ArrayBase<S, D>) -> Self {
        L::labels(array.view())
    }
}

impl<'a, D: Dimension> Labels<'a, D> {
    /// The shape of the label array.
    pub fn shape(&self) -> &[usize] {
        with_view!(&self.view, v => v.shape())
    }

    /// The number of labels.
    pub fn len(&self) -> usize {
        with_view!(&self.view, v => v.len())
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The labels as `i128` (every label type widens without loss), in
    /// logical order.
    pub fn iter(&self) -> LabelIter<'_, D> {
        LabelIter {
            items: match &self.view {
                View::U8(v) => Items::U8(v.iter()),
                View::U16(v) => Items::U16(v.iter()),
                View::U32(v) => Items::U32(v.iter()),
                View::U64(v) => Items::U64(v.iter()),
                View::Usize(v) => Items::Usize(v.iter()),
                View::I8(v) => Items::I8(v.iter()),
                View::I16(v) => Items::I16(v.iter()),
                View::I32(v) => Items::I32(v.iter()),
                View::I64(v) => Items::I64(v.iter()),
                View::Isize(v) => Items::Isize(v.iter()),
            },
        }
    }

    /// Every label is in `0..classes` or equal to `ignore`; otherwise a
    /// [`Error::LabelOutOfRange`] naming `what` and the first bad position.
    pub(crate) fn check(
        &self,
        what: &'static str,
        classes: usize,
        ignore: Option<i128>,
    ) -> Result<()> {
        let first_bad = with_view!(&self.view, v => {
            let ignored = ignored_as(ignore);
            let bad = |&l: &_| not_class(l, classes, ignored);
            let suspect = match v.as_slice_memory_order() {
                Some(s) => any_not_class(s, classes, ignored),
                None => v.iter().any(bad),
            };
            if suspect {
                v.indexed_iter()
                    .find(|(_, l)| bad(l))
                    .map(|(i, &l)| (i.into_dimension().slice().to_vec(), l.to_i128()))
            } else {
                None
            }
        });
        match first_bad {
            None => Ok(()),
            Some((index, label)) => Err(Error::LabelOutOfRange {
                what,
                index,
                label: i64::try_from(label).unwrap_or(i64::MAX),
                num_classes: classes,
            }),
        }
    }

    /// The labels' shape must be `expected`.
    pub(crate) fn expect_shape(&self, what: &'static str, expected: &[usize]) -> Result<()> {
        crate::base::validate::expect_shape(what, self.shape(), expected)
    }

    /// One label in `0..classes` for each of `rows` rows (no ignored label).
    pub(crate) fn check_rows(&self, rows: usize, classes: usize) -> Result<()> {
        self.expect_shape("labels", &[rows])?;
        self.check("labels", classes, None)
    }

    /// The labels of a contiguous array, in memory order, if they are.
    pub(crate) fn as_slice(&self) -> Option<LabelSlice<'_>> {
        with_view!(&self.view, v => v.as_slice().map(LabelSlice::from))
    }

    /// `(class, ignored)` of every label in logical order, for a checked
    /// array: `class` is the label as an index (0 for an ignored one).
    pub(crate) fn classes(&self, ignore: Option<i128>) -> impl Iterator<Item = Option<usize>> + '_ {
        self.iter().map(move |l| to_class(l, ignore))
    }

    /// `sum w[y]` over the labels `y` that are not `ignore`, for a checked
    /// array: the mean's divisor. Without weights, the count of those
    /// labels (a sum of ones in `f64`, added one a label in a chain, took
    /// 4% of a spatial cross-entropy call's samples).
    pub(crate) fn weight_sum<F: crate::Float>(
        &self,
        ignore: Option<i128>,
        weight: Option<&ndarray::Array1<F>>,
    ) -> f64 {
        match weight {
            None => self.count_not_ignored(ignore) as f64,
            Some(w) => self.sum_over_classes(ignore, |y| w[y].as_f64()),
        }
    }

    /// How many labels are not `ignore`, compared in the labels' own type
    /// ([`ignored_as`]), so that a contiguous array's count runs as vector
    /// compares.
    fn count_not_ignored(&self, ignore: Option<i128>) -> usize {
        with_view!(&self.view, v => {
            let ignored = match ignored_as(ignore) {
                None => 0,
                Some(ig) => match v.as_slice_memory_order() {
                    Some(s) => s.iter().filter(|&&l| l == ig).count(),
                    None => v.iter().filter(|&&l| l == ig).count(),
                },
            };
            v.len() - ignored
        })
    }

    /// `sum f(class)` over the labels that are not `ignore`, for a checked
    /// array (one pass, the label type matched once).
    fn sum_over_classes(&self, ignore: Option<i128>, f: impl Fn(usize) -> f64) -> f64 {
        with_view!(&self.view, v => v.iter().fold(0.0, |acc, &l| match to_class(l.to_i128(), ignore) {
            Some(c) => acc + f(c),
            None => acc,
        }))
    }

    /// The same labels as an array of dimension `E`, if the rank fits.
    pub(crate) fn into_dimensionality<E: Dimension>(self) -> Option<Labels<'a, E>> {
        with_view!(self.view, v => v.into_dimensionality::<E>().ok().map(Label::labels))
    }
}

impl<'a> Labels<'a, Ix1> {
    /// The labels at positions `range` (a view, no copy).
    pub(crate) fn rows(&self, range: std::ops::Range<usize>) -> Labels<'a, Ix1> {
        with_view!(&self.view, v => Label::labels((*v).slice_move(ndarray::s![range])))
    }
}

impl Labels<'_, Ix1> {
    /// Label `i` of a checked 1-D array, as a class index.
    #[inline]
    pub(crate) fn class(&self, i: usize) -> usize {
        with_view!(&self.view, v => v[i].to_i128() as usize)
    }

    /// Label `i` of a checked 1-D array: `None` when it is the ignored one.
    #[inline]
    pub(crate) fn class_or_ignored(&self, i: usize, ignore: Option<i128>) -> Option<usize> {
        to_class(with_view!(&self.view, v => v[i].to_i128()), ignore)
    }
}

impl Labels<'_, Ix2> {
    /// Calls `f` on the entries of row `i` before the first that equals
    /// `end` (the padded label sets of PyTorch's multi-label margin loss).
    pub(crate) fn row_until(&self, i: usize, end: i128, mut f: impl FnMut(i128)) {
        with_view!(&self.view, v => {
            for &l in v.row(i) {
                let l = l.to_i128();
                if l == end {
                    break;
                }
                f(l);
            }
        })
    }
}

/// Whether any label of `s` is neither a class below `classes` nor
/// `ignored`, compared in the labels' own type and in blocks without an
/// early exit inside, so that the common case (every label fine) runs as
/// vector operations: an early exit at every label cost 39 instructions a
/// label, and widening each label to `i128` kept the loop scalar (2.7% of
/// a spatial cross-entropy call's samples).
fn any_not_class<T: Label + PartialEq>(s: &[T], classes: usize, ignored: Option<T>) -> bool {
    let limit = classes as u64;
    let mut blocks = s.chunks(256);
    match ignored {
        Some(ig) => blocks.any(|c| {
            c.iter().fold(0, |acc, &l| {
                acc | (not_below(l, limit) & u64::from(l != ig))
            }) != 0
        }),
        None => blocks.any(|c| c.iter().fold(0, |acc, &l| acc | not_below(l, limit)) != 0),
    }
}

/// Whether `label` is neither a class below `classes` nor `ignored`:
/// [`any_not_class`]'s test, one label at a time.
#[inline(always)]
fn not_class<T: Label + PartialEq>(label: T, classes: usize, ignored: Option<T>) -> bool {
    not_below(label, classes as u64) != 0 && Some(label) != ignored
}

/// 1 if `label` is negative or at least `limit` (below `2^63`), else 0,
/// from shifts and a subtraction: a comparison of 64-bit integers (or a
/// `bool` folded with `|`) left the loop scalar at the baseline x86-64
/// level, where SSE2 has no 64-bit compare.
#[inline(always)]
fn not_below<T: Label>(label: T, limit: u64) -> u64 {
    let l = label.to_u64_wrapping();
    // A label below 2^63 is below `limit` exactly when `l - limit`, a
    // difference of two numbers below 2^63, is negative.
    (l >> 63) | ((l.wrapping_sub(limit) >> 63) ^ 1)
}

/// The ignored label `ignore` as a label of type `T`: none when `T`
/// cannot hold it, since no label of that type is then ignored. A loop
/// that compares its labels with this, in their own type, vectorizes;
/// one that widened each label to compare it as an `Option<i128>` did not.
#[inline(always)]
fn ignored_as<T: TryFrom<i128>>(ignore: Option<i128>) -> Option<T> {
    ignore.and_then(|i| T::try_from(i).ok())
}

#[inline(always)]
fn to_class(label: i128, ignore: Option<i128>) -> Option<usize> {
    if Some(label) == ignore {
        None
    } else {
        Some(label as usize)
    }
}

/// The labels of a contiguous array, read one at a time.
#[derive(Clone, Copy)]
pub(crate) enum LabelSlice<'a> {
    U8(&'a [u8]),
    U16(&'a [u16]),
    U32(&'a [u32]),
    U64(&'a [u64]),
    Usize(&'a [usize]),
    I8(&'a [i8]),
    I16(&'a [i16]),
    I32(&'a [i32]),
    I64(&'a [i64]),
    Isize(&'a [isize]),
}

/// Runs `$body` with `$s` bound to the slice, whatever its element type,
/// and wraps a slice result back as `$wrap`.
macro_rules! with_slice {
    ($slice:expr, $s:ident => $body:expr) => {
        match $slice {
            LabelSlice::U8($s) => $body,
            LabelSlice::U16($s) => $body,
            LabelSlice::U32($s) => $body,
            LabelSlice::U64($s) => $body,
            LabelSlice::Usize($s) => $body,
            LabelSlice::I8($s) => $body,
            LabelSlice::I16($s) => $body,
            LabelSlice::I32($s) => $body,
            LabelSlice::I64($s) => $body,
            LabelSlice::Isize($s) => $body,
        }
    };
}

macro_rules! slice_from {
    ($($t:ty => $variant:ident),*) => {$(
        impl<'a> From<&'a [$t]> for LabelSlice<'a> {
            fn from(s: &'a [$t]) -> Self {
                LabelSlice::$variant(s)
            }
        }
    )*};
}

slice_from!(u8 => U8, u16 => U16, u32 => U32, u64 => U64, usize => Usize,
    i8 => I8, i16 => I16, i32 => I32, i64 => I64, isize => Isize);

impl<'a> LabelSlice<'a> {
    /// Writes labels `start..start + out.len()` into `out` as class
    /// indices, `ignored` for the ignored one (the label type matched once).
    #[inline]
    // The `u32` arm's cast is to its own type; the others' are not.
    #[allow(clippy::unnecessary_cast)]
    pub(crate) fn classes_into(
        &self,
        start: usize,
        out: &mut [u32],
        ignore: Option<i128>,
        ignored: u32,
    ) {
        // Compared in the labels' own type ([`ignored_as`]; the
        // `Option<i128>` comparison a label this loop made took 5% of a
        // spatial cross-entropy call's samples). A label is a class below
        // `C` or the ignored one (checked), and a class fits: the caller's
        // classes are below `u32::MAX`.
        with_slice!(self, s => {
            let pairs = out.iter_mut().zip(&s[start..]);
            match ignored_as(ignore) {
                Some(ig) => pairs.for_each(|(o, &l)| *o = if l == ig { ignored } else { l as u32 }),
                None => pairs.for_each(|(o, &l)| *o = l as u32),
            }
        })
    }

    /// The labels `range`.
    pub(crate) fn sub(&self, range: std::ops::Range<usize>) -> LabelSlice<'a> {
        with_slice!(*self, s => LabelSlice::from(&s[range]))
    }
}

#[cfg(test)]
mod tests {
    use super::{Label, Labels};
    use crate::Error;
    use ndarray::Array1;

    /// The first label that is neither a class below `classes` nor
    /// `ignore`, found one label at a time in `i128`.
    fn first_bad<T: Label>(
        labels: &[T],
        classes: usize,
        ignore: Option<i128>,
    ) -> Option<(usize, i128)> {
        labels
            .iter()
            .map(|l| l.to_i128())
            .enumerate()
            .find(|&(_, l)| (l < 0 || l >= classes as i128) && Some(l) != ignore)
    }

    /// `check`'s vector scan finds what a scan of each label in `i128`
    /// finds, in every label type, for a bad label at a block's edges and
    /// the type's extremes, ignored or not.
    #[test]
    fn the_check_finds_the_first_label_out_of_range_in_every_type() {
        fn run<T: Label + TryFrom<i128> + Copy>(extremes: [T; 2]) {
            let classes = 21;
            let fine: Vec<T> = (0..600)
                .map(|k| T::try_from((k % classes) as i128).ok().unwrap())
                .collect();
            let mut bads: Vec<T> = extremes.to_vec();
            bads.extend(
                [classes as i128, -1, 1 << 40]
                    .iter()
                    .filter_map(|&v| T::try_from(v).ok()),
            );
            for &bad in &bads {
                for at in [0, 255, 256, 257, 599] {
                    let mut labels = fine.clone();
                    labels[at] = bad;
                    labels[(at + 300) % 600] = bad;
                    for ignore in [None, Some(-100), Some(bad.to_i128()), Some(20)] {
                        let array = Array1::from(labels.clone());
                        let got = Labels::from(&array).check("y", classes as usize, ignore);
                        let want = first_bad(&labels, classes as usize, ignore);
                        let what = format!("{} at {at}, ignoring {ignore:?}", bad.to_i128());
                        match (got, want) {
                            (Ok(()), None) => {}
                            (Err(Error::LabelOutOfRange { index, label, .. }), Some((i, l))) => {
                                assert_eq!(index, vec![i], "{what}");
                                assert_eq!(i128::from(label), l.min(i64::MAX as i128), "{what}");
                            }
                            (got, want) => panic!("{what}: {got:?} against {want:?}"),
                        }
                    }
                }
            }
        }
        run::<u8>([u8::MAX, 0]);
        run::<u16>([u16::MAX, 0]);
        run::<u32>([u32::MAX, 0]);
        run::<u64>([u64::MAX, 1 << 63]);
        run::<usize>([usize::MAX, 1 << 63]);
        run::<i8>([i8::MIN, i8::MAX]);
        run::<i16>([i16::MIN, i16::MAX]);
        run::<i32>([i32::MIN, i32::MAX]);
        run::<i64>([i64::MIN, i64::MAX]);
        run::<isize>([isize::MIN, isize::MAX]);
    }
}
