//! Small numerical helpers shared by the cores, each written once: the Cholesky factor of a
//! small dense symmetric positive definite matrix (realtime's policies) and the solves and
//! inverses built on it (value models' Newton steps and covariances, the touchpoint response
//! model's Laplace approximation); a dense solve with partial pivoting for systems that need not
//! be positive definite (allocation's Newton steps on prices); a numerically stable logistic
//! function (realtime's logistic Thompson sampling, the touchpoint response model, the world's
//! sessions); and the upper concave hull of a multiple-choice item's options (touchpoint
//! frequency levels, the world's oracle).

/// Lower Cholesky factor `L` (row-major `d x d`, upper part zero) of the symmetric positive
/// definite matrix `s` (row-major) into `l`; `false` if `s` is not numerically positive definite.
pub fn cholesky(s: &[f64], d: usize, l: &mut [f64]) -> bool {
    l[..d * d].fill(0.0);
    for i in 0..d {
        for j in 0..=i {
            let mut sum = s[i * d + j];
            for k in 0..j {
                sum -= l[i * d + k] * l[j * d + k];
            }
            if i == j {
                if sum <= 0.0 || !sum.is_finite() {
                    return false;
                }
                l[i * d + i] = sum.sqrt();
            } else {
                l[i * d + j] = sum / l[j * d + j];
            }
        }
    }
    true
}

/// Solves `h x = g` for a symmetric positive definite `k x k` matrix `h` (row-major) by
/// Cholesky; `None` when `h` is not positive definite.
pub fn cholesky_solve(h: &[f64], k: usize, g: &[f64]) -> Option<Vec<f64>> {
    let mut l = vec![0.0; k * k];
    if !cholesky(h, k, &mut l) {
        return None;
    }
    let mut y = vec![0.0; k];
    for i in 0..k {
        let mut s = g[i];
        for m in 0..i {
            s -= l[i * k + m] * y[m];
        }
        y[i] = s / l[i * k + i];
    }
    let mut x = vec![0.0; k];
    for i in (0..k).rev() {
        let mut s = y[i];
        for m in i + 1..k {
            s -= l[m * k + i] * x[m];
        }
        x[i] = s / l[i * k + i];
    }
    Some(x)
}

/// The inverse of a symmetric positive definite `k x k` matrix (row-major), column by column.
pub fn invert_spd(h: &[f64], k: usize) -> Option<Vec<f64>> {
    let mut inv = vec![0.0; k * k];
    for j in 0..k {
        let mut e = vec![0.0; k];
        e[j] = 1.0;
        let col = cholesky_solve(h, k, &e)?;
        for i in 0..k {
            inv[i * k + j] = col[i];
        }
    }
    Some(inv)
}

/// Solves `a x = b` (a is `m x m`, row-major, any square matrix) by Gaussian elimination with
/// partial pivoting; `None` if singular or if the solution is not finite.
pub fn solve_dense(mut a: Vec<f64>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let m = b.len();
    for col in 0..m {
        let piv =
            (col..m).max_by(|&i, &j| a[i * m + col].abs().total_cmp(&a[j * m + col].abs()))?;
        if a[piv * m + col].abs() < 1e-300 {
            return None;
        }
        if piv != col {
            for k in 0..m {
                a.swap(piv * m + k, col * m + k);
            }
            b.swap(piv, col);
        }
        for row in col + 1..m {
            let f = a[row * m + col] / a[col * m + col];
            if f != 0.0 {
                for k in col..m {
                    a[row * m + k] -= f * a[col * m + k];
                }
                b[row] -= f * b[col];
            }
        }
    }
    let mut x = vec![0.0; m];
    for row in (0..m).rev() {
        let mut s = b[row];
        for k in row + 1..m {
            s -= a[row * m + k] * x[k];
        }
        x[row] = s / a[row * m + row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// The logistic function, stable for large `|t|` (no overflow of `exp`).
#[inline(always)]
pub fn sigmoid(t: f64) -> f64 {
    if t >= 0.0 {
        1.0 / (1.0 + (-t).exp())
    } else {
        let e = t.exp();
        e / (1.0 + e)
    }
}

/// The options of a multiple-choice item a Lagrangian best response can pick: the ids of the
/// `points` (`(cost, value, id)`, sorted by cost ascending) on the upper concave hull of the
/// points and the origin (the "take nothing" option), cut where the hull stops rising. At any
/// price `mu >= 0` the option maximising `value - mu * cost` (if positive) is among them.
pub fn upper_hull(points: impl IntoIterator<Item = (f64, f64, usize)>, out: &mut Vec<usize>) {
    out.clear();
    // Stack of (x, y, id); the origin is implicit as the first point.
    let mut st: Vec<(f64, f64, usize)> = Vec::new();
    for (x, y, l) in points {
        loop {
            let (x0, y0) = if st.len() >= 2 {
                let p = st[st.len() - 2];
                (p.0, p.1)
            } else {
                (0.0, 0.0)
            };
            let Some(&(x1, y1, _)) = st.last() else { break };
            // Pop the last point if it is on or below the segment from its predecessor to (x, y).
            if (x1 - x0) * (y - y0) - (y1 - y0) * (x - x0) >= 0.0 {
                st.pop();
            } else {
                break;
            }
        }
        st.push((x, y, l));
    }
    let mut prev = 0.0;
    for &(_, y, l) in &st {
        if y <= prev {
            break;
        }
        out.push(l);
        prev = y;
    }
}

#[cfg(test)]
mod tests {
    use super::upper_hull;

    #[test]
    fn upper_hull_keeps_the_best_responses() {
        // (1, 1) lies below the chord from the origin to (2, 4); (3, 4.5) is on the hull; (4, 4)
        // stops rising.
        let pts = [(1.0, 1.0), (2.0, 4.0), (3.0, 4.5), (4.0, 4.0)];
        let mut h = Vec::new();
        let ids = |p: &[(f64, f64)]| -> Vec<(f64, f64, usize)> {
            p.iter().enumerate().map(|(i, q)| (q.0, q.1, i)).collect()
        };
        upper_hull(ids(&pts), &mut h);
        assert_eq!(h, vec![1, 2]);
        upper_hull(ids(&[(1.0, -1.0), (2.0, 0.0)]), &mut h);
        assert!(h.is_empty());
        // Brute force: for many prices the best option is on the hull.
        let pts = [
            (0.5, 0.2),
            (1.0, 1.5),
            (1.5, 1.6),
            (2.0, 3.0),
            (3.0, 3.2),
            (5.0, 3.3),
        ];
        upper_hull(ids(&pts), &mut h);
        for k in 0..200 {
            let mu = k as f64 * 0.02;
            let (best, v) = pts
                .iter()
                .enumerate()
                .map(|(i, p)| (i, p.1 - mu * p.0))
                .fold((usize::MAX, 0.0), |a, b| if b.1 > a.1 { b } else { a });
            if best != usize::MAX {
                assert!(h.contains(&best), "mu {mu}: best {best} ({v}) not in {h:?}");
            }
        }
    }
}
