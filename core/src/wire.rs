//! Versioned, checksum-free wire framing for protocol messages (serde + postcard).
//!
//! Every encoded message starts with a one-byte format version so that mixed-version clusters can
//! refuse what they do not understand instead of misreading it. Decoding never panics: bytes from
//! the network are untrusted. Integrity against corruption is the transport's job (TCP, or the
//! storage layer's checksums); this layer only rejects what is malformed.

use serde::{Serialize, de::DeserializeOwned};
use thiserror::Error;

/// The current wire format version written by this build.
pub const WIRE_VERSION: u8 = 1;

/// Why bytes could not be turned into a message.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    /// Zero bytes: not even a version.
    #[error("empty message: missing version byte")]
    Empty,
    /// A version this build does not speak.
    #[error("unsupported wire version {found} (this build speaks {expected})")]
    UnsupportedVersion { found: u8, expected: u8 },
    /// The body did not decode as the expected type.
    #[error("malformed message body: {0}")]
    Malformed(String),
    /// The body decoded but bytes were left over, which means the sender and receiver disagree on
    /// the type.
    #[error("{0} trailing bytes after message body")]
    TrailingBytes(usize),
    /// Encoding failed (only possible for types serde cannot represent in postcard).
    #[error("cannot encode message: {0}")]
    Encode(String),
}

/// Encodes `msg` as `[WIRE_VERSION] ++ postcard(msg)`.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, WireError> {
    let mut out = vec![WIRE_VERSION];
    let body = postcard::to_stdvec(msg).map_err(|e| WireError::Encode(e.to_string()))?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes bytes produced by [`encode`], rejecting other versions, malformed bodies and trailing
/// garbage.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    let (&version, body) = bytes.split_first().ok_or(WireError::Empty)?;
    if version != WIRE_VERSION {
        return Err(WireError::UnsupportedVersion { found: version, expected: WIRE_VERSION });
    }
    let (value, rest) =
        postcard::take_from_bytes::<T>(body).map_err(|e| WireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_version_check() {
        let msg: (u64, String) = (7, "hello".into());
        let bytes = encode(&msg).unwrap();
        assert_eq!(bytes[0], WIRE_VERSION);
        assert_eq!(decode::<(u64, String)>(&bytes).unwrap(), msg);
        let mut wrong = bytes.clone();
        wrong[0] = 99;
        assert_eq!(
            decode::<(u64, String)>(&wrong),
            Err(WireError::UnsupportedVersion { found: 99, expected: WIRE_VERSION })
        );
        assert_eq!(decode::<u64>(&[]), Err(WireError::Empty));
        let mut trailing = bytes;
        trailing.push(0);
        assert_eq!(decode::<(u64, String)>(&trailing), Err(WireError::TrailingBytes(1)));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<(u64, Vec<String>, Option<bool>)>(&bytes);
        }
    }
}
