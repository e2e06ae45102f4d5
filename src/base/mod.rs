//! The bottom layer: the float types, the error type, reductions, the
//! label types, input validation and the traits every loss implements.

pub(crate) mod class_tree;
pub(crate) mod error;
pub(crate) mod float;
pub(crate) mod label_sets;
pub(crate) mod labels;
pub(crate) mod loss;
pub(crate) mod options;
pub(crate) mod reduction;
pub(crate) mod validate;
