//! The planner's feature matrix (`growthmachine/planning/_features.py`, `planning_features`)
//! filled from its source columns: each column a number array of the insight's or the users'
//! tables, written as float64 as it is, with non-finite values as -1 (history features), or as
//! 1 / 0 where it equals a level's code (one-hot columns). The numbers are numpy's: a value is
//! converted to float64 as numpy's cast does (`as f64`: exact for these types but `i64`, which
//! rounds to the nearest, as numpy does), a boolean is 1 or 0.

use crate::control::Control;
use crate::error::{check_len, try_zeroed_rows, Result};
use rayon::prelude::*;

/// Rows filled per parallel chunk (Ctrl-C is checked before each).
const CHUNK: usize = 4096;

/// A source column.
#[derive(Clone, Copy)]
pub enum Column<'a> {
    F64(&'a [f64]),
    F32(&'a [f32]),
    I64(&'a [i64]),
    I32(&'a [i32]),
    I16(&'a [i16]),
    I8(&'a [i8]),
    U8(&'a [u8]),
    Bool(&'a [bool]),
}

/// How a column becomes its output column.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum How {
    /// Its values as float64.
    AsIs,
    /// Its values, non-finite ones (NaN, +-inf) as -1.
    Finite,
    /// 1 where the value equals the code, else 0.
    Equals(i64),
}

impl Column<'_> {
    fn len(&self) -> usize {
        match self {
            Column::F64(v) => v.len(),
            Column::F32(v) => v.len(),
            Column::I64(v) => v.len(),
            Column::I32(v) => v.len(),
            Column::I16(v) => v.len(),
            Column::I8(v) => v.len(),
            Column::U8(v) => v.len(),
            Column::Bool(v) => v.len(),
        }
    }

    /// Writes rows `lo..lo + out.len() / stride` of the column into `out[r * stride]`.
    fn write(&self, how: How, lo: usize, out: &mut [f64], stride: usize) {
        fn go<T: Copy>(v: &[T], lo: usize, out: &mut [f64], stride: usize, f: impl Fn(T) -> f64) {
            for (o, &x) in out.iter_mut().step_by(stride).zip(&v[lo..]) {
                *o = f(x);
            }
        }
        fn flag(b: bool) -> f64 {
            if b {
                1.0
            } else {
                0.0
            }
        }
        let finite = |x: f64| if x.is_finite() { x } else { -1.0 };
        match (*self, how) {
            (Column::F64(v), How::AsIs) => go(v, lo, out, stride, |x| x),
            (Column::F64(v), How::Finite) => go(v, lo, out, stride, finite),
            // numpy compares a float with an int code as floats
            (Column::F64(v), How::Equals(c)) => go(v, lo, out, stride, |x| flag(x == c as f64)),
            (Column::F32(v), How::AsIs) => go(v, lo, out, stride, f64::from),
            (Column::F32(v), How::Finite) => go(v, lo, out, stride, |x| finite(f64::from(x))),
            // and a float32 with the code as a float32 (numpy's weak int)
            (Column::F32(v), How::Equals(c)) => go(v, lo, out, stride, |x| flag(x == c as f32)),
            // integers are finite: Finite is AsIs
            (Column::I64(v), How::Equals(c)) => go(v, lo, out, stride, |x| flag(x == c)),
            (Column::I64(v), _) => go(v, lo, out, stride, |x| x as f64),
            (Column::I32(v), How::Equals(c)) => go(v, lo, out, stride, |x| flag(i64::from(x) == c)),
            (Column::I32(v), _) => go(v, lo, out, stride, f64::from),
            (Column::I16(v), How::Equals(c)) => go(v, lo, out, stride, |x| flag(i64::from(x) == c)),
            (Column::I16(v), _) => go(v, lo, out, stride, f64::from),
            (Column::I8(v), How::Equals(c)) => go(v, lo, out, stride, |x| flag(i64::from(x) == c)),
            (Column::I8(v), _) => go(v, lo, out, stride, f64::from),
            (Column::U8(v), How::Equals(c)) => go(v, lo, out, stride, |x| flag(i64::from(x) == c)),
            (Column::U8(v), _) => go(v, lo, out, stride, f64::from),
            (Column::Bool(v), How::Equals(c)) => {
                go(v, lo, out, stride, |x| flag(i64::from(x) == c))
            }
            (Column::Bool(v), _) => go(v, lo, out, stride, flag),
        }
    }
}

/// Fills `out`, the `n x columns.len()` float64 matrix (row-major), with the columns (each `n`
/// long), rows in parallel chunks (the result does not depend on the threads). The caller
/// allocates `out` (numpy: its large arrays get transparent huge pages, which the forests'
/// scoring of its rows wants).
pub fn fill(columns: &[(Column<'_>, How)], n: usize, out: &mut [f64], ctl: &Control) -> Result<()> {
    for (i, (c, _)) in columns.iter().enumerate() {
        check_len(&format!("columns[{i}]"), c.len(), n, "the users")?;
    }
    let p = columns.len();
    check_len("X", out.len(), n * p, "n_users x n_columns")?;
    if p == 0 {
        return Ok(());
    }
    out.par_chunks_mut(CHUNK * p)
        .enumerate()
        .try_for_each(|(b, blk)| {
            ctl.check()?;
            for (i, &(c, how)) in columns.iter().enumerate() {
                c.write(how, b * CHUNK, &mut blk[i..], p);
            }
            Ok(())
        })
}

/// [`fill`] into a new matrix.
pub fn matrix(columns: &[(Column<'_>, How)], n: usize, ctl: &Control) -> Result<Vec<f64>> {
    let mut out: Vec<f64> = try_zeroed_rows("X", n, columns.len())?;
    fill(columns, n, &mut out, ctl)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_column_as_numpy_writes_it() {
        let f = [1.5, f64::NAN, f64::INFINITY, -0.0, 2.0];
        let g = [0.25f32, f32::NEG_INFINITY, 3.0, f32::NAN, -1.0];
        let i = [i64::MAX, -3, 0, 2, 9_007_199_254_740_993];
        let i4 = [1i32, -1, 0, 2, 7];
        let i2 = [1i16, -1, 0, 2, 300];
        let c = [0i8, 1, -1, 2, 1]; // -1: a missing category, no level
        let u = [0u8, 255, 1, 2, 1];
        let b = [true, false, true, false, false];
        let cols = [
            (Column::F64(&f), How::AsIs),
            (Column::F64(&f), How::Finite),
            (Column::F64(&f), How::Equals(2)),
            (Column::F32(&g), How::Finite),
            (Column::F32(&g), How::AsIs),
            (Column::I64(&i), How::AsIs),
            (Column::I64(&i), How::Equals(2)),
            (Column::I32(&i4), How::Equals(-1)),
            (Column::I16(&i2), How::AsIs),
            (Column::I8(&c), How::Equals(1)),
            (Column::I8(&c), How::Equals(-1)),
            (Column::U8(&u), How::AsIs),
            (Column::Bool(&b), How::AsIs),
            (Column::Bool(&b), How::Equals(0)),
        ];
        let x = matrix(&cols, 5, &Control::default()).unwrap();
        let p = cols.len();
        let col = |k: usize| (0..5).map(|r| x[r * p + k]).collect::<Vec<f64>>();
        let bits = |v: Vec<f64>| v.into_iter().map(f64::to_bits).collect::<Vec<_>>();
        assert_eq!(bits(col(0)), bits(f.to_vec()));
        assert_eq!(col(1), [1.5, -1.0, -1.0, 0.0, 2.0]);
        assert_eq!(col(1)[3].to_bits(), (-0.0f64).to_bits());
        assert_eq!(col(2), [0.0, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!(col(3), [0.25, -1.0, 3.0, -1.0, -1.0]);
        assert!(col(4)[3].is_nan() && col(4)[1] == f64::NEG_INFINITY);
        // int64 to float64 rounds to the nearest (2^53 + 1 -> 2^53), as numpy's cast
        assert_eq!(
            col(5),
            [i64::MAX as f64, -3.0, 0.0, 2.0, 9_007_199_254_740_992.0]
        );
        assert_eq!(col(6), [0.0, 0.0, 0.0, 1.0, 0.0]);
        assert_eq!(col(7), [0.0, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(col(8), [1.0, -1.0, 0.0, 2.0, 300.0]);
        assert_eq!(col(9), [0.0, 1.0, 0.0, 0.0, 1.0]);
        assert_eq!(col(10), [0.0, 0.0, 1.0, 0.0, 0.0]);
        assert_eq!(col(11), [0.0, 255.0, 1.0, 2.0, 1.0]);
        assert_eq!(col(12), [1.0, 0.0, 1.0, 0.0, 0.0]);
        assert_eq!(col(13), [0.0, 1.0, 0.0, 1.0, 1.0]);
    }

    #[test]
    fn chunks_and_threads_give_the_same_matrix_and_lengths_are_checked() {
        let n = 3 * CHUNK + 17;
        let f: Vec<f64> = (0..n).map(|i| (i as f64).sin()).collect();
        let c: Vec<i8> = (0..n).map(|i| (i % 5) as i8).collect();
        let cols = [
            (Column::F64(&f), How::Finite),
            (Column::I8(&c), How::Equals(3)),
        ];
        let x = matrix(&cols, n, &Control::default()).unwrap();
        for r in 0..n {
            assert_eq!(x[2 * r], f[r]);
            assert_eq!(x[2 * r + 1], if r % 5 == 3 { 1.0 } else { 0.0 });
        }
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| matrix(&cols, n, &Control::default()).unwrap());
        assert_eq!(one, x);
        let e = matrix(&cols, n + 1, &Control::default()).unwrap_err();
        assert!(e.to_string().contains("columns[0]"), "{e}");
        let ctl = Control::default();
        ctl.cancel();
        assert!(matrix(&cols, n, &ctl).is_err());
        assert!(matrix(&[], 4, &Control::default()).unwrap().is_empty());
    }
}
