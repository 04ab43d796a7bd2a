//! A small, fast, non-cryptographic hasher for hash maps on hot paths (the flow table, the
//! server's open log files): the FxHash mixing rustc uses, a rotate, xor and multiply per
//! word, instead of std's SipHash-1-3, which costs several times more per lookup.
//!
//! It is not DoS-resistant: whoever controls the keys can make them collide. That is accepted
//! where it is used: the flow table's keys are the lab PC's own packets, so a student flooding
//! crafted flows only slows their own PC's capture; the server's file map is keyed by clients
//! that have already proved they hold the shared key.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Multiplier of FxHash (from Firefox and rustc): odd, with well-spread bits.
const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// The FxHash state: one word.
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            // The length keeps "a" and "a\0" apart.
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 56));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.add(i as u64);
        self.add((i >> 64) as u64);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// Builds [`FxHasher`]s (for `HashMap::with_hasher` / `default()`).
pub type FxBuildHasher = BuildHasherDefault<FxHasher>;

/// A `HashMap` using [`FxHasher`].
pub type FxHashMap<K, V> = HashMap<K, V, FxBuildHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};
    use std::net::{IpAddr, SocketAddr};

    fn h<T: Hash + ?Sized>(t: &T) -> u64 {
        FxBuildHasher::default().hash_one(t)
    }

    #[test]
    fn equal_keys_hash_equal_and_near_keys_differ() {
        let a: SocketAddr = "10.0.0.1:40000".parse().unwrap();
        let b: SocketAddr = "10.0.0.1:40001".parse().unwrap();
        assert_eq!(h(&a), h(&a.clone()));
        assert_ne!(h(&a), h(&b));
        assert_ne!(h(&"a"), h(&"a\0"));
        assert_ne!(h(&b"abcdefgh"[..]), h(&b"abcdefgi"[..]));
        let v4: IpAddr = "1.2.3.4".parse().unwrap();
        let v6: IpAddr = "::ffff:1.2.3.4".parse().unwrap();
        assert_ne!(h(&v4), h(&v6));
    }

    #[test]
    fn a_map_of_many_ports_works_and_spreads_over_buckets() {
        let mut m: FxHashMap<(u8, SocketAddr, SocketAddr), u32> = FxHashMap::default();
        let dst: SocketAddr = "127.0.0.1:20999".parse().unwrap();
        for p in 0..50_000u16 {
            m.insert(
                (17, SocketAddr::new([127, 0, 0, 1].into(), p), dst),
                u32::from(p),
            );
        }
        assert_eq!(m.len(), 50_000);
        assert_eq!(
            m[&(17, SocketAddr::new([127, 0, 0, 1].into(), 4242), dst)],
            4242
        );
        // The top 7 bits (hashbrown's control byte) take many values for sequential ports.
        let tops: std::collections::HashSet<u64> = (0..1000u16)
            .map(|p| h(&(17u8, SocketAddr::new([127, 0, 0, 1].into(), p), dst)) >> 57)
            .collect();
        assert!(tops.len() > 64, "{}", tops.len());
    }
}
