//! Which shard of a collection holds a point: a fixed, documented function of the point id, so
//! every node routes every request the same way without asking anyone.
//!
//! `shard_of(id, n)` = jump consistent hash (Lamping & Veach, 2014) of a 64-bit key taken from
//! blake3 over a domain tag and the id's canonical bytes (`0x00 ++ u64 LE` for numbers,
//! `0x01 ++ u128 BE` for UUIDs). blake3 spreads sequential ids evenly; jump hash moves only
//! `1/(n+1)` of the points when a collection grows from `n` to `n + 1` shards, which is what online
//! resharding wants. The function is frozen by golden values in the tests: changing it would
//! strand every stored point on the wrong shard.

use crate::vector::point::PointId;

/// A shard's number within its collection, `0..shard_count`.
pub type ShardId = u32;

/// Largest shard count a collection may have.
pub const MAX_SHARDS: u32 = 1 << 16;

/// The routing key of a point: the first 8 bytes (LE) of blake3("vecraft/shard-key/v1" ++ id).
pub fn shard_key(id: PointId) -> u64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"vecraft/shard-key/v1");
    match id {
        PointId::Num(n) => {
            hasher.update(&[0]);
            hasher.update(&n.to_le_bytes());
        }
        PointId::Uuid(u) => {
            hasher.update(&[1]);
            hasher.update(&u.to_be_bytes());
        }
    }
    let bytes = hasher.finalize();
    u64::from_le_bytes(bytes.as_bytes()[..8].try_into().expect("8 bytes"))
}

/// Jump consistent hash: a bucket in `0..buckets` (`buckets >= 1`).
pub fn jump_hash(mut key: u64, buckets: u32) -> u32 {
    debug_assert!(buckets >= 1);
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < buckets as i64 {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as u32
}

/// The shard of `shard_count` (clamped to `1..=MAX_SHARDS`) that holds `id`.
pub fn shard_of(id: PointId, shard_count: u32) -> ShardId {
    jump_hash(shard_key(id), shard_count.clamp(1, MAX_SHARDS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_values_never_change() {
        // Frozen: a change here means stored points would be looked for on the wrong shard.
        let got: Vec<u32> = (0..12u64).map(|i| shard_of(PointId::Num(i), 4)).collect();
        assert_eq!(got, GOLDEN_NUM_4);
        let uuid = PointId::Uuid(0x936d_a01f_9abd_4d9d_80c7_02af_85c8_22a8);
        assert_eq!((shard_of(uuid, 3), shard_of(uuid, 16)), GOLDEN_UUID);
        assert_eq!(shard_of(PointId::Num(7), 1), 0);
        assert_eq!(shard_of(PointId::Num(7), 0), 0, "clamped to one shard");
    }

    const GOLDEN_NUM_4: [u32; 12] = [3, 3, 2, 3, 3, 3, 2, 1, 3, 3, 3, 1];
    const GOLDEN_UUID: (u32, u32) = (0, 0);

    #[test]
    fn spread_is_even_and_growth_moves_few_points() {
        let n = 20_000u64;
        for shards in [2u32, 3, 8] {
            let mut counts = vec![0u64; shards as usize];
            for i in 0..n {
                counts[shard_of(PointId::Num(i), shards) as usize] += 1;
            }
            let ideal = n / shards as u64;
            for c in &counts {
                assert!(c.abs_diff(ideal) * 100 <= ideal * 5, "{shards} shards: {counts:?}");
            }
        }
        // From 4 to 5 shards about 1/5 of the points move, and only to the new shard.
        let mut moved = 0;
        for i in 0..n {
            let (before, after) = (shard_of(PointId::Num(i), 4), shard_of(PointId::Num(i), 5));
            if before != after {
                assert_eq!(after, 4, "a point only ever moves to the new shard");
                moved += 1;
            }
        }
        assert!((moved as f64 / n as f64 - 0.2).abs() < 0.02, "moved {moved}");
    }
}
