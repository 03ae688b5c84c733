//! The small master problems of the level bundle method, over the R resource prices only,
//! solved with clarabel (interior point; the problems have 2R+1 variables and one row per cut).
//!
//! Prices are scaled: `y_r = q_r * s_r / vs` with `s_r` the resource's bound and `vs` the value
//! scale, so that every coefficient is of order one. Variables `x = [y (R), w (R), t]`:
//! `w_r >= (hi_r/s_r) y_r`, `w_r >= (lo_r/s_r) y_r` is the exact bound term of the dual,
//! `t >= a_j - b_j . (y - y_j)` the cuts of the Lagrangian part (`a_j = L_j / vs`,
//! `b_j = G_j / s_r`).

use clarabel::algebra::CscMatrix;
use clarabel::solver::{
    DefaultSettingsBuilder, DefaultSolver, IPSolver, SolverStatus, SupportedConeT,
};

pub struct Cut {
    pub a: f64,
    pub b: Vec<f64>,
    pub y: Vec<f64>,
    /// Unscaled value and usage of the users' choices at this iterate (for the primal).
    pub value: f64,
    pub usage: Vec<f64>,
    /// Last iteration in which this cut had a positive multiplier.
    pub last_active: usize,
}

pub struct Master {
    pub r: usize,
    /// `hi_r / s_r` (None: no upper bound, price fixed <= 0).
    pub hs: Vec<Option<f64>>,
    /// `lo_r / s_r` (0 when no lower bound).
    pub ls: Vec<f64>,
    pub lb: Vec<f64>,
    pub ub: Vec<f64>,
    pub cuts: Vec<Cut>,
}

pub struct Kelley {
    /// Minimum of the model over the box (scaled).
    pub value: f64,
    pub y: Vec<f64>,
    /// Multipliers of the cuts (sum to one).
    pub lambda: Vec<f64>,
}

impl Master {
    fn rows(&self, level: Option<f64>) -> (CscMatrix<f64>, Vec<f64>, usize) {
        let r = self.r;
        let n = 2 * r + 1;
        let (mut ii, mut jj, mut vv, mut b) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut row = 0usize;
        for c in &self.cuts {
            let mut rhs = -c.a;
            for k in 0..r {
                if c.b[k] != 0.0 {
                    ii.push(row);
                    jj.push(k);
                    vv.push(-c.b[k]);
                    rhs -= c.b[k] * c.y[k];
                }
            }
            ii.push(row);
            jj.push(2 * r);
            vv.push(-1.0);
            b.push(rhs);
            row += 1;
        }
        for k in 0..r {
            if let Some(h) = self.hs[k] {
                ii.extend([row, row]);
                jj.extend([k, r + k]);
                vv.extend([h, -1.0]);
                b.push(0.0);
                row += 1;
            }
            ii.extend([row, row]);
            jj.extend([k, r + k]);
            vv.extend([self.ls[k], -1.0]);
            b.push(0.0);
            row += 1;
            ii.push(row);
            jj.push(k);
            vv.push(1.0);
            b.push(self.ub[k]);
            row += 1;
            ii.push(row);
            jj.push(k);
            vv.push(-1.0);
            b.push(-self.lb[k]);
            row += 1;
        }
        if let Some(l) = level {
            for k in 0..r + 1 {
                ii.push(row);
                jj.push(r + k);
                vv.push(1.0);
            }
            b.push(l);
            row += 1;
        }
        (CscMatrix::new_from_triplets(row, n, ii, jj, vv), b, row)
    }

    fn run(
        &self,
        p: CscMatrix<f64>,
        c: Vec<f64>,
        level: Option<f64>,
    ) -> Option<(Vec<f64>, Vec<f64>)> {
        let (a, b, m) = self.rows(level);
        let cones = [SupportedConeT::NonnegativeConeT(m)];
        let settings = DefaultSettingsBuilder::default()
            .verbose(false)
            .max_iter(200)
            .build()
            .ok()?;
        let mut solver = DefaultSolver::new(&p, &c, &a, &b, &cones, settings).ok()?;
        solver.solve();
        match solver.solution.status {
            SolverStatus::Solved | SolverStatus::AlmostSolved => {
                Some((solver.solution.x.clone(), solver.solution.z.clone()))
            }
            _ => None,
        }
    }

    /// Kelley's LP: the minimum of the cutting-plane model of the dual over the box.
    pub fn kelley(&self) -> Option<Kelley> {
        let r = self.r;
        let n = 2 * r + 1;
        let mut c = vec![0.0; n];
        for x in c.iter_mut().skip(r) {
            *x = 1.0;
        }
        let (x, z) = self.run(CscMatrix::zeros((n, n)), c, None)?;
        let value = x[r..].iter().sum();
        // The cuts' multipliers sum to one (normalised against rounding).
        let mut lambda: Vec<f64> = z[..self.cuts.len()].iter().map(|v| v.max(0.0)).collect();
        let sum: f64 = lambda.iter().sum();
        if sum > 0.0 {
            for l in lambda.iter_mut() {
                *l /= sum;
            }
        }
        Some(Kelley {
            value,
            y: x[..r].to_vec(),
            lambda,
        })
    }

    /// Projection of `center` on the level set `{model <= level}` within the box; `None` if the
    /// level set is empty (or the solver failed).
    pub fn project(&self, center: &[f64], level: f64) -> Option<Vec<f64>> {
        let r = self.r;
        let n = 2 * r + 1;
        let mut c = vec![0.0; n];
        c[..r].copy_from_slice(&center.iter().map(|v| -v).collect::<Vec<_>>());
        let idx: Vec<usize> = (0..r).collect();
        let p = CscMatrix::new_from_triplets(n, n, idx.clone(), idx, vec![1.0; r]);
        let (x, _) = self.run(p, c, Some(level))?;
        Some(x[..r].to_vec())
    }
}
