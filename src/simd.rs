//! The one CPU-feature dispatch of every SIMD kernel (k-means distances, the realtime policies'
//! dense kernels).
//!
//! A kernel is written once, generic over [`Fm`] (how `a * b + c` is computed), and compiled
//! twice by [`simd_fn!`]: for baseline x86-64 with [`NoFma`] (separate multiply and add), and
//! for AVX2+FMA with [`Fma`] (one fused instruction), the latter selected at run time when
//! [`has_avx2_fma`] says the CPU has both. Results are deterministic on a given machine; they may
//! differ in the last bits between the two paths.
//!
//! The environment variable [`ENV_NO_SIMD`] (`GROWTHMACHINE_NO_SIMD`, any value) selects the
//! baseline path for every kernel. It is read once, at the first dispatch.

use std::ops::{Add, Mul};

/// Set (to any value) to run every kernel on its baseline path, whatever the CPU has.
pub const ENV_NO_SIMD: &str = "GROWTHMACHINE_NO_SIMD";

/// A float with a fused multiply-add (`self * a + b`, one rounding).
pub trait MulAdd: Copy + Add<Output = Self> + Mul<Output = Self> {
    fn fused(self, a: Self, b: Self) -> Self;
}

impl MulAdd for f32 {
    #[inline(always)]
    fn fused(self, a: Self, b: Self) -> Self {
        self.mul_add(a, b)
    }
}

impl MulAdd for f64 {
    #[inline(always)]
    fn fused(self, a: Self, b: Self) -> Self {
        self.mul_add(a, b)
    }
}

/// How `a * b + c` is computed: a fused instruction (only inside AVX2+FMA code) or two.
pub trait Fm: Copy + Send + Sync + 'static {
    /// True only in code compiled for AVX2+FMA (see [`simd_fn!`]).
    const FUSED: bool;
    fn fma<T: MulAdd>(a: T, b: T, c: T) -> T;
}

/// Separate multiply and add (any CPU).
#[derive(Clone, Copy)]
pub struct NoFma;
impl Fm for NoFma {
    const FUSED: bool = false;
    #[inline(always)]
    fn fma<T: MulAdd>(a: T, b: T, c: T) -> T {
        a * b + c
    }
}

/// One fused multiply-add (only inside `#[target_feature(enable = "avx2,fma")]` code).
#[derive(Clone, Copy)]
pub struct Fma;
impl Fm for Fma {
    const FUSED: bool = true;
    #[inline(always)]
    fn fma<T: MulAdd>(a: T, b: T, c: T) -> T {
        a.fused(b, c)
    }
}

/// True if the CPU has AVX2 and FMA and [`ENV_NO_SIMD`] is not set (checked once).
#[inline]
pub fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            std::env::var_os(ENV_NO_SIMD).is_none()
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines `fn $name(args) -> ret` that runs `$imp::<Fma>(args)` compiled for AVX2+FMA when
/// [`has_avx2_fma`], else `$imp::<NoFma>(args)` (baseline). With a type parameter,
/// `fn $name<T: Bound>(args) -> ret` runs `$imp::<T, Fma>` / `$imp::<T, NoFma>`. `$imp` must be
/// `#[inline(always)]` and call only `#[inline(always)]` helpers in its hot loops (so that they
/// are compiled with the features of the fast copy).
macro_rules! simd_fn {
    ($(#[$m:meta])* $vis:vis fn $name:ident<$t:ident: $bound:path>($($arg:ident : $ty:ty),* $(,)?) -> $ret:ty = $imp:ident) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name<$t: $bound>($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                if $crate::simd::has_avx2_fma() {
                    #[target_feature(enable = "avx2,fma")]
                    #[allow(clippy::too_many_arguments)]
                    unsafe fn fast<$t: $bound>($($arg: $ty),*) -> $ret {
                        $imp::<$t, $crate::simd::Fma>($($arg),*)
                    }
                    // SAFETY: the CPU supports AVX2 and FMA (checked at run time just above).
                    return unsafe { fast::<$t>($($arg),*) };
                }
            }
            $imp::<$t, $crate::simd::NoFma>($($arg),*)
        }
    };
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) -> $ret:ty = $imp:ident) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                if $crate::simd::has_avx2_fma() {
                    #[target_feature(enable = "avx2,fma")]
                    #[allow(clippy::too_many_arguments)]
                    unsafe fn fast($($arg: $ty),*) -> $ret {
                        $imp::<$crate::simd::Fma>($($arg),*)
                    }
                    // SAFETY: the CPU supports AVX2 and FMA (checked at run time just above).
                    return unsafe { fast($($arg),*) };
                }
            }
            $imp::<$crate::simd::NoFma>($($arg),*)
        }
    };
}
pub(crate) use simd_fn;
