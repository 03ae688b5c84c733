//! The planner's isotonic calibration map (`growthmachine.planning._calibrate.Calibration`):
//! a score mapped by linear interpolation between the map's knots, flat beyond its first and
//! last knots, with the arithmetic of numpy's `np.interp(x, xp, fp)` (numpy 2.x,
//! `arr_interp`), so that the values are the same numbers.

/// `np.interp(x, xp, fp)` for knots `xp` ascending (at least one; `fp` as long): `fp[0]` below
/// `xp[0]`, `fp[last]` at or above `xp[last]`, NaN for a NaN `x` (one knot: `fp[0]` always, as
/// the map gives), else `slope * (x - xp[j]) + fp[j]` on the knots' interval holding `x`
/// (`fp[j]` at a knot), numpy's retry from the right end if that is NaN.
#[inline]
pub fn interp(x: f64, xp: &[f64], fp: &[f64]) -> f64 {
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
    // the last knot at or below x
    let j = xp.partition_point(|&v| v <= x) - 1;
    if j == last || xp[j] == x {
        return fp[j];
    }
    let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
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
    for (row, o) in s.chunks_exact(t).zip(out.chunks_exact_mut(t)) {
        for c in 0..t {
            let (xp, fp) = maps[map_of[c]];
            o[c] = interp(row[c], xp, fp);
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
}
