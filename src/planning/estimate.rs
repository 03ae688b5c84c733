//! Honest leaf effects of one grown tree (the estimation half of Wager & Athey; see
//! [`super::forest`]).
//!
//! The estimation rows are routed down the tree on their codes, their per-arm sums are added up
//! from the leaves to the root (children have larger indices than their parent, so one reverse
//! sweep does it), and every node's effect is shrunk toward its parent's, top down
//! ([`super::shrink`]; the root's parent is the effect on all the data). The leaves keep theirs:
//! a leaf arm with few rows borrows from its parent, an empty one takes the parent's effect.

use super::tree::{Node, Shared, Tree, TreeParams, LEAF};
use super::{raw_effect, shrink, smoothed_var, ArmSums, Effect};
use crate::control::Control;
use crate::error::Result;

/// Routes the estimation rows, adds their sums up the tree and shrinks every node's effect toward
/// its parent's; returns the tree with its leaf values.
pub(super) fn estimate(
    sh: &Shared<'_>,
    prm: &TreeParams,
    mut nodes: Vec<Node>,
    parent: &[u32],
    est_rows: &[u32],
    ctl: &Control,
) -> Result<Tree> {
    let arms = sh.arms;
    let t_count = arms - 1;
    let rs = sh.stride;
    let len = nodes.len();
    let mut sums = vec![ArmSums::default(); len * arms];
    for (c, chunk) in est_rows.chunks(1 << 16).enumerate() {
        if c % 8 == 0 {
            ctl.check()?;
        }
        for &i in chunk {
            let i = i as usize;
            let row = &sh.codes[i * rs..(i + 1) * rs];
            let mut k = 0usize;
            while nodes[k].feature != LEAF {
                let nd = &nodes[k];
                k = if row[nd.feature as usize] <= nd.bin {
                    nd.left
                } else {
                    nd.right
                } as usize;
            }
            sums[k * arms + sh.arm[i] as usize].add(sh.w.map_or(1.0, |w| w[i]), sh.y[i]);
        }
    }
    // Children have larger indices than their parent: a reverse sweep adds leaves up.
    for k in (1..len).rev() {
        let pa = parent[k] as usize;
        for a in 0..arms {
            let s = sums[k * arms + a];
            sums[pa * arms + a].merge(&s);
        }
    }
    let mut eff = vec![Effect::default(); len * t_count];
    let mut var = vec![0.0; len * arms];
    let mut n_leaves = 0u32;
    let mut est = Vec::new();
    let mut se = Vec::new();
    for k in 0..len {
        let (pe, pv): (&[Effect], &[f64]) = if k == 0 {
            (sh.global, sh.global_var)
        } else {
            let pa = parent[k] as usize;
            (
                &eff[pa * t_count..(pa + 1) * t_count],
                &var[pa * arms..(pa + 1) * arms],
            )
        };
        let s = &sums[k * arms..(k + 1) * arms];
        let mut e_k = Vec::with_capacity(t_count);
        for t in 1..arms {
            let raw = raw_effect(&s[t], &s[0], pv[t], pv[0], 1.0);
            e_k.push(shrink(raw, prm.shrinkage, pe[t - 1]));
        }
        let v_k: Vec<f64> = (0..arms).map(|a| smoothed_var(&s[a], pv[a])).collect();
        eff[k * t_count..(k + 1) * t_count].copy_from_slice(&e_k);
        var[k * arms..(k + 1) * arms].copy_from_slice(&v_k);
        if nodes[k].feature == LEAF {
            nodes[k].left = n_leaves;
            n_leaves += 1;
            est.extend(e_k.iter().map(|e| e.est));
            se.extend(e_k.iter().map(|e| e.se));
        }
    }
    Ok(Tree { nodes, est, se })
}
