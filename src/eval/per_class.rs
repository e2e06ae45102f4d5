//! A metric's value for each class, some possibly undefined, and their
//! macro average.

/// One value per class of a metric computed one class against the rest,
/// `None` where the metric is undefined for that class (each metric's
/// documentation says when), and their macro average.
///
/// The macro average is the plain mean over the classes whose value is
/// defined; [`PerClassMetric::defined`] says how many that is. (sklearn
/// raises an error instead as soon as one class is undefined; here a
/// held-out set that lacks a rare class still gets the average over the
/// others, and says so.)
#[derive(Clone, Debug, PartialEq)]
pub struct PerClassMetric {
    values: Vec<Option<f64>>,
}

impl PerClassMetric {
    pub(crate) fn new(values: Vec<Option<f64>>) -> Self {
        PerClassMetric { values }
    }

    /// The value of each class, in class order; `None` where undefined.
    pub fn per_class(&self) -> &[Option<f64>] {
        &self.values
    }

    /// The number of classes.
    pub fn num_classes(&self) -> usize {
        self.values.len()
    }

    /// The number of classes whose value is defined (those the macro
    /// average is over).
    pub fn defined(&self) -> usize {
        self.values.iter().flatten().count()
    }

    /// The mean over the classes whose value is defined; `None` when no
    /// class's is.
    pub fn macro_average(&self) -> Option<f64> {
        let defined = self.defined();
        (defined > 0).then(|| self.values.iter().flatten().sum::<f64>() / defined as f64)
    }
}
