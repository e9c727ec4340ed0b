//! A stable 64-bit hash of keys, for shards and stickiness.

/// The FNV-1a 64-bit hash of `bytes`.
///
/// It is stable across processes, platforms and Rust versions (unlike `std`'s `DefaultHasher`),
/// so replicas agree on which canary side or shard a key belongs to. It is not keyed: do not
/// use it where clients could choose keys to collide on purpose and the collisions cost more
/// than an uneven spread (a `HashMap` of client keys wants a randomly seeded hasher).
///
/// ```
/// use fluxgate_core::key::fnv1a;
///
/// assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
/// assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
/// ```
#[must_use]
pub fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(PRIME))
}
