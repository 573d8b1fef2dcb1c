//! The `tok`s the MWorkers have verified, shared by all of them.
//!
//! A v3 request carries `tok`: the minion's RSA private-key operation on
//! `"salt"` (X9.31), which the master checks with the key in
//! `pki_dir/minions/<id>` — a PEM parse and an RSA operation, ~100 µs. The
//! `tok` is the same for every request of a minion while its key stays the
//! same, so once one MWorker has verified it no MWorker needs to again:
//! without sharing, each of N MWorkers verifies each minion once, and
//! after a restart a busy master spends N RSA operations per minion.
//!
//! The table lives in an anonymous `MAP_SHARED` mapping made by
//! ReqServer_ProcessManager before it forks the MWorkers (only the
//! master's own processes can reach it). A slot holds a hash of the
//! minion id, the key file's [`KeyStamp`] when the `tok` was verified, a
//! digest of the `tok`, and a check word over them; slots are written
//! without locks, so a read that races a write sees a check that does not
//! match and counts as a miss (the `tok` is verified again). A minion whose
//! key file changes gets another stamp and is verified again.

use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering::{Acquire, Release};

use brine_keys::KeyStamp;
use brine_proc::shm::SharedCounters;

/// Words per slot: check, id hash, stamp (4), tok digest (2).
const WORDS: usize = 8;
/// Slots per set: a minion's entry may sit in any slot of the set its id
/// hash picks, so that minions whose hashes meet in a set do not keep
/// evicting each other (with one slot a set, 10,000 minions in 65,536
/// slots would leave about 1,500 of them doing so).
const WAYS: usize = 4;
/// Slots in all: 4 MiB of address space, of which only the pages minions
/// land on become resident.
pub const SLOTS: usize = 65_536;

pub struct VerifiedToks {
    words: SharedCounters,
    sets: usize,
}

impl VerifiedToks {
    /// Map the table (before forking the MWorkers that share it).
    pub fn new(slots: usize) -> std::io::Result<VerifiedToks> {
        let sets = slots.div_ceil(WAYS).max(1);
        Ok(VerifiedToks {
            words: SharedCounters::new(sets * WAYS * WORDS)?,
            sets,
        })
    }

    /// Whether `tok` was verified for `id` against the key whose stamp is
    /// `stamp`.
    pub fn contains(&self, id: &str, stamp: KeyStamp, tok: &[u8]) -> bool {
        let want = entry(id, stamp, tok);
        self.set(want[1]).any(|base| self.read(base) == want)
    }

    /// Record that `tok` was verified for `id` against `stamp`'s key.
    pub fn insert(&self, id: &str, stamp: KeyStamp, tok: &[u8]) {
        self.write(entry(id, stamp, tok));
    }

    /// The slot for `e`: the one its minion has (a key or tok replaced),
    /// else an empty one, else one picked by the entry's check word.
    fn write(&self, e: [u64; WORDS]) {
        let slots: Vec<usize> = self.set(e[1]).collect();
        let word = |base: usize, i: usize| self.words.get(base + i).load(Acquire);
        let base = slots
            .iter()
            .copied()
            .find(|b| word(*b, 1) == e[1] && word(*b, 0) != 0)
            .or_else(|| slots.iter().copied().find(|b| word(*b, 0) == 0))
            .unwrap_or(slots[(e[0] % WAYS as u64) as usize]);
        // The check word first cleared and written last: a reader between
        // the two sees a mismatch, never a half-written entry that passes.
        self.words.get(base).store(0, Release);
        for (i, w) in e.iter().enumerate().skip(1) {
            self.words.get(base + i).store(*w, Release);
        }
        self.words.get(base).store(e[0], Release);
    }

    fn read(&self, base: usize) -> [u64; WORDS] {
        let mut got = [0u64; WORDS];
        for (i, w) in got.iter_mut().enumerate() {
            *w = self.words.get(base + i).load(Acquire);
        }
        got
    }

    /// The first word of each slot of the set of `id_hash`.
    fn set(&self, id_hash: u64) -> impl Iterator<Item = usize> {
        let first = (id_hash % self.sets as u64) as usize * WAYS;
        (first..first + WAYS).map(|slot| slot * WORDS)
    }
}

/// A slot's words for `id`, `stamp` and `tok`; the check word (never 0,
/// the value of an empty slot) covers the others.
fn entry(id: &str, stamp: KeyStamp, tok: &[u8]) -> [u64; WORDS] {
    let d = openssl::sha::sha256(tok);
    let w = |i: usize| u64::from_be_bytes(d[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    let mut e = [0u64; WORDS];
    e[1] = hash(&id);
    e[2..6].copy_from_slice(&stamp.words());
    e[6] = w(0);
    e[7] = w(1);
    e[0] = hash(&e[1..]) | 1;
    e
}

/// SipHash with fixed keys: the same in every process.
fn hash<T: Hash + ?Sized>(v: &T) -> u64 {
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    v.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(pem: &str) -> KeyStamp {
        KeyStamp::of_content(pem)
    }

    #[test]
    fn a_verified_tok_is_found_for_its_minion_and_key_only() {
        let t = VerifiedToks::new(SLOTS).unwrap();
        let (k1, k2) = (stamp("key one"), stamp("key two"));
        assert!(!t.contains("m1", k1, b"tok"));
        t.insert("m1", k1, b"tok");
        assert!(t.contains("m1", k1, b"tok"));
        assert!(!t.contains("m1", k1, b"other tok"));
        assert!(!t.contains("m1", k2, b"tok"), "the key changed: verify again");
        assert!(!t.contains("m2", k1, b"tok"));
    }

    /// Minions meeting in one set share its slots; past its size, one
    /// is evicted and verified again (a miss, never a wrong hit). A
    /// minion verified again (its key replaced) keeps its one slot.
    #[test]
    fn a_set_holds_four_minions() {
        let t = VerifiedToks::new(1).unwrap();
        let k = stamp("k");
        for i in 0..4 {
            t.insert(&format!("m{i}"), k, b"t");
        }
        for round in 0..3 {
            t.insert("m0", stamp(&format!("key {round}")), b"t");
        }
        assert!(t.contains("m0", stamp("key 2"), b"t"));
        assert!(
            (1..4).all(|i| t.contains(&format!("m{i}"), k, b"t")),
            "m0 took no other slot"
        );
        assert!(!t.contains("m1", k, b"other"));
        t.insert("m4", k, b"t");
        let held = (0..5).filter(|i| t.contains(&format!("m{i}"), if *i == 0 { stamp("key 2") } else { k }, b"t"));
        assert_eq!(held.count(), 4);
    }

    /// A slot seen half written (its check word not matching the rest)
    /// is a miss.
    #[test]
    fn a_torn_slot_is_a_miss() {
        let t = VerifiedToks::new(1).unwrap();
        let k = stamp("k");
        t.insert("m1", k, b"t1");
        for slot in 0..WAYS {
            t.words.get(slot * WORDS + 7).store(12345, Release);
        }
        assert!(!t.contains("m1", k, b"t1"));
    }

    /// Written in one process, read in another: the mapping is shared
    /// across fork.
    #[test]
    fn shared_with_a_forked_child() {
        let t = VerifiedToks::new(SLOTS).unwrap();
        let k = stamp("k");
        let e = entry("forked", k, b"tok");
        // SAFETY: the child only stores to the mapping and exits (nothing
        // that could wait on a lock another thread of the test held).
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            t.write(e);
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(t.contains("forked", k, b"tok"));
    }
}
