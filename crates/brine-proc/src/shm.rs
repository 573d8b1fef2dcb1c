//! A small value shared by every process of the tree: an anonymous
//! `MAP_SHARED` mapping created before the first fork (so children inherit
//! it), guarded by a sequence lock. Salt keeps its AES key and publication
//! serial in `multiprocessing` shared memory for the same reason: rotation
//! in one process (Maintenance) is seen at once by all the others, and the
//! secret never touches the disk.
//!
//! One writer at a time is assumed per cell (the process that rotates);
//! readers retry while a write is in progress.

use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{fence, AtomicU64, Ordering};

#[repr(C)]
struct Header {
    seq: AtomicU64,
    counter: AtomicU64,
    len: AtomicU64,
}

/// `len` bytes mapped `MAP_SHARED` with `prot`: of `file`, or zero-filled
/// anonymous memory (what a process maps before forking; its children see
/// and write it too).
fn map_shared(len: usize, prot: libc::c_int, file: Option<&std::fs::File>) -> io::Result<*mut u8> {
    use std::os::fd::AsRawFd;
    let (flags, fd) = match file {
        Some(f) => (libc::MAP_SHARED, f.as_raw_fd()),
        None => (libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1),
    };
    // SAFETY: a shared mapping, checked for failure.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, 0) };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p as *mut u8)
}

const RW: libc::c_int = libc::PROT_READ | libc::PROT_WRITE;

/// A mapping of 64-bit atomics, unmapped on drop.
struct Atomics {
    base: *mut AtomicU64,
    len: usize,
}

impl Atomics {
    fn map(len: usize, prot: libc::c_int, file: Option<&std::fs::File>) -> io::Result<Atomics> {
        let base = map_shared(len * std::mem::size_of::<AtomicU64>(), prot, file)? as *mut AtomicU64;
        Ok(Atomics { base, len })
    }

    /// Atomic `i`, which must be below `len`.
    fn at(&self, i: usize) -> &AtomicU64 {
        debug_assert!(i < self.len);
        // SAFETY: i < len, inside the zero-initialised mapping.
        unsafe { &*self.base.add(i) }
    }
}

impl Drop for Atomics {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping.
        unsafe {
            libc::munmap(
                self.base as *mut libc::c_void,
                self.len * std::mem::size_of::<AtomicU64>(),
            )
        };
    }
}

/// Shared bytes (up to `capacity`) plus a shared counter.
pub struct SharedCell {
    base: *mut u8,
    capacity: usize,
    map_len: usize,
}

// SAFETY: all access goes through atomics and the seqlock protocol.
unsafe impl Send for SharedCell {}
unsafe impl Sync for SharedCell {}

impl SharedCell {
    /// Map a new cell; create it before forking the processes that share it.
    pub fn new(capacity: usize) -> io::Result<SharedCell> {
        let map_len = std::mem::size_of::<Header>() + capacity;
        Ok(SharedCell {
            base: map_shared(map_len, RW, None)?,
            capacity,
            map_len,
        })
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping starts with a zero-initialised Header.
        unsafe { &*(self.base as *const Header) }
    }

    fn data(&self) -> *mut u8 {
        // SAFETY: inside the mapping.
        unsafe { self.base.add(std::mem::size_of::<Header>()) }
    }

    /// Replace the bytes and reset the counter to `counter`.
    pub fn store(&self, bytes: &[u8], counter: u64) -> io::Result<()> {
        if bytes.len() > self.capacity {
            return Err(io::Error::other("value larger than the shared cell"));
        }
        let h = self.header();
        let s = h.seq.fetch_add(1, Ordering::AcqRel); // odd: write in progress
        debug_assert!(s.is_multiple_of(2));
        fence(Ordering::Release);
        // SAFETY: capacity checked; readers discard torn reads via seq.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.data(), bytes.len()) };
        h.len.store(bytes.len() as u64, Ordering::Relaxed);
        h.counter.store(counter, Ordering::Relaxed);
        fence(Ordering::Release);
        h.seq.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// A consistent copy of the bytes, and the write generation (changes
    /// on every store, so callers can cache what they derive from it).
    pub fn load(&self) -> (Vec<u8>, u64) {
        let h = self.header();
        loop {
            let s1 = h.seq.load(Ordering::Acquire);
            if !s1.is_multiple_of(2) {
                std::hint::spin_loop();
                continue;
            }
            let len = (h.len.load(Ordering::Relaxed) as usize).min(self.capacity);
            let mut out = vec![0u8; len];
            // SAFETY: len <= capacity; a torn copy is detected below.
            unsafe { std::ptr::copy_nonoverlapping(self.data(), out.as_mut_ptr(), len) };
            fence(Ordering::Acquire);
            if h.seq.load(Ordering::Acquire) == s1 {
                return (out, s1);
            }
        }
    }

    /// The write generation alone (cheap check before [`SharedCell::load`]).
    pub fn generation(&self) -> u64 {
        self.header().seq.load(Ordering::Acquire)
    }

    /// Atomically add one to the shared counter and return the new value
    /// (Salt's publication serial).
    pub fn next_counter(&self) -> u64 {
        self.header().counter.fetch_add(1, Ordering::AcqRel) + 1
    }
}

impl Drop for SharedCell {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.map_len) };
    }
}

/// Counters shared by every process of the tree (a `MAP_SHARED` mapping
/// of atomics, anonymous or of a file other programs can read, made before
/// the first fork): each process adds to its own, any may read them all.
pub struct SharedCounters(Atomics);

// SAFETY: every access is an atomic operation on the mapping.
unsafe impl Send for SharedCounters {}
unsafe impl Sync for SharedCounters {}

impl SharedCounters {
    /// `len` counters, all 0; map it before forking the processes that
    /// share it.
    pub fn new(len: usize) -> io::Result<SharedCounters> {
        Ok(SharedCounters(Atomics::map(len.max(1), RW, None)?))
    }

    /// `len` counters, all 0, in the file at `path` (created, or emptied
    /// if it exists; mode 0600), mapped shared: the processes forked after
    /// this share them as with [`SharedCounters::new`], and another
    /// program can read them with [`CountersView::open`].
    pub fn create_file(path: &Path, len: usize) -> io::Result<SharedCounters> {
        let len = len.max(1);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        file.set_len((len * std::mem::size_of::<AtomicU64>()) as u64)?;
        Ok(SharedCounters(Atomics::map(len, RW, Some(&file))?))
    }

    /// Counter `i` (out-of-range indexes read and write a scratch slot: a
    /// miscounted statistic, never memory outside the mapping).
    pub fn get(&self, i: usize) -> &AtomicU64 {
        self.0.at(i.min(self.0.len - 1))
    }

    pub fn len(&self) -> usize {
        self.0.len
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

/// A read-only view of counters another process keeps in a file
/// ([`SharedCounters::create_file`]).
pub struct CountersView(Atomics);

// SAFETY: every access is an atomic load from the mapping.
unsafe impl Send for CountersView {}
unsafe impl Sync for CountersView {}

impl CountersView {
    /// Map the file at `path` read only (its size says how many counters).
    pub fn open(path: &Path) -> io::Result<CountersView> {
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len() as usize / std::mem::size_of::<AtomicU64>();
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "empty counters file"));
        }
        Ok(CountersView(Atomics::map(len, libc::PROT_READ, Some(&file))?))
    }

    /// Counter `i`, 0 past the end (loads only: the mapping is read only).
    pub fn load(&self, i: usize) -> u64 {
        if i >= self.0.len {
            return 0;
        }
        self.0.at(i).load(Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.0.len
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_shared_across_fork() {
        let c = SharedCounters::new(4).unwrap();
        // SAFETY: the child only touches atomics and exits.
        match unsafe { libc::fork() } {
            0 => {
                c.get(1).fetch_add(5, Ordering::Relaxed);
                unsafe { libc::_exit(0) };
            }
            pid => {
                let mut status = 0;
                unsafe { libc::waitpid(pid, &mut status, 0) };
            }
        }
        assert_eq!(c.get(1).load(Ordering::Relaxed), 5);
        c.get(99).store(7, Ordering::Relaxed);
        assert_eq!(c.get(3).load(Ordering::Relaxed), 7, "past the end: the last slot");
    }

    #[test]
    fn file_counters_are_seen_by_a_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        let c = SharedCounters::create_file(&path, 3).unwrap();
        c.get(2).store(42, Ordering::Relaxed);
        let v = CountersView::open(&path).unwrap();
        assert_eq!((v.len(), v.load(2), v.load(9)), (3, 42, 0));
        c.get(0).fetch_add(1, Ordering::Relaxed);
        assert_eq!(v.load(0), 1, "the view follows the writer");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        // Made again (a new master): emptied.
        let c2 = SharedCounters::create_file(&path, 3).unwrap();
        assert_eq!(c2.get(2).load(Ordering::Relaxed), 0);
    }

    #[test]
    fn store_load_and_counter() {
        let c = SharedCell::new(128).unwrap();
        assert_eq!(c.load().0, Vec::<u8>::new());
        let g0 = c.generation();
        c.store(b"key-one", 0).unwrap();
        let (v, g1) = c.load();
        assert_eq!(v, b"key-one");
        assert_ne!(g0, g1);
        assert_eq!(c.next_counter(), 1);
        assert_eq!(c.next_counter(), 2);
        c.store(b"k2", 0).unwrap();
        assert_eq!(c.next_counter(), 1, "store resets the counter");
        assert!(c.store(&[0u8; 129], 0).is_err());
    }

    #[test]
    fn shared_across_fork() {
        let c = SharedCell::new(64).unwrap();
        c.store(b"before", 0).unwrap();
        // SAFETY: the child only touches the mapping (no allocation: the
        // test harness is multi-threaded) and _exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let ok = c.store(b"from child", 7).is_ok();
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let st = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(st, nix::sys::wait::WaitStatus::Exited(child, 0));
                assert_eq!(c.load().0, b"from child");
                assert_eq!(c.next_counter(), 8);
            }
        }
    }
}
