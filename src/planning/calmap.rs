//! The planner's isotonic calibration map (`growthmachine.planning._calibrate.Calibration`):
//! a score mapped by linear interpolation between the map's knots, flat beyond its first and
//! last knots, with the arithmetic of numpy's `np.interp(x, xp, fp)` (numpy 2.x,
//! `arr_interp`), so that the values are the same numbers.

/// A map's knots `xp` (ascending, at least one), values `fp` (as many) and the slope of each
/// interval, computed once as numpy does when it has more points to map than knots
/// (`slopes[i] = (fp[i+1] - fp[i]) / (xp[i+1] - xp[i])`: the same division, so the same
/// numbers as computing it per point).
pub struct Map<'a> {
    xp: &'a [f64],
    fp: &'a [f64],
    slopes: Vec<f64>,
}

/// Maps of at most this many knots find a point's interval by counting (no branches).
const SCAN: usize = 16;

impl<'a> Map<'a> {
    /// The map of knots `xp` and values `fp` (`xp` ascending, at least one, `fp` as long).
    pub fn new(xp: &'a [f64], fp: &'a [f64]) -> Self {
        assert!(!xp.is_empty() && xp.len() == fp.len(), "knots and values");
        let slopes = (0..xp.len() - 1)
            .map(|j| (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]))
            .collect();
        Map { xp, fp, slopes }
    }

    /// `np.interp(x, xp, fp)`: `fp[0]` below `xp[0]`, `fp[last]` at or above `xp[last]`, NaN
    /// for a NaN `x` (one knot: `fp[0]` always, as the map gives), else `slope * (x - xp[j]) +
    /// fp[j]` on the knots' interval holding `x` (`fp[j]` at a knot), numpy's retry from the
    /// right end if that is NaN.
    #[inline(always)]
    pub fn at(&self, x: f64) -> f64 {
        let (xp, fp) = (self.xp, self.fp);
        let last = xp.len() - 1;
        if last == 0 {
            return fp[0];
        }
        if x.is_nan() {
            return x;
        }
        if x > xp[last] {
            return fp[last];
        }
        if x < xp[0] {
            return fp[0];
        }
        // the last knot at or below x (xp ascending: the count of knots <= x, less one)
        let j = if xp.len() <= SCAN {
            xp.iter().map(|&v| usize::from(v <= x)).sum::<usize>() - 1
        } else {
            xp.partition_point(|&v| v <= x) - 1
        };
        if j == last || xp[j] == x {
            return fp[j];
        }
        let slope = self.slopes[j];
        let r = slope * (x - xp[j]) + fp[j];
        if !r.is_nan() {
            return r;
        }
        let r = slope * (x - xp[j + 1]) + fp[j + 1];
        if r.is_nan() && fp[j] == fp[j + 1] {
            fp[j]
        } else {
            r
        }
    }
}

/// `np.interp(x, xp, fp)` of one point ([`Map::at`]).
pub fn interp(x: f64, xp: &[f64], fp: &[f64]) -> f64 {
    Map::new(xp, fp).at(x)
}

/// Each column `c` of the `n x t` scores `s` (row-major) through its map `maps[map_of[c]]`
/// (knots, values), into `out` (`n x t`).
pub fn interp_columns(
    s: &[f64],
    t: usize,
    maps: &[(&[f64], &[f64])],
    map_of: &[usize],
    out: &mut [f64],
) {
    if t == 0 {
        return;
    }
    let maps: Vec<Map<'_>> = maps.iter().map(|&(x, f)| Map::new(x, f)).collect();
    for (row, o) in s.chunks_exact(t).zip(out.chunks_exact_mut(t)) {
        for c in 0..t {
            o[c] = maps[map_of[c]].at(row[c]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edges_of_the_map() {
        let (xp, fp) = ([0.0, 1.0, 1.0, 3.0], [1.0, 2.0, 5.0, 9.0]);
        assert_eq!(interp(-1.0, &xp, &fp), 1.0);
        assert_eq!(interp(0.0, &xp, &fp), 1.0);
        assert_eq!(interp(0.5, &xp, &fp), 1.5);
        // a repeated knot: the last of them, then the next interval
        assert_eq!(interp(1.0, &xp, &fp), 5.0);
        assert_eq!(interp(2.0, &xp, &fp), 7.0);
        assert_eq!(interp(3.0, &xp, &fp), 9.0);
        assert_eq!(interp(4.0, &xp, &fp), 9.0);
        assert!(interp(f64::NAN, &xp, &fp).is_nan());
        assert_eq!(interp(f64::NAN, &[2.0], &[7.0]), 7.0);
        assert_eq!(interp(-5.0, &[2.0], &[7.0]), 7.0);
        let mut out = [0.0; 4];
        let maps: [(&[f64], &[f64]); 2] = [(&xp, &fp), (&[2.0], &[7.0])];
        interp_columns(&[0.5, 0.5, 2.0, 9.0], 2, &maps, &[0, 1], &mut out);
        assert_eq!(out, [1.5, 7.0, 7.0, 7.0]);
    }

    #[test]
    fn short_and_long_maps_find_the_same_interval() {
        // knots with repeats, beyond the counted length: both ways of finding the interval
        let xp: Vec<f64> = (0..40).map(|i| ((i / 3) as f64) * 0.5 - 3.0).collect();
        let fp: Vec<f64> = (0..40).map(|i| (i as f64).sqrt() - 2.0).collect();
        let long = Map::new(&xp, &fp);
        for cut in [2, 5, 16] {
            let short = Map::new(&xp[..cut], &fp[..cut]);
            let long_cut = Map {
                xp: &xp[..cut],
                fp: &fp[..cut],
                slopes: long.slopes[..cut - 1].to_vec(),
            };
            for i in 0..200 {
                let x = i as f64 * 0.05 - 4.0;
                assert_eq!(short.at(x).to_bits(), long_cut.at(x).to_bits());
                let j = xp[..cut].partition_point(|&v| v <= x);
                let n = xp[..cut].iter().filter(|&&v| v <= x).count();
                assert_eq!(j, n);
            }
        }
    }
}
