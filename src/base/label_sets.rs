//! Sets of class labels, one set per sample: the targets of a multi-label
//! loss that ranks a sample's classes (PyTorch's `multilabel_margin_loss`).
//!
//! A set may hold any number of distinct classes, none included. Two forms
//! are accepted without a copy: one list per sample (`&[Vec<usize>]`), or
//! PyTorch's padded `(N, C)` integer array, where each row lists the
//! sample's classes and the first `-1` ends the list (the entries after it
//! are not read as classes). The padded form takes any integer type, as
//! [`Labels`] does.

use ndarray::{ArrayBase, ArrayView2, Data, Ix2};

use crate::base::labels::{Label, Labels};
use crate::base::validate::expect_shape;
use crate::{Error, Result};

/// One set of classes per sample, borrowed from the caller.
///
/// Made with `From` from `&[Vec<usize>]` or `&Vec<Vec<usize>>` (one list
/// per sample), or from PyTorch's padded `(N, C)` array of any integer
/// type (`&array` or `array.view()`), where the first `-1` of a row ends
/// its list.
///
/// # Examples
/// ```
/// use classloss::LabelSets;
/// use ndarray::array;
///
/// let lists = vec![vec![3, 0], vec![], vec![1]];
/// let sets = LabelSets::from(&lists);
/// assert_eq!(sets.len(), 3);
///
/// // The same sets as PyTorch writes them for 4 classes.
/// let padded = array![[3_i64, 0, -1, -1], [-1, 0, 0, 0], [1, -1, 2, 2]];
/// let sets = LabelSets::from(&padded);
/// assert_eq!(sets.len(), 3);
/// ```
#[derive(Clone, Debug)]
pub struct LabelSets<'a> {
    form: Form<'a>,
}

#[derive(Clone, Debug)]
enum Form<'a> {
    Lists(&'a [Vec<usize>]),
    Padded(Labels<'a, Ix2>),
}

impl<'a> From<&'a [Vec<usize>]> for LabelSets<'a> {
    fn from(lists: &'a [Vec<usize>]) -> Self {
        LabelSets {
            form: Form::Lists(lists),
        }
    }
}

impl<'a> From<&'a Vec<Vec<usize>>> for LabelSets<'a> {
    fn from(lists: &'a Vec<Vec<usize>>) -> Self {
        LabelSets::from(lists.as_slice())
    }
}

impl<'a, L: Label> From<ArrayView2<'a, L>> for LabelSets<'a> {
    fn from(padded: ArrayView2<'a, L>) -> Self {
        LabelSets {
            form: Form::Padded(padded.into()),
        }
    }
}

impl<'a, L: Label, S: Data<Elem = L>> From<&'a ArrayBase<S, Ix2>> for LabelSets<'a> {
    fn from(padded: &'a ArrayBase<S, Ix2>) -> Self {
        LabelSets::from(padded.view())
    }
}

/// The padding that ends a row of the padded form.
const END: i128 = -1;

impl LabelSets<'_> {
    /// The number of samples (sets).
    pub fn len(&self) -> usize {
        match &self.form {
            Form::Lists(lists) => lists.len(),
            Form::Padded(padded) => padded.shape()[0],
        }
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One set for each of `rows` samples, of classes in `0..classes`, each
    /// class at most once per set; the padded form must be `(rows,
    /// classes)`, as PyTorch requires, with entries in `-1..classes`
    /// (entries after a row's first `-1` are checked for range only).
    pub(crate) fn check(&self, rows: usize, classes: usize) -> Result<()> {
        match &self.form {
            Form::Lists(lists) => expect_shape("label_sets", &[lists.len()], &[rows])?,
            Form::Padded(padded) => {
                padded.expect_shape("label_sets", &[rows, classes])?;
                padded.check("label_sets", classes, Some(END))?;
            }
        }
        let mut seen = vec![false; classes];
        let mut set = Vec::new();
        for i in 0..rows {
            self.read(i, &mut set);
            for (k, &class) in set.iter().enumerate() {
                if class >= classes {
                    return Err(Error::LabelOutOfRange {
                        what: "label_sets",
                        index: vec![i, k],
                        label: i64::try_from(class).unwrap_or(i64::MAX),
                        num_classes: classes,
                    });
                }
                if seen[class] {
                    return Err(Error::InvalidTarget {
                        what: "label_sets",
                        index: vec![i, k],
                        value: class as f64,
                        expected: "each class at most once in a sample's set",
                    });
                }
                seen[class] = true;
            }
            set.iter().for_each(|&c| seen[c] = false);
        }
        Ok(())
    }

    /// Sample `i`'s classes into `set` (cleared first), in the order given.
    /// For the padded form, only valid after [`LabelSets::check`].
    pub(crate) fn read(&self, i: usize, set: &mut Vec<usize>) {
        set.clear();
        match &self.form {
            Form::Lists(lists) => set.extend_from_slice(&lists[i]),
            Form::Padded(padded) => padded.row_until(i, END, |class| set.push(class as usize)),
        }
    }
}
