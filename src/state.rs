//! Versioned, serde-based state for pickle and save/load.
//!
//! The envelope is JSON: `{"kind": "...", "version": N, "data": ...}`. Reading checks the kind and
//! rejects versions this build does not know with a clear error; corrupt or truncated bytes give
//! `CoreError::State`, never a panic. f64 values round-trip exactly (serde_json `float_roundtrip`).

use crate::error::{CoreError, Result};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

#[derive(Serialize)]
struct EnvelopeOut<'a, T: Serialize> {
    kind: &'a str,
    version: u32,
    data: &'a T,
}

#[derive(Deserialize)]
struct EnvelopeIn {
    kind: String,
    version: u32,
    data: serde_json::Value,
}

pub fn to_bytes<T: Serialize>(kind: &str, version: u32, data: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(&EnvelopeOut {
        kind,
        version,
        data,
    })
    .map_err(|e| CoreError::State(format!("cannot serialise {kind}: {e}")))
}

/// Reads state written by [`to_bytes`] for `kind`, accepting format versions in `versions`.
/// Returns the version found and the data, so a reader can migrate older versions.
pub fn from_bytes<T: DeserializeOwned>(
    kind: &str,
    versions: &[u32],
    bytes: &[u8],
) -> Result<(u32, T)> {
    let env: EnvelopeIn = serde_json::from_slice(bytes).map_err(|e| {
        CoreError::State(format!(
            "not a valid growthmachine {kind} state (corrupt or truncated): {e}"
        ))
    })?;
    if env.kind != kind {
        return Err(CoreError::State(format!(
            "expected a {kind} state, found a {} state",
            env.kind
        )));
    }
    if !versions.contains(&env.version) {
        return Err(CoreError::State(format!(
            "{kind} state has format version {}, this build reads versions {versions:?}; \
             upgrade growthmachine to read it",
            env.version
        )));
    }
    let data = serde_json::from_value(env.data)
        .map_err(|e| CoreError::State(format!("{kind} state is malformed: {e}")))?;
    Ok((env.version, data))
}

/// Versioned state with a checksum: the envelope of this module holding the JSON payload as
/// a string plus its 64-bit FNV-1a hash, so that a flipped bit anywhere gives `CoreError::State`
/// instead of silently different numbers.
pub mod sealed {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct S {
        x: Vec<f64>,
        n: u64,
    }

    #[test]
    fn round_trip_exact_and_errors() {
        let s = S {
            x: vec![0.1, 1.0 / 3.0, -2.5e-300, 1e300],
            n: 7,
        };
        let b = to_bytes("S", 1, &s).unwrap();
        let (v, back): (u32, S) = from_bytes("S", &[1], &b).unwrap();
        assert_eq!(v, 1);
        assert_eq!(back, s);
        assert!(matches!(
            from_bytes::<S>("S", &[2], &b),
            Err(CoreError::State(m)) if m.contains("format version 1")
        ));
        assert!(matches!(
            from_bytes::<S>("T", &[1], &b),
            Err(CoreError::State(_))
        ));
        assert!(matches!(
            from_bytes::<S>("S", &[1], &b[..b.len() / 2]),
            Err(CoreError::State(m)) if m.contains("corrupt or truncated")
        ));
    }
}
