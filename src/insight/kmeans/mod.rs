//! KMeans clustering core (pure Rust): k-means|| / k-means++ / random initialisation, exact Lloyd
//! iterations (plain, or accelerated by Yinyang distance bounds), mini-batch updates, and column
//! moments for feature scaling.
//!
//! Data is row-major `x[i*d + j]` in f32 or f64 and is never copied or upcast; distance kernels run
//! in the data precision, while center sums, shifts and inertia are accumulated in f64. All
//! parallel work runs over fixed chunks of [`CH`] rows, with partial results reduced in chunk
//! order, so results are identical for any thread count.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
pub mod init;
pub mod kernel;
pub mod lloyd;
pub mod yinyang;

use crate::control::Control;
use crate::error::{checked_bytes, try_vec, CoreError, Result};
use kernel::{Packed, Real};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Rows per parallel chunk (fixed: the split never depends on the thread count).
pub const CH: usize = crate::parallel::CHUNK;
/// Centers per packed block (lanes of a tile), the layout shared by [`kernel`] and `avx2`.
pub const W: usize = 16;
/// Points per tile.
pub const P: usize = 4;

/// How the initial centers are chosen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Init {
    /// k-means|| (Bailey et al.; on a uniform row sample of large data): 5 rounds oversampling k
    /// candidates each, then weighted k-means++ and a few weighted Lloyd steps on the candidates.
    KMeansParallel,
    /// Greedy k-means++ (2 + ln k trials per center, as scikit-learn).
    KMeansPlusPlus,
    /// k distinct rows drawn uniformly.
    Random,
    /// Given centers, row-major `k*d` (in f64; converted to the data precision).
    Explicit(Vec<f64>),
}

/// Which exact Lloyd implementation runs the iterations (all give the same result up to ties and
/// rounding).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    /// Yinyang bounds (groups of centers; a single group, i.e. Hamerly-like, for small k).
    Auto,
    /// Plain Lloyd: every distance every iteration (blocked kernel).
    Lloyd,
    /// Yinyang bounds, forced.
    Yinyang,
}

#[derive(Clone, Debug)]
pub struct Params {
    pub k: usize,
    pub init: Init,
    pub max_iter: usize,
    /// Relative tolerance (scikit-learn's): stop when the sum of squared center shifts is at most
    /// `tol * mean feature variance`.
    pub tol: f64,
    pub algorithm: Algorithm,
    pub seed: u64,
}

/// A fitted model.
#[derive(Clone, Debug)]
pub struct Fitted<T> {
    /// Row-major `k*d`.
    pub centers: Vec<T>,
    pub labels: Vec<u32>,
    /// Sum of squared distances to the assigned centers, accumulated in f64.
    pub inertia: f64,
    pub n_iter: usize,
}

/// Checks the shape and values of `x` (named `arg`); returns the number of rows.
pub fn check_x<T: Real>(arg: &str, x: &[T], d: usize) -> Result<usize> {
    if d == 0 {
        return Err(CoreError::invalid(arg, "has 0 features (columns)"));
    }
    if x.is_empty() {
        return Err(CoreError::invalid(arg, "is empty (0 samples)"));
    }
    if x.len() % d != 0 {
        return Err(CoreError::invalid(
            arg,
            format!("has {} values, not a multiple of {d} features", x.len()),
        ));
    }
    let bad = x
        .par_chunks(1 << 16)
        .enumerate()
        .filter_map(|(c, s)| {
            s.iter()
                .position(|v| !v.to_f64().is_finite())
                .map(|p| c * (1 << 16) + p)
        })
        .min();
    if let Some(p) = bad {
        return Err(CoreError::invalid(
            arg,
            format!(
                "must be finite, found {:?} at row {}, column {}",
                x[p],
                p / d,
                p % d
            ),
        ));
    }
    Ok(x.len() / d)
}

/// [`crate::parallel::ordered`] over chunks of [`CH`] rows.
pub fn ordered<R: Send>(
    n: usize,
    ctl: &Control,
    work: impl Fn(usize, std::ops::Range<usize>) -> R + Sync,
    reduce: impl FnMut(usize, R),
) -> Result<()> {
    crate::parallel::ordered(n, CH, ctl, work, reduce)
}

/// Per-column mean, (population) variance and standard deviation in f64 (chunk-ordered sums).
///
/// Each column is first divided by a power of two `s` near its largest magnitude (when that
/// exceeds 1), so that squares cannot overflow: values of 1e200 have a variance of about 1e400
/// (`inf` in f64) but a standard deviation of 1e200, which is returned exactly. Dividing by a
/// power of two is exact, so for data whose squares fit the results are bit-for-bit those of
/// the plain two-pass formula.
pub fn column_moments<T: Real>(
    x: &[T],
    d: usize,
    ctl: &Control,
) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let n = x.len() / d;
    let mut amax = vec![0.0f64; d];
    ordered(
        n,
        ctl,
        |_, r| {
            let mut s = vec![0.0f64; d];
            for row in x[r.start * d..r.end * d].chunks_exact(d) {
                for (a, v) in s.iter_mut().zip(row) {
                    *a = a.max(v.to_f64().abs());
                }
            }
            s
        },
        |_, s| amax.iter_mut().zip(&s).for_each(|(a, b)| *a = a.max(*b)),
    )?;
    let scale: Vec<f64> = amax
        .iter()
        .map(|&a| {
            if a > 1.0 && a.is_finite() {
                2f64.powi(a.log2().floor() as i32)
            } else {
                1.0
            }
        })
        .collect();
    let mut sum = vec![0.0f64; d];
    ordered(
        n,
        ctl,
        |_, r| {
            let mut s = vec![0.0f64; d];
            for row in x[r.start * d..r.end * d].chunks_exact(d) {
                for ((a, v), c) in s.iter_mut().zip(row).zip(&scale) {
                    *a += v.to_f64() / c;
                }
            }
            s
        },
        |_, s| sum.iter_mut().zip(&s).for_each(|(a, b)| *a += b),
    )?;
    // The scaled mean (mean / scale).
    let mean_s: Vec<f64> = sum.iter().map(|s| s / n as f64).collect();
    let mut ss = vec![0.0f64; d];
    ordered(
        n,
        ctl,
        |_, r| {
            let mut s = vec![0.0f64; d];
            for row in x[r.start * d..r.end * d].chunks_exact(d) {
                for (((a, v), m), c) in s.iter_mut().zip(row).zip(&mean_s).zip(&scale) {
                    let t = v.to_f64() / c - m;
                    *a += t * t;
                }
            }
            s
        },
        |_, s| ss.iter_mut().zip(&s).for_each(|(a, b)| *a += b),
    )?;
    let var_s: Vec<f64> = ss.iter().map(|s| s / n as f64).collect();
    let mean = mean_s.iter().zip(&scale).map(|(m, c)| m * c).collect();
    let var = var_s.iter().zip(&scale).map(|(v, c)| v * c * c).collect();
    let std = var_s
        .iter()
        .zip(&scale)
        .map(|(v, c)| v.sqrt() * c)
        .collect();
    Ok((mean, var, std))
}

/// The absolute tolerance on the sum of squared center shifts: `tol * mean(var(x, axis=0))`.
pub fn abs_tol<T: Real>(x: &[T], d: usize, tol: f64, ctl: &Control) -> Result<f64> {
    if tol == 0.0 {
        return Ok(0.0);
    }
    let (_, var, _) = column_moments(x, d, ctl)?;
    Ok(tol * var.iter().sum::<f64>() / d as f64)
}

fn check_centers<T: Real>(centers: &[T], k: usize, d: usize) -> Result<()> {
    if k == 0 || centers.len() != k * d {
        return Err(CoreError::invalid(
            "centers",
            format!(
                "has {} values, expected n_clusters x {d} features",
                centers.len()
            ),
        ));
    }
    Ok(())
}

/// Fits KMeans on `x` (`d` columns).
pub fn fit<T: Real>(x: &[T], d: usize, p: &Params, ctl: &Control) -> Result<Fitted<T>> {
    let n = check_x("X", x, d)?;
    if p.k == 0 {
        return Err(CoreError::invalid("n_clusters", "must be >= 1, got 0"));
    }
    if p.k > n {
        return Err(CoreError::invalid(
            "n_clusters",
            format!("n_clusters={} must be <= n_samples={n}", p.k),
        ));
    }
    if p.max_iter == 0 {
        return Err(CoreError::invalid("max_iter", "must be >= 1, got 0"));
    }
    if !(p.tol.is_finite() && p.tol >= 0.0) {
        return Err(CoreError::invalid(
            "tol",
            format!("must be a finite number >= 0, got {}", p.tol),
        ));
    }
    let centers = init::init_centers(x, d, p.k, &p.init, p.seed, ctl)?;
    let tol = abs_tol(x, d, p.tol, ctl)?;
    let use_yy = match p.algorithm {
        Algorithm::Lloyd => false,
        Algorithm::Yinyang => true,
        Algorithm::Auto => p.k >= 8,
    };
    if use_yy {
        yinyang::run(x, d, centers, p.k, p.max_iter, tol, ctl)
    } else {
        lloyd::run(x, d, centers, p.k, p.max_iter, tol, ctl)
    }
}

/// Nearest center of every row and the inertia (f64, exact).
pub fn predict<T: Real>(
    x: &[T],
    d: usize,
    centers: &[T],
    k: usize,
    ctl: &Control,
) -> Result<(Vec<u32>, f64)> {
    let n = check_x("X", x, d)?;
    check_centers(centers, k, d)?;
    let pk = Packed::new(centers, k, d);
    let mut labels = vec![0u32; n];
    let mut inertia = 0.0;
    let lab = SyncSlice::new(&mut labels);
    ordered(
        n,
        ctl,
        |_, r| {
            // SAFETY: chunks are disjoint ranges of rows.
            let l = unsafe { lab.range(r.clone()) };
            let mut d2 = vec![T::ZERO; r.len()];
            kernel::nearest(&x[r.start * d..r.end * d], d, &pk, l, &mut d2);
            exact_inertia(&x[r.start * d..r.end * d], d, centers, l)
        },
        |_, s| inertia += s,
    )?;
    Ok((labels, inertia))
}

/// Euclidean distances of every row to every center (`out[i*k + c]`, data precision).
pub fn transform<T: Real>(
    x: &[T],
    d: usize,
    centers: &[T],
    k: usize,
    ctl: &Control,
) -> Result<Vec<T>> {
    let n = check_x("X", x, d)?;
    check_centers(centers, k, d)?;
    let pk = Packed::new(centers, k, d);
    // n x n_clusters distances: X's size times a number the user chose (MemoryError, never
    // an abort, when they do not fit).
    let count = n.checked_mul(k);
    checked_bytes(
        "X",
        "n_samples x n_clusters distances",
        count,
        size_of::<T>(),
    )?;
    let mut out = try_vec("X", count.unwrap_or_default(), T::ZERO)?;
    let o = SyncSlice::new(&mut out);
    ordered(
        n,
        ctl,
        |_, r| {
            // SAFETY: chunks are disjoint ranges of rows.
            let dst = unsafe { o.range(r.start * k..r.end * k) };
            kernel::all_dist(&x[r.start * d..r.end * d], d, &pk, dst);
            for v in dst.iter_mut() {
                *v = v.sqrt();
            }
        },
        |_, _| {},
    )?;
    Ok(out)
}

/// Sum over rows of the exact f64 squared distance to the labelled center.
pub fn exact_inertia<T: Real>(x: &[T], d: usize, centers: &[T], labels: &[u32]) -> f64 {
    let mut s = 0.0;
    for (row, &l) in x.chunks_exact(d).zip(labels) {
        let l = l as usize;
        s += kernel::dist2_f64(row, &centers[l * d..(l + 1) * d]);
    }
    s
}

/// Inertia of `labels` against `centers` over all of `x`, chunk-ordered.
pub fn inertia_of<T: Real>(
    x: &[T],
    d: usize,
    centers: &[T],
    labels: &[u32],
    ctl: &Control,
) -> Result<f64> {
    let n = x.len() / d;
    let mut total = 0.0;
    ordered(
        n,
        ctl,
        |_, r| exact_inertia(&x[r.start * d..r.end * d], d, centers, &labels[r.clone()]),
        |_, s| total += s,
    )?;
    Ok(total)
}

/// A mutable slice shared by parallel chunk workers that each touch a disjoint range.
pub struct SyncSlice<T> {
    ptr: *mut T,
    len: usize,
}
unsafe impl<T: Send> Send for SyncSlice<T> {}
unsafe impl<T: Send> Sync for SyncSlice<T> {}
impl<T> SyncSlice<T> {
    pub fn new(s: &mut [T]) -> Self {
        SyncSlice {
            ptr: s.as_mut_ptr(),
            len: s.len(),
        }
    }
    /// # Safety
    /// Ranges handed out concurrently must not overlap, and the slice must outlive their use.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn range(&self, r: std::ops::Range<usize>) -> &mut [T] {
        assert!(r.start <= r.end && r.end <= self.len);
        std::slice::from_raw_parts_mut(self.ptr.add(r.start), r.end - r.start)
    }
}

/// Relocates the centers of empty clusters (`counts[c] == 0`) onto the rows farthest from their
/// assigned centers (`old` centers), as scikit-learn does: the row is removed from its cluster's
/// sums and becomes the new cluster's only member; its label is updated. Deterministic (largest
/// distance first, lowest row index on ties). Returns the moved rows and their previous labels.
#[allow(clippy::too_many_arguments)]
pub fn relocate_empty<T: Real>(
    x: &[T],
    d: usize,
    old: &[T],
    labels: &mut [u32],
    sums: &mut [f64],
    counts: &mut [u64],
    ctl: &Control,
) -> Result<Vec<(usize, u32)>> {
    let empty: Vec<usize> = (0..counts.len()).filter(|&c| counts[c] == 0).collect();
    if empty.is_empty() {
        return Ok(vec![]);
    }
    let n = labels.len();
    let want = (2 * empty.len() + 16).min(n);
    let mut top: Vec<(f64, usize)> = Vec::new();
    let lab: &[u32] = labels;
    ordered(
        n,
        ctl,
        |_, r| {
            let mut v: Vec<(f64, usize)> = r
                .clone()
                .map(|i| {
                    let l = lab[i] as usize;
                    (
                        kernel::dist2_f64(&x[i * d..(i + 1) * d], &old[l * d..(l + 1) * d]),
                        i,
                    )
                })
                .collect();
            keep_top(&mut v, want);
            v
        },
        |_, mut v| {
            top.append(&mut v);
            keep_top(&mut top, want);
        },
    )?;
    let mut moved = vec![];
    let mut it = top.into_iter();
    for &e in &empty {
        for (_, i) in it.by_ref() {
            let from = labels[i] as usize;
            if counts[from] <= 1 {
                continue;
            }
            let row = &x[i * d..(i + 1) * d];
            counts[from] -= 1;
            for j in 0..d {
                sums[from * d + j] -= row[j].to_f64();
                sums[e * d + j] = row[j].to_f64();
            }
            counts[e] = 1;
            labels[i] = e as u32;
            moved.push((i, from as u32));
            break;
        }
    }
    Ok(moved)
}

fn keep_top(v: &mut Vec<(f64, usize)>, want: usize) {
    v.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    v.truncate(want);
}

/// New centers from sums and counts (clusters still empty keep their old center); returns the
/// sum of squared shifts (f64).
pub fn update_centers<T: Real>(centers: &mut [T], sums: &[f64], counts: &[u64], d: usize) -> f64 {
    let mut shift = 0.0;
    for (c, &cnt) in counts.iter().enumerate() {
        if cnt == 0 {
            continue;
        }
        let inv = 1.0 / cnt as f64;
        for j in 0..d {
            let new = T::from_f64(sums[c * d + j] * inv);
            let t = new.to_f64() - centers[c * d + j].to_f64();
            shift += t * t;
            centers[c * d + j] = new;
        }
    }
    shift
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::Rng as _;

    fn data(n: usize, d: usize, seed: u64) -> Vec<f64> {
        let mut r = crate::rng::stream(seed, 0);
        let centers: Vec<f64> = (0..10 * d).map(|_| r.random_range(-10.0..10.0)).collect();
        (0..n)
            .flat_map(|_| {
                let c = r.random_range(0..10usize);
                let row: Vec<f64> = (0..d)
                    .map(|j| centers[c * d + j] + r.random_range(-2.0..2.0))
                    .collect();
                row
            })
            .collect()
    }

    fn params(k: usize, algorithm: Algorithm, init: Init) -> Params {
        Params {
            k,
            init,
            max_iter: 40,
            tol: 0.0,
            algorithm,
            seed: 3,
        }
    }

    #[test]
    fn yinyang_equals_plain_lloyd() {
        let d = 5;
        let x = data(20_000, d, 1);
        for k in [3, 20, 150, 300] {
            let init = Init::Explicit(x[..k * d].to_vec());
            let ctl = Control::new();
            let a = fit(&x, d, &params(k, Algorithm::Lloyd, init.clone()), &ctl).unwrap();
            let b = fit(&x, d, &params(k, Algorithm::Yinyang, init), &ctl).unwrap();
            assert_eq!(a.labels, b.labels, "k={k}");
            assert_eq!(a.n_iter, b.n_iter);
            assert!((a.inertia - b.inertia).abs() <= 1e-9 * a.inertia);
        }
    }

    #[test]
    fn yinyang_f32_with_many_groups_is_exact_lloyd() {
        // f32 data on the AVX2 paths (where the CPU has them), several center groups
        let d = 16;
        let x: Vec<f32> = data(20_000, d, 7).iter().map(|&v| v as f32).collect();
        for k in [150, 300] {
            let init = Init::Explicit(x[..k * d].iter().map(|&v| v as f64).collect());
            let ctl = Control::new();
            let p = |a, max_iter| Params {
                max_iter,
                ..params(k, a, init.clone())
            };
            // f32 rounding of near-ties makes runs drift apart slowly over iterations (a label
            // flips, the centers differ, more labels flip): two steps agree up to a few rows
            let a = fit(&x, d, &p(Algorithm::Lloyd, 2), &ctl).unwrap();
            let b = fit(&x, d, &p(Algorithm::Yinyang, 2), &ctl).unwrap();
            let diff = a
                .labels
                .iter()
                .zip(&b.labels)
                .filter(|(u, v)| u != v)
                .count();
            assert!(diff <= 10, "k={k}: {diff} labels differ");
            // after 12 steps every label is still the nearest of the final centers (the bounds
            // never skip a closer center), and 1 and 2 threads give identical results
            let run = |threads: usize| {
                crate::parallel::set_num_threads(threads);
                crate::parallel::install(|| fit(&x, d, &p(Algorithm::Yinyang, 12), &ctl).unwrap())
            };
            let (b, c) = (run(1), run(2));
            assert_eq!(b.labels, c.labels, "k={k}");
            assert_eq!(b.centers, c.centers);
            for (i, &l) in b.labels.iter().enumerate() {
                let row = &x[i * d..(i + 1) * d];
                let dist = |c: usize| kernel::dist2_f64(row, &b.centers[c * d..(c + 1) * d]);
                let best = (0..k).map(dist).fold(f64::INFINITY, f64::min);
                let got = dist(l as usize);
                assert!(
                    got <= best * (1.0 + 1e-5) + 1e-4,
                    "k={k} row {i}: {got} vs {best}"
                );
            }
        }
    }

    #[test]
    fn same_result_for_one_and_two_threads() {
        let d = 4;
        // 140,000 rows: k-means|| runs on a row sample (more than 2 * SAMPLE_MIN rows).
        for n in [70_000, 140_000] {
            let x: Vec<f32> = data(n, d, 2).iter().map(|&v| v as f32).collect();
            let run = |threads: usize| {
                crate::parallel::set_num_threads(threads);
                let p = params(40, Algorithm::Auto, Init::KMeansParallel);
                crate::parallel::install(|| fit(&x, d, &p, &Control::new()).unwrap())
            };
            let (a, b) = (run(1), run(2));
            assert_eq!(a.centers, b.centers, "n={n}");
            assert_eq!(a.labels, b.labels);
            assert_eq!(a.inertia.to_bits(), b.inertia.to_bits());
        }
    }

    #[test]
    fn sampled_kmeans_parallel_is_as_good_as_on_all_rows() {
        let (d, k) = (3, 30);
        let x = data(2 * init::SAMPLE_MIN + 5_000, d, 5);
        let ctl = Control::new();
        for seed in [1, 2] {
            let run = |c: Vec<f64>| {
                let p = Params {
                    seed,
                    ..params(k, Algorithm::Auto, Init::Explicit(c))
                };
                fit(&x, d, &p, &ctl).unwrap().inertia
            };
            let sampled = run(init::kmeans_parallel(&x, d, k, seed, &ctl).unwrap());
            let all = run(init::kmeans_parallel_all(&x, d, k, seed, &ctl).unwrap());
            assert!(sampled <= 1.02 * all, "seed {seed}: {sampled} vs {all}");
        }
    }

    #[test]
    fn errors_name_the_argument() {
        let ctl = Control::new();
        let p = params(3, Algorithm::Auto, Init::KMeansParallel);
        let e = fit(&[1.0, f64::NAN, 2.0, 3.0], 2, &p, &ctl).unwrap_err();
        assert!(e.to_string().starts_with("X: must be finite"), "{e}");
        let e = fit(&[1.0, 2.0, 3.0, 4.0], 2, &p, &ctl).unwrap_err();
        assert!(e.to_string().starts_with("n_clusters"), "{e}");
        let e = fit::<f64>(&[], 2, &p, &ctl).unwrap_err();
        assert!(e.to_string().starts_with("X: is empty"), "{e}");
        let bad = params(2, Algorithm::Auto, Init::Explicit(vec![0.0; 3]));
        let e = fit(&[1.0, 2.0, 3.0, 4.0], 2, &bad, &ctl).unwrap_err();
        assert!(e.to_string().starts_with("init"), "{e}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn labels_are_nearest_and_inertia_is_exact(
            n in 1usize..200, d in 1usize..5, k in 1usize..12, seed in 0u64..1000,
            alg in 0usize..2,
        ) {
            let k = k.min(n);
            let mut r = crate::rng::stream(seed, 9);
            let x: Vec<f64> = (0..n * d).map(|_| (r.random_range(-5.0..5.0f64) * 2.0).round()).collect();
            let algorithm = [Algorithm::Lloyd, Algorithm::Yinyang][alg];
            let f = fit(&x, d, &Params { seed, ..params(k, algorithm, Init::KMeansParallel) },
                &Control::new()).unwrap();
            let mut total = 0.0;
            for i in 0..n {
                let row = &x[i * d..(i + 1) * d];
                let dl = kernel::dist2_f64(row, &f.centers[f.labels[i] as usize * d..][..d]);
                for c in 0..k {
                    let dc = kernel::dist2_f64(row, &f.centers[c * d..(c + 1) * d]);
                    prop_assert!(dl <= dc + 1e-9 * (1.0 + dc));
                }
                total += dl;
            }
            prop_assert!((total - f.inertia).abs() <= 1e-9 * (1.0 + total));
        }
    }
}
