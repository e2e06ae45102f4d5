//! A loss's options, declared once: [`loss_options!`] writes the struct,
//! its constructor and `Default`, the reduction with its setter and
//! getter, and a setter and a getter for every simple option (a number, a
//! flag, a small enum), in the spirit of burn's derived `Config`.
//!
//! A declaration lists each option with its type and default and, for the
//! simple ones, the name of its setter and the check from
//! [`crate::base::validate`] that validates it:
//!
//! ```text
//! loss_options! {
//!     /// Poly-1 loss: ... (the loss's documentation)
//!     pub struct Poly1<F: Float> {
//!         /// The coefficient `epsilon`.
//!         epsilon: f64 = 1.0,
//!             /// Sets `epsilon`, finite and `>= -1` (default 1).
//!             set with_epsilon checked by at_least_minus_one;
//!     }
//!     /// Poly-1 with mean reduction and `epsilon = 1`.
//!     fn new();
//! }
//! ```
//!
//! which makes, besides the struct (`Clone` and `Debug`, with a first field
//! `reduction`, default [`Reduction::Mean`], and a last `PhantomData` of
//! its generic parameters, so that a loss need not store its element type):
//! - `new()` with every default, and `Default` calling it;
//! - `with_reduction(self, Reduction) -> Self` and `reduction(&self)`;
//! - for each option with `set`: the getter `epsilon(&self) -> f64` (the
//!   option's doc comment is the getter's) and the setter
//!   `with_epsilon(self, epsilon: f64)` (the doc comment after the comma is
//!   the setter's). With `checked by check` the setter calls
//!   `validate::check("epsilon", epsilon)?` and returns `Result<Self>`;
//!   without it, it returns `Self`;
//! - the [`Options`] impl, which gives `Compute` the reduction.
//!
//! An array option is an `Option` set from an array: its `set` names the
//! argument's type (and, after `as`, the stored type when the check converts
//! it), and its check returns what is stored; the getter returns
//! `Option<&stored>`:
//!
//! ```text
//!         /// The element weights, if any.
//!         weight: Option<ArrayD<F>> = None,
//!             /// Sets element weights (finite, `>= 0`; default none) ...
//!             set with_weight<E: Dimension>(Array<F, E> as ArrayD<F>) checked by element_weights;
//! ```
//!
//! An option without `set` (an enum with data, a label of any type) is only
//! a field with its default; its setter and getter are written by hand
//! beside the declaration. Derives other than `Clone` and `Debug` (`PartialEq`,
//! `Copy`, ...) are written on the declaration.
//!
//! The generic parameters carry the bounds of the impls (the struct itself
//! has none). A loss generic over its rank, `<F: Float, D: Dimension = Ix2>`,
//! names its any-rank constructor and adds `new()` at the default rank,
//! which alone has `Default`:
//!
//! ```text
//!     /// BCE on probabilities of any rank `>= 1`, ...
//!     fn spatial();
//!     /// BCE on `(N, K)` probabilities: mean reduction, no weights.
//!     fn new() at Ix2;
//! ```

use crate::Reduction;

/// The options the engine reads from every loss: its reduction.
/// Implemented by [`loss_options!`] (and by hand for wrappers).
pub trait Options {
    /// The reduction `forward` applies.
    fn reduction(&self) -> Reduction;
    /// Sets it (the `with_reduction` of a wrapper that needs another
    /// reduction of the loss it holds).
    fn set_reduction(&mut self, reduction: Reduction);
}

/// Declares a loss's options struct; see the [module docs](self).
macro_rules! loss_options {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident $(<$($g:ident $(: $bound:path)? $(= $gdef:ty)?),+>)? {
            $(
                $(#[$doc:meta])*
                $field:ident : $ty:ty = $default:expr
                $(
                    , $(#[$set_doc:meta])* set $setter:ident
                    $(<$set_gen:ident: $set_bound:path>)? $(($arg:ty $(as $stored:ty)?))?
                    $(checked by $check:ident)?
                )?;
            )*
        }
        $(#[$ctor_doc:meta])*
        fn $ctor:ident();
        $(
            $(#[$new_doc:meta])*
            fn new() at $rank:ty;
        )?
    ) => {
        $crate::base::options::loss_options! {
            @struct [$(#[$meta])*] $vis $name [$($($g $(= $gdef)?),+)?] [$($($g),+)?]
            { $($(#[$doc])* $field: $ty,)* }
        }

        impl<$($($g $(: $bound)?),+)?> $name<$($($g),+)?> {
            $(#[$ctor_doc])*
            pub fn $ctor() -> Self {
                $crate::base::options::loss_options!(
                    @new $name [$($($g),+)?] $($field: $default),*
                )
            }

            /// Sets the reduction (default `Mean`; the type's *Shapes*
            /// section says what `Mean` divides by).
            pub fn with_reduction(mut self, reduction: $crate::Reduction) -> Self {
                self.reduction = reduction;
                self
            }

            /// The reduction `forward` applies: [`Loss::reduction`](crate::Loss::reduction)
            /// without the trait (which, for a loss that works with both float
            /// types, needs the element type named).
            pub fn reduction(&self) -> $crate::Reduction {
                self.reduction
            }

            $(
                $crate::base::options::loss_options! {
                    @accessors $(#[$doc])* $field: $ty
                    $(
                        , $(#[$set_doc])* set $setter
                        $(<$set_gen: $set_bound>)? $(($arg $(as $stored)?))?
                        $(checked by $check)?
                    )?
                }
            )*
        }

        impl<$($($g $(: $bound)?),+)?> $crate::base::options::Options for $name<$($($g),+)?> {
            fn reduction(&self) -> $crate::Reduction {
                self.reduction
            }
            fn set_reduction(&mut self, reduction: $crate::Reduction) {
                self.reduction = reduction;
            }
        }

        $crate::base::options::loss_options! {
            @default $name [$($($g $(: $bound)?),+)?] [$($($g),+)?] $ctor
            $(, $(#[$new_doc])* $rank)?
        }
    };

    // The struct: the reduction first, a `PhantomData` of the generic
    // parameters last (so that any of them may go unused by the fields).
    (@struct [$(#[$meta:meta])*] $vis:vis $name:ident [] [] { $($body:tt)* }) => {
        $(#[$meta])*
        #[derive(Clone, Debug)]
        $vis struct $name {
            reduction: $crate::Reduction,
            $($body)*
        }
    };
    (
        @struct [$(#[$meta:meta])*] $vis:vis $name:ident [$($decl:tt)+] [$($g:ident),+]
        { $($body:tt)* }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug)]
        $vis struct $name<$($decl)+> {
            reduction: $crate::Reduction,
            $($body)*
            #[allow(unused_parens)]
            _types: ::std::marker::PhantomData<fn() -> ($($g),+)>,
        }
    };
    (@new $name:ident [] $($field:ident: $default:expr),*) => {
        $name {
            reduction: $crate::Reduction::Mean,
            $($field: $default,)*
        }
    };
    (@new $name:ident [$($g:ident),+] $($field:ident: $default:expr),*) => {
        $name {
            reduction: $crate::Reduction::Mean,
            $($field: $default,)*
            _types: ::std::marker::PhantomData,
        }
    };

    // A field set by hand: no accessors.
    (@accessors $(#[$doc:meta])* $field:ident: $ty:ty) => {};
    (@accessors $(#[$doc:meta])* $field:ident: $ty:ty, $(#[$set_doc:meta])* set $setter:ident) => {
        $(#[$doc])*
        pub fn $field(&self) -> $ty {
            self.$field
        }

        $(#[$set_doc])*
        pub fn $setter(mut self, $field: $ty) -> Self {
            self.$field = $field;
            self
        }
    };
    (
        @accessors $(#[$doc:meta])* $field:ident: $ty:ty,
        $(#[$set_doc:meta])* set $setter:ident checked by $check:ident
    ) => {
        $(#[$doc])*
        pub fn $field(&self) -> $ty {
            self.$field
        }

        $(#[$set_doc])*
        pub fn $setter(mut self, $field: $ty) -> $crate::Result<Self> {
            $crate::base::validate::$check(stringify!($field), $field)?;
            self.$field = $field;
            Ok(self)
        }
    };

    // An array option, `Option<stored>`: the check validates the argument
    // and converts it into what is stored.
    (
        @accessors $(#[$doc:meta])* $field:ident: $ty:ty,
        $(#[$set_doc:meta])* set $setter:ident $(<$set_gen:ident: $set_bound:path>)?
        ($arg:ty) checked by $check:ident
    ) => {
        $crate::base::options::loss_options! {
            @accessors $(#[$doc])* $field: $ty,
            $(#[$set_doc])* set $setter $(<$set_gen: $set_bound>)? ($arg as $arg)
            checked by $check
        }
    };
    (
        @accessors $(#[$doc:meta])* $field:ident: $ty:ty,
        $(#[$set_doc:meta])* set $setter:ident $(<$set_gen:ident: $set_bound:path>)?
        ($arg:ty as $stored:ty) checked by $check:ident
    ) => {
        $(#[$doc])*
        pub fn $field(&self) -> Option<&$stored> {
            self.$field.as_ref()
        }

        $(#[$set_doc])*
        pub fn $setter$(<$set_gen: $set_bound>)?(mut self, $field: $arg) -> $crate::Result<Self> {
            self.$field = Some($crate::base::validate::$check(stringify!($field), $field)?);
            Ok(self)
        }
    };

    // `Default` is `new()`: at every rank, or at the default rank only.
    (@default $name:ident [$($impl_gen:tt)*] [$($args:tt)*] new) => {
        impl<$($impl_gen)*> Default for $name<$($args)*> {
            fn default() -> Self {
                Self::new()
            }
        }
    };
    (
        @default $name:ident [$($impl_gen:tt)*] [$($args:tt)*] $ctor:ident,
        $(#[$new_doc:meta])* $rank:ty
    ) => {
        impl<F: $crate::Float> $name<F, $rank> {
            $(#[$new_doc])*
            pub fn new() -> Self {
                Self::$ctor()
            }
        }

        impl<F: $crate::Float> Default for $name<F, $rank> {
            fn default() -> Self {
                Self::new()
            }
        }
    };
}

pub(crate) use loss_options;
