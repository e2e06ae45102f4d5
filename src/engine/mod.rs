//! The shared engines the loss families run on: the softmax over rows
//! (and down the columns of spatial inputs), the element-wise sigmoid, the
//! signed margins, the plain row loop, and the fixed-block parallel loop
//! under them.

pub(crate) mod angular;
pub(crate) mod linear_chunks;
pub(crate) mod parallel;
pub(crate) mod rows;
pub(crate) mod sigmoid_elementwise;
pub(crate) mod signed_margins;
pub(crate) mod softmax_columns;
pub(crate) mod softmax_labels;
pub(crate) mod softmax_rows;
