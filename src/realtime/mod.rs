//! `realtime` core (pure Rust, no PyO3 types): contextual bandits, budget pacing, session
//! policies and offline policy evaluation.
//!
//! One small file per algorithm (river-like): [`linucb`], [`lints`], [`logistic_ts`],
//! [`epsilon_greedy`] define each policy's index; [`policy`] is the engine they share (per-action
//! models in [`arms`], dense kernels in [`kernels`]); [`pacer`] does budget pacing; [`ope`] the
//! off-policy estimators.

#![allow(clippy::needless_range_loop)] // index loops read best in the numeric kernels

pub mod arms;
pub mod epsilon_greedy;
pub(crate) mod kernels;
pub mod lints;
pub mod linucb;
pub mod logistic_ts;
pub mod ope;
pub mod pacer;
pub mod policy;

pub use policy::{Algo, Config, Policy, Rows};

/// Versioned state with a checksum: the envelope of [`crate::state`] holding the JSON payload as
/// a string plus its 64-bit FNV-1a hash, so that a flipped bit anywhere gives `CoreError::State`
/// instead of silently different numbers.
pub(crate) mod sealed {
    use crate::error::{CoreError, Result};
    use serde::{de::DeserializeOwned, Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    struct Sealed {
        payload: String,
        fnv64: u64,
    }

    fn fnv64(b: &[u8]) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for x in b {
            h ^= *x as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    }

    pub fn to_bytes<T: Serialize>(kind: &str, version: u32, data: &T) -> Result<Vec<u8>> {
        let payload = serde_json::to_string(data)
            .map_err(|e| CoreError::State(format!("cannot serialise {kind}: {e}")))?;
        let fnv64 = fnv64(payload.as_bytes());
        crate::state::to_bytes(kind, version, &Sealed { payload, fnv64 })
    }

    pub fn from_bytes<T: DeserializeOwned>(
        kind: &str,
        versions: &[u32],
        bytes: &[u8],
    ) -> Result<T> {
        let (_, s): (u32, Sealed) = crate::state::from_bytes(kind, versions, bytes)?;
        if fnv64(s.payload.as_bytes()) != s.fnv64 {
            return Err(CoreError::State(format!(
                "{kind} state is corrupt (checksum mismatch)"
            )));
        }
        serde_json::from_str(&s.payload)
            .map_err(|e| CoreError::State(format!("{kind} state is malformed: {e}")))
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn every_flipped_bit_is_detected() {
            let v = vec![0.1f64, 2.5, -3.0];
            let b = super::to_bytes("k", 1, &v).unwrap();
            let back: Vec<f64> = super::from_bytes("k", &[1], &b).unwrap();
            assert_eq!(back, v);
            for i in 0..b.len() {
                for bit in 0..8 {
                    let mut c = b.clone();
                    c[i] ^= 1 << bit;
                    let r: crate::error::Result<Vec<f64>> = super::from_bytes("k", &[1], &c);
                    // JSON whitespace-insensitive spots could survive a flip only if the result is
                    // identical; anything else must be an error.
                    if let Ok(x) = r {
                        assert_eq!(x, v, "byte {i} bit {bit}");
                    }
                }
                let t: crate::error::Result<Vec<f64>> = super::from_bytes("k", &[1], &b[..i]);
                assert!(t.is_err());
            }
        }
    }
}
