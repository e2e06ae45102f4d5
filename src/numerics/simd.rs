//! Which instruction set the row kernels run on, chosen once at run time.
//!
//! The kernels are compiled three times (portable, AVX2+FMA, AVX-512) and
//! the best one the CPU supports is picked on first use, so users need no
//! `-C target-cpu=native`. The environment variable `CLASSLOSS_SIMD`
//! (`portable`, `avx2` or `avx512`) caps the choice, for measuring or for
//! reproducing a result bit for bit on another machine; a level the CPU
//! lacks is never chosen whatever the variable says.

use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction-set level of the vectorized kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum SimdLevel {
    /// Plain Rust: whatever the compile target allows (SSE2 on x86-64),
    /// multiply and add rounded separately.
    Portable,
    /// 256-bit AVX2 vectors with fused multiply-add (x86-64).
    Avx2,
    /// 512-bit AVX-512F vectors with fused multiply-add (x86-64).
    Avx512,
}

impl SimdLevel {
    /// The level's name as `CLASSLOSS_SIMD` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SimdLevel::Portable => "portable",
            SimdLevel::Avx2 => "avx2",
            SimdLevel::Avx512 => "avx512",
        }
    }

    /// The level `CLASSLOSS_SIMD` names (as [`SimdLevel::as_str`] spells
    /// it), if any.
    fn from_name(name: &str) -> Option<SimdLevel> {
        [SimdLevel::Portable, SimdLevel::Avx2, SimdLevel::Avx512]
            .into_iter()
            .find(|level| level.as_str() == name)
    }
}

const UNSET: u8 = u8::MAX;
static LEVEL: AtomicU8 = AtomicU8::new(UNSET);

/// The level the kernels use in this process: the best the CPU supports,
/// capped by `CLASSLOSS_SIMD` if set.
///
/// ```
/// let level = classloss::numerics::simd_level();
/// println!("kernels run on {}", level.as_str());
/// ```
#[inline]
pub fn simd_level() -> SimdLevel {
    match LEVEL.load(Ordering::Relaxed) {
        0 => SimdLevel::Portable,
        1 => SimdLevel::Avx2,
        2 => SimdLevel::Avx512,
        _ => detect_and_store(),
    }
}

#[cold]
fn detect_and_store() -> SimdLevel {
    let level = detect().min(cap_from_env());
    LEVEL.store(level as u8, Ordering::Relaxed);
    level
}

/// The cap `CLASSLOSS_SIMD` sets; none (the highest level) when it is
/// unset or names no level.
fn cap_from_env() -> SimdLevel {
    std::env::var("CLASSLOSS_SIMD")
        .ok()
        .and_then(|name| SimdLevel::from_name(&name))
        .unwrap_or(SimdLevel::Avx512)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> SimdLevel {
    if is_x86_feature_detected!("avx512f") {
        SimdLevel::Avx512
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        SimdLevel::Avx2
    } else {
        SimdLevel::Portable
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> SimdLevel {
    SimdLevel::Portable
}

/// Calls `$module::{portable,avx2,avx512}::$f(args)` for the current level.
macro_rules! dispatch {
    ($module:ident :: $f:ident ( $($arg:expr),* $(,)? )) => {
        match $crate::numerics::simd::simd_level() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `simd_level` reports AVX-512F only where the CPU has it.
            $crate::numerics::simd::SimdLevel::Avx512 => unsafe { $module::avx512::$f($($arg),*) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `simd_level` reports AVX2 only where the CPU has AVX2 and FMA.
            $crate::numerics::simd::SimdLevel::Avx2 => unsafe { $module::avx2::$f($($arg),*) },
            _ => $module::portable::$f($($arg),*),
        }
    };
}

pub(crate) use dispatch;

#[cfg(test)]
mod tests {
    use super::SimdLevel;

    #[test]
    fn each_level_is_found_by_the_name_it_prints() {
        for (name, level) in [
            ("portable", SimdLevel::Portable),
            ("avx2", SimdLevel::Avx2),
            ("avx512", SimdLevel::Avx512),
        ] {
            assert_eq!(level.as_str(), name);
            assert_eq!(SimdLevel::from_name(name), Some(level));
        }
        assert_eq!(SimdLevel::from_name("sse2"), None);
        assert_eq!(SimdLevel::from_name(""), None);
    }
}
