//! Quantile bins: every feature is cut once into at most `max_bins` (<= 256) bins, and the matrix
//! is coded as u8, row-major, each row padded to whole 8-byte words (`codes[row * stride + f]`).
//!
//! Edges are taken from a systematic sample of at most [`SAMPLE`] rows (every `n / SAMPLE`-th
//! row: no randomness, the same for any thread count). A feature with at most `max_bins` distinct
//! sampled values gets one bin per value (edges at midpoints); otherwise the edges are the sampled
//! quantiles `k / max_bins`, deduplicated, so a heavy tie (90% zeros) gets one bin. The bin of `x`
//! is the number of edges strictly below it, so `bin(x) <= b` exactly when `x <= edges[b]`: a
//! split learnt on codes is applied to raw values by comparing with `edges[b]`.
//!
//! Row-major codes (not column-major) because every consumer reads whole rows: a tree copies the
//! rows of its subsample into its own buffer, and honest estimation routes single rows down a
//! tree; both touch one cache line per row instead of one per row and feature.

use crate::control::Control;
use crate::error::{CoreError, Result};
use crate::parallel::CHUNK;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Rows sampled to place the edges.
pub const SAMPLE: usize = 200_000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bins {
    /// Per feature, ascending edges; the feature has `edges.len() + 1` bins.
    pub edges: Vec<Vec<f64>>,
}

impl Bins {
    /// Edges for the `n x p` row-major matrix `x` (finite values).
    pub fn fit(x: &[f64], n: usize, p: usize, max_bins: usize) -> Result<Bins> {
        if !(2..=256).contains(&max_bins) {
            return Err(CoreError::invalid(
                "max_bins",
                format!("must be between 2 and 256, got {max_bins}"),
            ));
        }
        let m = n.min(SAMPLE);
        let rows: Vec<usize> = (0..m)
            .map(|i| (i as u128 * n as u128 / m as u128) as usize)
            .collect();
        let edges = (0..p)
            .into_par_iter()
            .map(|f| {
                let mut v: Vec<f64> = rows.iter().map(|&r| x[r * p + f]).collect();
                v.sort_unstable_by(f64::total_cmp);
                edges_of(&v, max_bins)
            })
            .collect();
        Ok(Bins { edges })
    }

    pub fn n_features(&self) -> usize {
        self.edges.len()
    }

    pub fn n_bins(&self, f: usize) -> usize {
        self.edges[f].len() + 1
    }

    #[inline]
    pub fn bin(&self, f: usize, v: f64) -> u8 {
        self.edges[f].partition_point(|e| *e < v) as u8
    }

    /// Codes of the `n x p` matrix, row-major with [`stride`]`(p)` bytes per row (the padding
    /// is 0); checks `ctl` between chunks.
    pub fn transform(&self, x: &[f64], n: usize, ctl: &Control) -> Result<Vec<u8>> {
        let p = self.n_features();
        let rs = stride(p);
        let mut codes = vec![0u8; n * rs];
        if p == 0 {
            return Ok(codes);
        }
        codes
            .par_chunks_mut(CHUNK * rs)
            .zip(x.par_chunks(CHUNK * p))
            .try_for_each(|(out, xs)| {
                ctl.check()?;
                for (o, v) in out.chunks_exact_mut(rs).zip(xs.chunks_exact(p)) {
                    for f in 0..p {
                        o[f] = self.bin(f, v[f]);
                    }
                }
                Ok(())
            })?;
        Ok(codes)
    }
}

/// Bytes per row of the codes: `p` rounded up to whole 8-byte words, so that a tree copies a row
/// as `p / 8` (rounded up) word moves instead of a `memmove` call.
pub fn stride(p: usize) -> usize {
    p.div_ceil(8) * 8
}

/// Edges for one feature from its sorted sample.
fn edges_of(sorted: &[f64], max_bins: usize) -> Vec<f64> {
    let mut distinct: Vec<f64> = sorted.to_vec();
    distinct.dedup();
    let mut e: Vec<f64> = if distinct.len() <= max_bins {
        distinct
            .windows(2)
            .map(|w| w[0] + (w[1] - w[0]) / 2.0)
            .collect()
    } else {
        let m = sorted.len();
        let top = *distinct.last().expect("non-empty");
        (1..max_bins)
            .map(|k| sorted[k * m / max_bins])
            .filter(|v| *v < top)
            .collect()
    };
    e.dedup();
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_values_get_one_bin_each_and_ties_collapse() {
        let x: Vec<f64> = (0..1000).map(|i| (i % 3) as f64).collect();
        let b = Bins::fit(&x, 1000, 1, 64).unwrap();
        assert_eq!(b.edges[0], vec![0.5, 1.5]);
        let codes = b.transform(&x, 1000, &Control::new()).unwrap();
        assert_eq!(codes.len(), 8000);
        assert!(codes
            .chunks(8)
            .zip(&x)
            .all(|(c, v)| c[0] as f64 == *v && c[1..] == [0; 7]));
        // 90% zeros, the rest spread: zeros in bin 0, never more than max_bins bins
        let y: Vec<f64> = (0..10_000)
            .map(|i| if i % 10 == 0 { i as f64 } else { 0.0 })
            .collect();
        let b = Bins::fit(&y, 10_000, 1, 16).unwrap();
        assert!(b.n_bins(0) <= 16);
        assert_eq!(b.bin(0, 0.0), 0);
        assert!(b.bin(0, 5000.0) > 0);
    }

    #[test]
    fn bin_and_edge_agree() {
        let x: Vec<f64> = (0..5000)
            .map(|i| ((i * 7919) % 5000) as f64 / 13.0)
            .collect();
        let b = Bins::fit(&x, 5000, 1, 32).unwrap();
        assert!(b.n_bins(0) <= 32);
        for &v in &x {
            let c = b.bin(0, v) as usize;
            for (k, e) in b.edges[0].iter().enumerate() {
                assert_eq!(c <= k, v <= *e);
            }
        }
        assert!(Bins::fit(&x, 5000, 1, 1).is_err());
        assert!(Bins::fit(&x, 5000, 1, 257).is_err());
    }
}
