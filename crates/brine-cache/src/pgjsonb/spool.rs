//! The spool: writes for PostgreSQL that could not be made (the database
//! is down, slow, or the process's queue is full) kept on local disk until
//! they can be.
//!
//! Each process that writes has one file of its own,
//! `<cachedir>/pgjsonb/spool/<pid>.jsonl`, one record per line, appended
//! and held under an exclusive `flock` for as long as the process lives.
//! A file whose lock can be taken belongs to a process that is gone (an
//! MWorker that was replaced, a master that was stopped or killed): any
//! writer that reaches the database takes it over, replays it and removes
//! it. A line cut short by a crash is the last one of its file and is
//! skipped with a warning. Records are written without fsync, as Salt's
//! local_cache writes its files: they survive the master, not the machine.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use log::warn;
use serde::{Deserialize, Serialize};

use crate::CacheError;

/// One write for the database. JSON documents are kept as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t")]
pub enum Rec {
    /// A row of `jids`: the publication's load (`replace`: it wins over a
    /// row already there) or the load of a job a minion ran on its own.
    #[serde(rename = "load")]
    Load { jid: String, load: String, replace: bool },
    /// A row of `salt_returns`; `time` is when the master received it
    /// (unix seconds), its `alter_time`.
    #[serde(rename = "ret")]
    Return {
        fun: String,
        jid: String,
        id: String,
        success: String,
        ret: String,
        full: String,
        time: f64,
    },
    /// A row of `salt_events`.
    #[serde(rename = "event")]
    Event {
        tag: String,
        data: String,
        master: String,
        time: f64,
    },
}

/// The spool directory under `cachedir`.
pub fn dir(cachedir: &Path) -> PathBuf {
    cachedir.join("pgjsonb").join("spool")
}

/// This process's spool file, opened on first use.
pub struct Spool {
    dir: PathBuf,
    own: Mutex<Option<Own>>,
}

struct Own {
    path: PathBuf,
    file: File,
    /// Bytes of the file already replayed.
    done: u64,
    /// Bytes written (the file's length).
    len: u64,
}

fn lock(file: &File) -> bool {
    // SAFETY: flock on a descriptor this process owns.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

impl Spool {
    pub fn new(cachedir: &Path) -> Spool {
        Spool {
            dir: dir(cachedir),
            own: Mutex::new(None),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Append `recs` to this process's file.
    pub fn append(&self, recs: &[Rec]) -> Result<(), CacheError> {
        if recs.is_empty() {
            return Ok(());
        }
        let mut text = Vec::with_capacity(recs.len() * 256);
        for r in recs {
            serde_json::to_writer(&mut text, r).map_err(|e| CacheError::Backend(format!("pgjsonb spool: {e}")))?;
            text.push(b'\n');
        }
        let mut guard = self.own.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(self.open_own()?);
        }
        let own = guard.as_mut().expect("opened above");
        own.file.write_all(&text).map_err(CacheError::write(&own.path))?;
        own.len += text.len() as u64;
        Ok(())
    }

    fn open_own(&self) -> Result<Own, CacheError> {
        std::fs::create_dir_all(&self.dir).map_err(CacheError::write(&self.dir))?;
        let path = self.dir.join(format!("{}.jsonl", std::process::id()));
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(CacheError::write(&path))?;
        if !lock(&file) {
            return Err(CacheError::file(&path, "locked by another process"));
        }
        // A file left by a gone process with this pid is taken over, from
        // where its replay had come to.
        let len = file.seek(SeekFrom::End(0)).map_err(CacheError::write(&path))?;
        let done = read_done(&path).min(len);
        Ok(Own { path, file, done, len })
    }

    /// Records of this process not replayed yet.
    pub fn pending(&self) -> bool {
        let guard = self.own.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().is_some_and(|o| o.done < o.len)
    }

    /// Replay this process's records, up to `batch` at a time, through
    /// `write`; a batch is taken as done only when `write` succeeds. When
    /// everything is replayed the file is emptied. Returns the records
    /// replayed, or the first error of `write` (the rest stays spooled).
    pub fn replay_own<E>(&self, batch: usize, mut write: impl FnMut(Vec<Rec>) -> Result<(), E>) -> Result<usize, E> {
        let mut replayed = 0;
        loop {
            let (path, from, len) = {
                let mut guard = self.own.lock().unwrap_or_else(|p| p.into_inner());
                let Some(own) = guard.as_mut() else {
                    return Ok(replayed);
                };
                if own.done >= own.len {
                    // Emptied under the lock appends take: nothing written
                    // between the last read and this is lost.
                    if own.len > 0 && own.file.set_len(0).is_ok() {
                        own.done = 0;
                        own.len = 0;
                        let _ = std::fs::remove_file(done_path(&own.path));
                    }
                    return Ok(replayed);
                }
                (own.path.clone(), own.done, own.len)
            };
            // Only what was appended whole by now: an append under way
            // past `len` is read on the next round.
            let (recs, upto) = read_from(&path, from, batch, Some(len));
            let n = recs.len();
            if n > 0 {
                write(recs)?;
            }
            replayed += n;
            let mut guard = self.own.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(own) = guard.as_mut() {
                // Past what was read (skipped lines too); a file that could
                // not be read at all is given up up to the snapshot.
                own.done = if upto > from { upto } else { len };
                mark_done(&own.path, own.done);
            }
        }
    }

    /// Replay the files of processes that are gone, each through `write`
    /// in batches, and remove them. Returns the records replayed, or the
    /// first error (that file stays, from the batch that failed on: a
    /// batch is written again whole, which the writes allow).
    pub fn replay_orphans<E>(
        &self,
        batch: usize,
        mut write: impl FnMut(Vec<Rec>) -> Result<(), E>,
    ) -> Result<usize, E> {
        let own = self
            .own
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|o| o.path.clone());
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Ok(0);
        };
        let mut replayed = 0;
        for e in entries.flatten() {
            let path = e.path();
            if Some(&path) == own.as_ref() || path.extension().and_then(|x| x.to_str()) != Some("jsonl") {
                if path.extension().and_then(|x| x.to_str()) == Some("done") && !path.with_extension("jsonl").exists() {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            let Ok(file) = OpenOptions::new().read(true).write(true).open(&path) else {
                continue;
            };
            if !lock(&file) {
                continue;
            }
            let mut from = read_done(&path);
            loop {
                let (recs, upto) = read_from(&path, from, batch, None);
                if recs.is_empty() {
                    break;
                }
                replayed += recs.len();
                write(recs)?;
                from = upto;
                mark_done(&path, from);
            }
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_file(done_path(&path));
        }
        Ok(replayed)
    }
}

/// `<name>.done`: how far a replay of `<name>.jsonl` has come, so that a
/// replay cut short (the database gone again, the process killed) goes on
/// from there and writes no event twice.
fn done_path(path: &Path) -> PathBuf {
    path.with_extension("done")
}

fn read_done(path: &Path) -> u64 {
    std::fs::read_to_string(done_path(path))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn mark_done(path: &Path, offset: u64) {
    let _ = crate::fs::write_atomic(&done_path(path), offset.to_string().as_bytes(), 0o600);
}

/// Up to `max` records of `path` from byte `from` (and before byte `end`
/// when given), and the offset after them. A line that does not parse is
/// skipped with a warning.
fn read_from(path: &Path, from: u64, max: usize, end: Option<u64>) -> (Vec<Rec>, u64) {
    let mut recs = Vec::new();
    let Ok(mut f) = File::open(path) else {
        return (recs, from);
    };
    if f.seek(SeekFrom::Start(from)).is_err() {
        return (recs, from);
    }
    let mut r = BufReader::new(f);
    let mut at = from;
    let mut line = Vec::new();
    while recs.len() < max && end.is_none_or(|e| at < e) {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if line.last() != Some(&b'\n') {
                    // Cut short by a crash (or still being written by a
                    // process that is gone): the last line, skipped.
                    warn!("{}: an unfinished last record ({n} bytes) skipped", path.display());
                    at += n as u64;
                    break;
                }
                at += n as u64;
                match serde_json::from_slice::<Rec>(&line) {
                    Ok(rec) => recs.push(rec),
                    Err(e) => warn!("{}: a record that does not parse skipped: {e}", path.display()),
                }
            }
        }
    }
    (recs, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ret(n: usize) -> Rec {
        Rec::Return {
            fun: "test.ping".into(),
            jid: "20261207000000000000".into(),
            id: format!("m{n}"),
            success: "true".into(),
            ret: "true".into(),
            full: "{}".into(),
            time: 1.5,
        }
    }

    #[test]
    fn replays_in_order_and_empties_the_file() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::new(d.path());
        s.append(&(0..5).map(ret).collect::<Vec<_>>()).unwrap();
        assert!(s.pending());
        let mut seen = Vec::new();
        // The first batch fails: nothing is taken as done.
        assert!(s.replay_own(2, |_| Err::<(), ()>(())).is_err());
        let n = s
            .replay_own(2, |b| {
                seen.extend(b);
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_eq!(n, 5);
        assert_eq!(seen, (0..5).map(ret).collect::<Vec<_>>());
        assert!(!s.pending());
        let file = dir(d.path()).join(format!("{}.jsonl", std::process::id()));
        assert_eq!(std::fs::metadata(file).unwrap().len(), 0);
    }

    #[test]
    fn appends_during_a_replay_are_replayed_once() {
        let d = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(Spool::new(d.path()));
        s.append(&[ret(0)]).unwrap();
        let writer = {
            let s = std::sync::Arc::clone(&s);
            std::thread::spawn(move || {
                for i in 1..2000 {
                    s.append(&[ret(i)]).unwrap();
                }
            })
        };
        let mut seen = Vec::new();
        while !writer.is_finished() || s.pending() {
            s.replay_own(7, |b| {
                seen.extend(b);
                Ok::<(), ()>(())
            })
            .unwrap();
        }
        writer.join().unwrap();
        s.replay_own(7, |b| {
            seen.extend(b);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(seen, (0..2000).map(ret).collect::<Vec<_>>());
    }

    #[test]
    fn a_gone_process_file_is_replayed_and_removed_a_cut_line_skipped() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir(d.path())).unwrap();
        let orphan = dir(d.path()).join("999999.jsonl");
        let mut text = String::new();
        for i in 0..3 {
            text.push_str(&serde_json::to_string(&ret(i)).unwrap());
            text.push('\n');
        }
        text.push_str("{\"t\":\"ret\",\"fun\":");
        std::fs::write(&orphan, text).unwrap();
        let s = Spool::new(d.path());
        let mut seen = Vec::new();
        let n = s
            .replay_orphans(2, |b| {
                seen.extend(b);
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_eq!(n, 3);
        assert_eq!(seen.len(), 3);
        assert!(!orphan.exists());
    }

    #[test]
    fn a_live_process_file_is_left_alone() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir(d.path())).unwrap();
        let other = dir(d.path()).join("1.jsonl");
        std::fs::write(&other, serde_json::to_string(&ret(0)).unwrap() + "\n").unwrap();
        let held = File::open(&other).unwrap();
        assert!(lock(&held));
        let s = Spool::new(d.path());
        let n = s.replay_orphans(10, |_| Ok::<(), ()>(())).unwrap();
        assert_eq!(n, 0);
        assert!(other.exists());
    }
}
