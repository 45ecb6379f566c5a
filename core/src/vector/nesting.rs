//! Bounded recursion while decoding recursive types from untrusted bytes.
//!
//! postcard has no recursion limit, so a few kilobytes of hostile input (a payload array nested a
//! million deep, or filters inside filters) would overflow the stack while decoding a command or
//! a snapshot chunk: an abort, not an error. The `Deserialize` impls of [`PayloadValue`] and
//! [`Filter`] count their nesting here and fail with a decode error past their limits. The
//! counter is per thread and always restored, so it carries no state between decodes.
//!
//! [`PayloadValue`]: crate::vector::payload::PayloadValue
//! [`Filter`]: crate::vector::filter::Filter

use std::cell::Cell;

thread_local! {
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Runs `decode` one nesting level deeper, failing instead if that exceeds `limit`.
pub(crate) fn decode_nested<T, E: serde::de::Error>(
    limit: usize,
    what: &str,
    decode: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    let depth = DEPTH.with(|d| {
        d.set(d.get() + 1);
        d.get()
    });
    let result = if depth > limit {
        Err(E::custom(format!("{what} nested deeper than {limit} levels")))
    } else {
        decode()
    };
    DEPTH.with(|d| d.set(d.get() - 1));
    result
}
