//! The floating-point types the crate is generic over.

/// A floating-point element type the losses accept: `f32` or `f64`.
///
/// The trait is sealed: the numerics (clamps, polynomial exps, tolerances)
/// are tuned for these two types only.
pub trait Float:
    ndarray::NdFloat
    + num_traits::FromPrimitive
    + sealed::Sealed
    + crate::numerics::kernels::RowKernels
    + Default
    + Send
    + Sync
    + 'static
{
    /// Converts an `f64` constant to this type (rounding to nearest for `f32`).
    fn lit(x: f64) -> Self;
    /// Widens (or keeps) the value as an `f64`.
    fn as_f64(self) -> f64;
    /// Converts a count to this type (used to divide by batch sizes).
    fn from_count(n: usize) -> Self {
        Self::lit(n as f64)
    }
}

impl Float for f32 {
    #[inline(always)]
    fn lit(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Float for f64 {
    #[inline(always)]
    fn lit(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}
