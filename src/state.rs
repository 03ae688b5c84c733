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
