//! The `roots` backend's file-system side: walking a saltenv's roots into
//! the four lists (`_file_lists`), the list cache that knows when a walk is
//! stale, and file hashes with their cache.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::warn;

use super::py::{realpath, relpath};
use brine_py::{dirname, join, normpath, Glob};

/// A change is trusted to show in a directory's (or file's) timestamps
/// only when those timestamps are older than the start of the walk by this
/// much: it covers coarse kernel clocks (one tick) and file systems that
/// store whole or even seconds (ext3, FAT).
pub const RACY_MARGIN: Duration = Duration::from_secs(2);

/// How many saltenvs' lists are kept (with `__env__`, minions choose the
/// saltenv, so the cache must not grow with whatever they send).
const MAX_CACHED_ENVS: usize = 64;
/// How many file hashes are kept.
const MAX_CACHED_HASHES: usize = 100_000;

/// `file_ignore_regex` and `file_ignore_glob` (`is_file_ignored`).
pub struct Ignore {
    regexes: Vec<regex::Regex>,
    globs: Vec<Glob>,
}

impl Ignore {
    pub fn new(regexes: &[String], globs: &[String]) -> Ignore {
        let regexes = regexes
            .iter()
            .filter_map(|r| match regex::Regex::new(r) {
                Ok(re) => Some(re),
                Err(e) => {
                    warn!("file_ignore_regex {r:?} cannot be used (not served as ignored): {e}");
                    None
                }
            })
            .collect();
        Ignore {
            regexes,
            globs: globs.iter().map(|g| Glob::new(g)).collect(),
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        self.regexes.iter().any(|r| r.is_match(name)) || self.globs.iter().any(|g| g.matches(name))
    }
}

/// The lists `_file_lists` builds for one saltenv, sorted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Lists {
    pub files: Vec<String>,
    pub dirs: Vec<String>,
    pub empty_dirs: Vec<String>,
    /// Symlink (relative path) → its target as written (`readlink`).
    pub links: Vec<(String, String)>,
}

/// What a path looked like (`stat`, following symlinks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stamp {
    Missing,
    Present {
        dev: u64,
        ino: u64,
        mtime: (i64, i64),
        ctime: (i64, i64),
        dir: bool,
    },
}

impl Stamp {
    fn of(path: &str) -> Stamp {
        if path.contains('\0') {
            return Stamp::Missing;
        }
        match std::fs::metadata(path) {
            Ok(m) => Stamp::Present {
                dev: m.dev(),
                ino: m.ino(),
                mtime: (m.mtime(), m.mtime_nsec()),
                ctime: (m.ctime(), m.ctime_nsec()),
                dir: m.is_dir(),
            },
            Err(_) => Stamp::Missing,
        }
    }

    /// Whether both timestamps are older than `limit` (seconds, nanos).
    fn settled(&self, limit: (i64, i64)) -> bool {
        match self {
            Stamp::Missing => true,
            Stamp::Present { mtime, ctime, .. } => *mtime < limit && *ctime < limit,
        }
    }
}

fn since_epoch(t: SystemTime) -> (i64, i64) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, i64::from(d.subsec_nanos())),
        Err(_) => (0, 0),
    }
}

/// How the walk treats symlinks and ignored names.
pub struct WalkOpts<'a> {
    pub follow: bool,
    pub ignore_symlinks: bool,
    pub ignore: &'a Ignore,
}

/// A directory still to read: its path, its path relative to the root, and
/// the (device, inode) of the directories above it.
type Pending = (String, String, Vec<(u64, u64)>);

/// Walk `roots` as `_file_lists` does (`os.walk(root, followlinks=follow)`),
/// returning the lists and the stamps of every path they depend on: each
/// directory read, and each symlink's target.
fn walk(roots: &[String], o: &WalkOpts) -> (Lists, Vec<(String, Stamp)>) {
    let mut files = BTreeSet::new();
    let mut dirs = BTreeSet::new();
    let mut empty = BTreeSet::new();
    let mut links = BTreeMap::new();
    let mut stamps = Vec::new();
    let mut loops = 0usize;
    let mut undecodable = 0usize;
    for root in roots {
        let real_root = realpath(root);
        let mut todo: Vec<Pending> = vec![(root.clone(), String::new(), Vec::new())];
        while let Some((dir, rel_dir, mut ancestors)) = todo.pop() {
            let stamp = Stamp::of(&dir);
            stamps.push((dir.clone(), stamp));
            if let Stamp::Present { dev, ino, .. } = stamp {
                ancestors.push((dev, ino));
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(name) = entry.file_name().into_string() else {
                    undecodable += 1;
                    continue;
                };
                let Ok(ft) = entry.file_type() else { continue };
                let abs = join(&dir, &name);
                let is_link = ft.is_symlink();
                let target = if is_link { Stamp::of(&abs) } else { Stamp::Missing };
                let is_dir = if is_link {
                    matches!(target, Stamp::Present { dir: true, .. })
                } else {
                    ft.is_dir()
                };
                if is_link {
                    stamps.push((abs.clone(), target));
                }
                let rel = if rel_dir.is_empty() {
                    name.clone()
                } else {
                    format!("{rel_dir}/{name}")
                };
                if is_dir && (o.follow || !is_link) {
                    let id = match target {
                        Stamp::Present { dev, ino, .. } => Some((dev, ino)),
                        _ => entry.metadata().ok().map(|m| (m.dev(), m.ino())),
                    };
                    if id.is_some_and(|id| ancestors.contains(&id)) {
                        loops += 1;
                    } else {
                        todo.push((abs.clone(), rel.clone(), ancestors.clone()));
                    }
                }
                // `_add_to`
                if is_link && o.ignore_symlinks {
                    continue;
                }
                if o.ignore.matches(&rel) {
                    continue;
                }
                if is_dir {
                    dirs.insert(rel.clone());
                } else {
                    files.insert(rel.clone());
                }
                if is_dir && std::fs::read_dir(&abs).is_ok_and(|mut d| d.next().is_none()) {
                    empty.insert(rel.clone());
                }
                if is_link {
                    let dest = match std::fs::read_link(&abs) {
                        Ok(d) => d.to_string_lossy().into_owned(),
                        Err(_) => continue,
                    };
                    // Salt joins a `..` target to the link itself, not to
                    // its directory; kept, since it decides what is listed.
                    let joined = if dest.starts_with("..") {
                        join(&abs, &dest)
                    } else {
                        join(&dirname(&abs), &dest)
                    };
                    let rel_dest = relpath(&realpath(&normpath(&joined)), &real_root);
                    if !rel_dest.starts_with("..") || !o.follow {
                        links.insert(rel, dest);
                    }
                }
            }
        }
    }
    if loops > 0 {
        warn!("file_roots {roots:?}: {loops} symlinked directories loop back to their own parents; not walked again");
    }
    if undecodable > 0 {
        warn!("file_roots {roots:?}: {undecodable} names that are not UTF-8 are not served");
    }
    let lists = Lists {
        files: files.into_iter().collect(),
        dirs: dirs.into_iter().collect(),
        empty_dirs: empty.into_iter().collect(),
        links: links.into_iter().collect(),
    };
    (lists, stamps)
}

struct Snapshot {
    lists: Rc<Lists>,
    stamps: Vec<(String, Stamp)>,
}

/// The file lists per saltenv, reused while nothing they depend on changed.
///
/// A walk records the `stat` of every directory it read and of every
/// symlink target; a later request re-`stat`s those paths (one `stat` per
/// directory, no `readdir`) and walks again if any differs. Adding,
/// removing or renaming an entry changes its directory's mtime, so the next
/// request sees it. A walk during which any of those timestamps was
/// recent (within [`RACY_MARGIN`]) is not kept, because a second change in
/// the same clock tick would leave the timestamps as they were.
#[derive(Default)]
pub struct ListCache {
    entries: HashMap<String, Snapshot>,
    walks: u64,
}

impl ListCache {
    /// How many walks this cache has made.
    pub fn walks(&self) -> u64 {
        self.walks
    }

    /// The lists of the saltenv `key` whose roots are `roots`.
    pub fn get(&mut self, key: &str, roots: &[String], o: &WalkOpts) -> Rc<Lists> {
        if let Some(s) = self.entries.get(key) {
            if s.stamps.iter().all(|(p, st)| Stamp::of(p) == *st) {
                return s.lists.clone();
            }
        }
        let start = SystemTime::now();
        self.walks += 1;
        let (lists, stamps) = walk(roots, o);
        let lists = Rc::new(lists);
        let limit = since_epoch(start.checked_sub(RACY_MARGIN).unwrap_or(UNIX_EPOCH));
        if stamps.iter().all(|(_, s)| s.settled(limit)) {
            if self.entries.len() >= MAX_CACHED_ENVS && !self.entries.contains_key(key) {
                self.entries.clear();
            }
            self.entries.insert(
                key.to_string(),
                Snapshot {
                    lists: lists.clone(),
                    stamps,
                },
            );
        } else {
            self.entries.remove(key);
        }
        lists
    }
}

/// Python's `hashlib` constructors by name, as OpenSSL digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKind {
    Digest(&'static str),
    /// `shake_*`: Python's `hexdigest()` needs a length and raises.
    Shake,
    Unknown,
}

pub fn hash_kind(name: &str) -> HashKind {
    let ossl = match name {
        "md5" => "MD5",
        "sha1" => "SHA1",
        "sha224" => "SHA224",
        "sha256" => "SHA256",
        "sha384" => "SHA384",
        "sha512" => "SHA512",
        "sha3_224" => "SHA3-224",
        "sha3_256" => "SHA3-256",
        "sha3_384" => "SHA3-384",
        "sha3_512" => "SHA3-512",
        "blake2b" => "BLAKE2B-512",
        "blake2s" => "BLAKE2S-256",
        "shake_128" | "shake_256" => return HashKind::Shake,
        _ => return HashKind::Unknown,
    };
    HashKind::Digest(ossl)
}

/// The hex digest of a file (`salt.utils.hashutils.get_hash`).
pub fn hash_file(path: &str, digest: &str) -> std::io::Result<String> {
    let md = openssl::hash::MessageDigest::from_name(digest)
        .ok_or_else(|| std::io::Error::other(format!("OpenSSL has no digest {digest}")))?;
    let mut h = openssl::hash::Hasher::new(md).map_err(std::io::Error::other)?;
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 65536];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]).map_err(std::io::Error::other)?;
    }
    Ok(hex::encode(h.finish().map_err(std::io::Error::other)?))
}

/// A file's identity and timestamps, for the hash cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// Hashes by path, valid while the file's stamp is unchanged (and kept only
/// once its timestamps are older than [`RACY_MARGIN`]).
#[derive(Default)]
pub struct HashCache {
    entries: HashMap<(String, &'static str), (FileStamp, String)>,
}

impl HashCache {
    pub fn hash(&mut self, path: &str, digest: &'static str) -> std::io::Result<String> {
        let stamp = |m: &std::fs::Metadata| FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        };
        let before = stamp(&std::fs::metadata(path)?);
        let key = (path.to_string(), digest);
        if let Some((s, h)) = self.entries.get(&key) {
            if *s == before {
                return Ok(h.clone());
            }
        }
        let start = SystemTime::now();
        let hsum = hash_file(path, digest)?;
        let after = std::fs::metadata(path).map(|m| stamp(&m)).ok();
        let limit = since_epoch(start.checked_sub(RACY_MARGIN).unwrap_or(UNIX_EPOCH));
        if after == Some(before) && before.mtime < limit && before.ctime < limit {
            if self.entries.len() >= MAX_CACHED_HASHES {
                self.entries.clear();
            }
            self.entries.insert(key, (before, hsum.clone()));
        } else {
            self.entries.remove(&key);
        }
        Ok(hsum)
    }
}
