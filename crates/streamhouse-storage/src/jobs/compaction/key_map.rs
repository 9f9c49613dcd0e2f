//! The key map of key compaction: for each key of the part of a partition
//! being compacted, the offset of its latest record, in a fixed amount of
//! memory.
//!
//! Keys are not stored: each is reduced to a 128-bit SipHash-1-3 under a
//! key drawn at random for each map, and a slot holds that hash and an
//! offset (24 bytes), in one open-addressing table allocated once and never
//! grown (Kafka's cleaner does the same with MD5). The random hash key is
//! the collision-safe rule: compaction drops a record only when a record
//! with the same hash has a higher offset, so two keys sharing a hash would
//! lose the older one's value. A producer cannot choose keys that collide
//! under a hash key it never sees, and keys that collide by chance do so
//! with a probability of about n² / 2¹²⁹ for n keys (below 10⁻²⁰ for a
//! billion keys).
//!
//! The table is filled to at most [`LOAD_FACTOR`]; once full, it takes no
//! new keys and the pass that built it compacts only the offsets it covers
//! (the rest waits for the next pass).

use siphasher::sip128::{Hasher128, SipHasher13};

/// Bytes of one slot: the 128-bit hash and the offset.
pub(crate) const SLOT_BYTES: usize = 24;
/// Share of the slots that may be used, so probes stay short.
const LOAD_FACTOR: f64 = 0.9;
/// Fewest slots a map has, however small its budget.
const MIN_SLOTS: usize = 16;

/// A hash that marks an empty slot; real hashes never take it (see
/// [`KeyMap::hash`]).
const EMPTY: u128 = 0;

pub(crate) struct KeyMap {
    hasher: SipHasher13,
    hashes: Vec<u128>,
    offsets: Vec<i64>,
    len: usize,
    max_len: usize,
}

impl KeyMap {
    /// A map that uses at most `budget_bytes` (and at least
    /// [`MIN_SLOTS`] slots), sized down to `expected_keys` when fewer keys
    /// can occur, so a small partition does not allocate the whole budget.
    pub(crate) fn new(budget_bytes: u64, expected_keys: u64) -> Self {
        let budget_slots = usize::try_from(budget_bytes / SLOT_BYTES as u64).unwrap_or(usize::MAX);
        let wanted = usize::try_from(expected_keys)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let wanted_slots = (wanted as f64 / LOAD_FACTOR).ceil() as usize + 1;
        let slots = budget_slots.min(wanted_slots).max(MIN_SLOTS);
        let (k0, k1) = (rand::random::<u64>(), rand::random::<u64>());
        Self {
            hasher: SipHasher13::new_with_keys(k0, k1),
            hashes: vec![EMPTY; slots],
            offsets: vec![0; slots],
            len: 0,
            max_len: ((slots as f64 * LOAD_FACTOR) as usize).clamp(1, slots - 1),
        }
    }

    /// Bytes the table holds.
    pub(crate) fn allocated_bytes(&self) -> usize {
        self.hashes.len() * SLOT_BYTES
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The keyed hash of `key`, never [`EMPTY`].
    pub(crate) fn hash(&self, key: &[u8]) -> u128 {
        let mut hasher = self.hasher;
        std::hash::Hasher::write(&mut hasher, key);
        hasher.finish128().as_u128() | 1
    }

    /// Records `offset` as the latest of the key hashed to `hash`; offsets
    /// are put in increasing order. Returns false, changing nothing, when
    /// the key is new and the map is full.
    pub(crate) fn put(&mut self, hash: u128, offset: i64) -> bool {
        let slot = self.slot(hash);
        if self.hashes[slot] == hash {
            self.offsets[slot] = offset;
            return true;
        }
        if self.len >= self.max_len {
            return false;
        }
        self.hashes[slot] = hash;
        self.offsets[slot] = offset;
        self.len += 1;
        true
    }

    /// The latest offset of the key hashed to `hash`, if the map has it.
    pub(crate) fn get(&self, hash: u128) -> Option<i64> {
        let slot = self.slot(hash);
        (self.hashes[slot] == hash).then(|| self.offsets[slot])
    }

    /// The slot holding `hash`, or the empty slot where it would go. The
    /// table is never full (`max_len < slots`), so the probe ends.
    fn slot(&self, hash: u128) -> usize {
        let slots = self.hashes.len();
        let mut slot = (hash as u64 as usize) % slots;
        loop {
            let found = self.hashes[slot];
            if found == hash || found == EMPTY {
                return slot;
            }
            slot = (slot + 1) % slots;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_offsets_per_key() {
        let mut map = KeyMap::new(1 << 20, 3);
        let (a, b) = (map.hash(b"a"), map.hash(b"b"));
        assert_ne!(a, b);
        assert!(map.put(a, 1) && map.put(b, 2) && map.put(a, 3));
        assert_eq!((map.get(a), map.get(b)), (Some(3), Some(2)));
        assert_eq!(map.get(map.hash(b"c")), None);
        assert_eq!(map.len(), 2);
        // The empty key is a key like any other.
        let empty = map.hash(b"");
        assert!(map.put(empty, 4));
        assert_eq!(map.get(empty), Some(4));
    }

    #[test]
    fn the_map_stays_within_its_budget_and_refuses_new_keys_when_full() {
        let budget = 48 * 1024;
        let mut map = KeyMap::new(budget, 1_000_000);
        assert!(map.allocated_bytes() as u64 <= budget);
        let mut taken = 0;
        for i in 0u32..10_000 {
            if !map.put(map.hash(&i.to_be_bytes()), i64::from(i)) {
                break;
            }
            taken += 1;
        }
        assert!((1500..2048).contains(&taken), "{taken} keys");
        // A full map still updates the keys it has.
        let first = map.hash(&0u32.to_be_bytes());
        assert!(map.put(first, 99_999));
        assert_eq!(map.get(first), Some(99_999));
        assert!(!map.put(map.hash(b"new"), 100_000));
    }

    #[test]
    fn a_small_partition_allocates_little() {
        let map = KeyMap::new(64 << 20, 10);
        assert_eq!(map.allocated_bytes(), MIN_SLOTS * SLOT_BYTES);
    }

    #[test]
    fn hash_keys_differ_between_maps() {
        let (one, two) = (KeyMap::new(1 << 16, 1), KeyMap::new(1 << 16, 1));
        assert_ne!(one.hash(b"key"), two.hash(b"key"));
    }
}
