//! `_file_recv`: a minion's `cp.push` writing a file into
//! `cachedir/minions/<id>/files/`, one `file_buffer_size` chunk a request
//! (Salt's `AESFuncs._file_recv`).
//!
//! Answers as Salt's: `True` when the chunk is written; `False` when it is
//! refused (`file_recv` off, a path that leaves the minion's directory, a
//! negative offset, more than `file_recv_max_size` MiB); `""` where
//! Salt's function raises (a load of the wrong types, a write that fails),
//! as `AESFuncs.run_func` answers an exception. Every refusal is logged
//! with the minion id.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use brine_cache::MinionCache;
use brine_keys::MinionId;
use brine_proto::Value;
use log::{error, warn};

use super::Ctx;
use brine_fileserver::py;

/// What `_file_recv` needs from the master's options.
pub(crate) struct RecvOpts {
    pub enabled: bool,
    /// `file_recv_max_size`, in MiB.
    pub max_mib: i64,
    /// `fileserver_followsymlinks`: when false, symlinks are resolved
    /// before the path is checked (Salt's `clean_path(realpath=True)`).
    pub follow_symlinks: bool,
}

/// Why a chunk was not written.
#[derive(Debug, PartialEq)]
pub(crate) enum Refused {
    /// Salt answers `False`.
    No(String),
    /// Salt's function raises: answered `""`.
    Raised(String),
}

pub(super) fn file_recv(ctx: &Ctx, id: &MinionId, load: &Value) -> Value {
    let opts = RecvOpts {
        enabled: ctx.cfg.get_bool("file_recv").unwrap_or(false),
        max_mib: ctx.cfg.get_i64("file_recv_max_size").unwrap_or(100),
        follow_symlinks: ctx.cfg.get_bool("fileserver_followsymlinks").unwrap_or(true),
    };
    let root = MinionCache::new(&ctx.cfg.cachedir).dir(id).join("files");
    match receive(&opts, &root, load) {
        Ok(()) => Value::Bool(true),
        Err(Refused::No(why)) => {
            warn!("{id}: _file_recv refused: {why}");
            Value::Bool(false)
        }
        Err(Refused::Raised(why)) => {
            error!("{id}: _file_recv failed (answered \"\" as Salt does): {why}");
            Value::from("")
        }
    }
}

/// A numeric `loc` as Python compares it (`True` is 1); for any other
/// type `loc < 0` raises.
enum Loc {
    Int(i128),
    Float(f64),
}

/// Write one chunk of `load` under `root` (the minion's `files` directory).
pub(crate) fn receive(opts: &RecvOpts, root: &Path, load: &Value) -> Result<(), Refused> {
    let no = |why: &str| Err(Refused::No(why.to_string()));
    let raised = |why: String| Err(Refused::Raised(why));
    for key in ["id", "path", "loc"] {
        if load.get(key).is_none() {
            return no(&format!("no {key:?} in the load"));
        }
    }
    let Some(Value::Array(parts)) = load.get("path") else {
        return no("path is not a list");
    };
    if !opts.enabled {
        return no("file_recv is False in the master config");
    }
    let loc = match load.get("loc") {
        Some(Value::Int(i)) => Loc::Int(i128::from(*i)),
        Some(Value::UInt(u)) => Loc::Int(i128::from(*u)),
        Some(Value::Bool(b)) => Loc::Int(i128::from(*b)),
        Some(Value::F64(f)) => Loc::Float(*f),
        Some(Value::F32(f)) => Loc::Float(f64::from(*f)),
        other => return raised(format!("loc {other:?} is not a number")),
    };
    let negative = match loc {
        Loc::Int(i) => i < 0,
        Loc::Float(f) => f < 0.0,
    };
    if negative {
        return no("invalid file pointer: loc < 0");
    }
    // Python's len(): bytes, code points, items.
    let (len, data): (u64, Option<Vec<u8>>) = match load.get("data") {
        Some(Value::Bytes(b)) => (b.len() as u64, Some(b.clone())),
        Some(Value::Str(s)) => (s.chars().count() as u64, Some(s.as_bytes().to_vec())),
        Some(Value::Array(a)) => (a.len() as u64, None),
        Some(Value::Map(m)) => (m.len() as u64, None),
        None => return raised("no \"data\" in the load".into()),
        Some(other) => return raised(format!("data {other:?} has no length")),
    };
    let max = i128::from(opts.max_mib) * 1024 * 1024;
    let over = match loc {
        Loc::Int(i) => i128::from(len) + i > max,
        Loc::Float(f) => len as f64 + f > max as f64,
    };
    if over {
        return no(&format!(
            "file_recv_max_size limit of {} MB exceeded: the file will be truncated",
            opts.max_mib
        ));
    }
    let mut names = Vec::with_capacity(parts.len());
    for p in parts {
        match p {
            Value::Str(s) => names.push(s.as_str()),
            other => return raised(format!("path element {other:?} is not text")),
        }
    }
    let rel = brine_py::normpath(&names.join("/"));
    if py::isabs(&rel) || names.contains(&"../") {
        return no(&format!("path {:?} is absolute or climbs out", names.join("/")));
    }
    // Salt's `clean_path(rpath, cpath, subdir=True, realpath=not
    // fileserver_followsymlinks)`, the fileserver's own.
    let root = root
        .to_str()
        .ok_or_else(|| Refused::Raised(format!("{} is not UTF-8", root.display())))?;
    let cwd = std::env::current_dir().map_or_else(|_| "/".to_string(), |d| d.to_string_lossy().into_owned());
    let target = brine_py::join(root, &rel);
    if !py::clean_path(&cwd, root, &target, !opts.follow_symlinks) {
        return no(&format!(
            "attempt to write received file outside of the master cache directory: {target}"
        ));
    }
    // As in Salt, a failure to make the directory shows when the file is
    // opened.
    let _ = std::fs::create_dir_all(brine_py::dirname(&target));
    let at = match loc {
        Loc::Int(i) => i as u64,
        Loc::Float(0.0) => 0,
        Loc::Float(_) => u64::MAX,
    };
    let append = py::isfile(&target) && at != 0;
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .append(append)
        .truncate(!append)
        .open(&target)
        .map_err(|e| Refused::Raised(format!("cannot open {target}: {e}")))?;
    if at == u64::MAX {
        return raised("loc is a float: Python's seek() refuses it".into());
    }
    if at != 0 && !append {
        f.seek(SeekFrom::Start(at))
            .map_err(|e| Refused::Raised(format!("cannot seek {target} to {at}: {e}")))?;
    }
    let Some(data) = data else {
        return raised("data is not bytes or text".into());
    };
    f.write_all(&data)
        .map_err(|e| Refused::Raised(format!("cannot write {target}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn opts(follow: bool) -> RecvOpts {
        RecvOpts {
            enabled: true,
            max_mib: 1,
            follow_symlinks: follow,
        }
    }

    fn load(path: &[&str], loc: Value, data: Value) -> Value {
        Value::map([
            ("cmd", Value::from("_file_recv")),
            ("id", Value::from("m1")),
            ("path", Value::Array(path.iter().map(|p| Value::from(*p)).collect())),
            ("loc", loc),
            ("data", data),
        ])
    }

    fn is_no(r: Result<(), Refused>) -> bool {
        matches!(r, Err(Refused::No(_)))
    }

    fn is_raised(r: Result<(), Refused>) -> bool {
        matches!(r, Err(Refused::Raised(_)))
    }

    #[test]
    fn chunks_are_written_appended_and_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("minions/m1/files");
        let o = opts(true);
        let p = root.join("etc/hosts");
        receive(&o, &root, &load(&["etc", "hosts"], Value::Int(0), Value::from("one\n"))).unwrap();
        receive(
            &o,
            &root,
            &load(&["etc", "hosts"], Value::Int(4), Value::Bytes(b"two\n".to_vec())),
        )
        .unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"one\ntwo\n");
        // loc 0 starts the file again (a second cp.push of the same path).
        receive(&o, &root, &load(&["etc", "hosts"], Value::Int(0), Value::from("new\n"))).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new\n");
        // A first chunk at an offset: the gap is zeros, as after seek().
        receive(&o, &root, &load(&["sparse"], Value::Int(3), Value::from("x"))).unwrap();
        assert_eq!(std::fs::read(root.join("sparse")).unwrap(), b"\0\0\0x");
        // `True` is 1 to Python: appended to an existing file.
        receive(&o, &root, &load(&["sparse"], Value::Bool(true), Value::from("y"))).unwrap();
        assert_eq!(std::fs::read(root.join("sparse")).unwrap(), b"\0\0\0xy");
    }

    #[test]
    fn refusals_answer_false_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("minions/m1/files");
        let o = opts(true);
        let data = || Value::from("x");
        let off = RecvOpts {
            enabled: false,
            ..opts(true)
        };
        assert!(is_no(receive(&off, &root, &load(&["a"], Value::Int(0), data()))));
        for path in [
            &["..", "..", "..", "escape"][..],
            &["../", "escape"],
            &["/etc", "passwd"],
            &["x/../../../../escape"],
            &["a", "..", "..", "..", "..", "escape"],
        ] {
            assert!(
                is_no(receive(&o, &root, &load(path, Value::Int(0), data()))),
                "{path:?}"
            );
        }
        assert!(is_no(receive(&o, &root, &load(&["a"], Value::Int(-1), data()))));
        // file_recv_max_size 1 MiB: the chunk's end counts.
        let mib = 1024 * 1024;
        assert!(is_no(receive(&o, &root, &load(&["a"], Value::Int(mib), data()))));
        assert!(is_no(receive(
            &o,
            &root,
            &load(&["a"], Value::Int(0), Value::Bytes(vec![0; mib as usize + 1]))
        )));
        let mut no_loc = load(&["a"], Value::Int(0), data());
        no_loc.remove("loc");
        assert!(is_no(receive(&o, &root, &no_loc)));
        let mut text_path = load(&["a"], Value::Int(0), data());
        text_path.set("path", Value::from("a"));
        assert!(is_no(receive(&o, &root, &text_path)));
        assert!(!dir.path().join("escape").exists() && !dir.path().join("minions/escape").exists());
        assert!(!root.join("a").exists());
    }

    #[test]
    fn loads_salt_raises_on_answer_the_empty_string() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("files");
        let o = opts(true);
        assert!(is_raised(receive(
            &o,
            &root,
            &load(&["a"], Value::from("0"), Value::from("x"))
        )));
        assert!(is_raised(receive(
            &o,
            &root,
            &load(&["a"], Value::Nil, Value::from("x"))
        )));
        assert!(is_raised(receive(&o, &root, &load(&["a"], Value::Int(0), Value::Nil))));
        let mut no_data = load(&["a"], Value::Int(0), Value::Nil);
        no_data.remove("data");
        assert!(is_raised(receive(&o, &root, &no_data)));
        let mut bad_part = load(&["a"], Value::Int(0), Value::from("x"));
        bad_part.set("path", Value::Array(vec![Value::Int(1)]));
        assert!(is_raised(receive(&o, &root, &bad_part)));
        // No name: the directory itself cannot be opened as a file.
        assert!(is_raised(receive(
            &o,
            &root,
            &load(&[], Value::Int(0), Value::from("x"))
        )));
        assert!(is_raised(receive(
            &o,
            &root,
            &load(&["a"], Value::F64(1.5), Value::from("x"))
        )));
    }

    #[test]
    fn symlinks_out_are_followed_only_with_fileserver_followsymlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("files");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        symlink(&outside, root.join("out")).unwrap();
        // A dangling link: its target does not exist yet.
        symlink(outside.join("made"), root.join("dangling")).unwrap();
        std::fs::create_dir_all(root.join("inner")).unwrap();
        symlink("inner", root.join("rel")).unwrap();
        let strict = opts(false);
        assert!(is_no(receive(
            &strict,
            &root,
            &load(&["out", "x"], Value::Int(0), Value::from("x"))
        )));
        assert!(is_no(receive(
            &strict,
            &root,
            &load(&["dangling"], Value::Int(0), Value::from("x"))
        )));
        assert!(!outside.join("x").exists() && !outside.join("made").exists());
        // A link that stays inside is fine.
        receive(&strict, &root, &load(&["rel", "f"], Value::Int(0), Value::from("in"))).unwrap();
        assert_eq!(std::fs::read(root.join("inner/f")).unwrap(), b"in");
        // Salt's default follows links (no realpath check).
        receive(
            &opts(true),
            &root,
            &load(&["out", "x"], Value::Int(0), Value::from("x")),
        )
        .unwrap();
        assert!(outside.join("x").exists());
    }
}
