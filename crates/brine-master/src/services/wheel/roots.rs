//! Salt's `wheel.file_roots` and `wheel.pillar_roots`: the same five
//! functions over `file_roots` or `pillar_roots` (`{saltenv: [root, …]}`).
//!
//! * `find(path, saltenv="base")`: `[{<root>/<path>: "txt" | "bin"}]` for
//!   each root holding that file (Salt's `is_binary` on its first 512
//!   bytes).
//! * `read(path, saltenv="base")`: `[{<root>/<path>: text}]` for the text
//!   files `find` names.
//! * `list_env(saltenv="base")`: `{root: {dir: {…}, file: "f"}}`, as
//!   `os.walk` sees each root (symlinked directories listed, not entered).
//! * `list_roots()`: `{saltenv: [list_env(saltenv)]}`.
//! * `write(data, path, saltenv="base", index=0)`: writes
//!   `<root number index>/<path>`, creating directories, and answers
//!   `Wrote data to file <root>/<path>`.
//!
//! # Security (CVE-2020-11652, CVE-2021-25282)
//!
//! A path is checked as Salt's `clean_path(root, <root>/<path>,
//! subdir=True)` checks it: normalised and with symlinks resolved, it must
//! stay under the root. `write` refuses an absolute path (`The path passed
//! in … is not relative to the environment …`) and one that leaves the
//! root (`Invalid path: <path>` for file_roots, `Invalid path` for
//! pillar_roots, Salt's two texts); `find` and `read` skip that root, so
//! `../../etc/shadow` gives `[]`. Brine then reads or writes the path it
//! checked (symlinks resolved, `..` folded), never the path as given:
//! Salt opens the given path, where `link/../x` climbs from wherever
//! `link` points. Two places where Brine is stricter than Salt 3007:
//! `pillar_roots.find` and `read` check the path as `file_roots` does
//! (Salt's join it unchecked and read any file), and `read` refuses files
//! over 64 MiB (an error naming the file). Refusals are logged with the
//! path escaped.

use std::io::Read;

use brine_fileserver::py::{clean_real, isabs, isfile};
use brine_proto::Value;
use brine_py::{dirname, join, os_error, to_str};
use log::{debug, info, warn};

use super::super::Ctx;
use super::{cwd, text_arg, write_checked};
use brine_client::low::CallArgs;

/// The largest file `read` returns.
const MAX_READ: u64 = 64 << 20;

/// Which roots a call works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tree {
    /// `file_roots` (`wheel.file_roots`).
    Files,
    /// `pillar_roots` (`wheel.pillar_roots`).
    Pillar,
}

impl Tree {
    fn option(self) -> &'static str {
        match self {
            Tree::Files => "file_roots",
            Tree::Pillar => "pillar_roots",
        }
    }

    /// Salt's answer for a path that leaves its root.
    fn invalid(self, path: &str) -> String {
        match self {
            Tree::Files => format!("Invalid path: {path}"),
            Tree::Pillar => "Invalid path".into(),
        }
    }
}

/// The saltenvs of `file_roots` or `pillar_roots` and their roots, in
/// configuration order (non-text roots left out, logged).
fn envs(ctx: &Ctx, tree: Tree) -> Vec<(String, Vec<String>)> {
    let Some(brine_config::Value::Object(m)) = ctx.cfg.get(tree.option()) else {
        return Vec::new();
    };
    m.iter()
        .map(|(env, dirs)| {
            let roots = match dirs {
                brine_config::Value::Array(a) => a
                    .iter()
                    .filter_map(|d| {
                        let s = d.as_str().map(String::from);
                        if s.is_none() {
                            warn!("{}: {env}: {d} is not a path; ignored", tree.option());
                        }
                        s
                    })
                    .collect(),
                _ => Vec::new(),
            };
            (env.clone(), roots)
        })
        .collect()
}

/// The roots of `saltenv` (only a text saltenv names one, as only a
/// `str` is a key of Salt's dict).
fn roots_of(envs: &[(String, Vec<String>)], saltenv: &Value) -> Option<Vec<String>> {
    let name = saltenv.as_str()?;
    envs.iter().find(|(e, _)| e == name).map(|(_, r)| r.clone())
}

pub(super) fn call(ctx: &Ctx, tree: Tree, fun: &str, args: &CallArgs) -> Result<Value, String> {
    let envs = envs(ctx, tree);
    let base = Value::from("base");
    let saltenv = |i: usize| args.get(i, "saltenv").unwrap_or(&base);
    match fun {
        "find" => {
            let found = find(tree, &envs, text_arg(args, 0, "path")?, saltenv(1))?;
            Ok(Value::Array(
                found
                    .into_iter()
                    .map(|f| Value::map([(f.full.as_str(), Value::from(if f.text { "txt" } else { "bin" }))]))
                    .collect(),
            ))
        }
        "read" => read(tree, &envs, text_arg(args, 0, "path")?, saltenv(1)),
        "list_env" => Ok(list_env(&envs, saltenv(0))),
        "list_roots" => Ok(Value::Map(
            envs.iter()
                .map(|(env, _)| {
                    (
                        Value::from(env.as_str()),
                        Value::Array(vec![list_env(&envs, &Value::from(env.as_str()))]),
                    )
                })
                .collect(),
        )),
        "write" => {
            let data = args.get(0, "data").ok_or("missing argument: data")?;
            let path = text_arg(args, 1, "path")?;
            let index = args.get(3, "index").cloned().unwrap_or(Value::Int(0));
            write(tree, &envs, data, path, saltenv(2), &index).map(Value::from)
        }
        other => Err(format!("{}.{other} is not implemented", tree.option())),
    }
}

/// A file `find` found: the name Salt answers with (`<root>/<path>` as
/// joined), the checked real path, and whether it is text.
struct Found {
    full: String,
    real: String,
    text: bool,
}

/// Salt's `find`; `Err` where it raises (a file that cannot be opened).
fn find(tree: Tree, envs: &[(String, Vec<String>)], path: &str, saltenv: &Value) -> Result<Vec<Found>, String> {
    let Some(roots) = roots_of(envs, saltenv) else {
        return Ok(Vec::new());
    };
    let cwd = cwd();
    let mut out = Vec::new();
    for root in roots {
        let full = join(&root, path);
        let Some(real) = clean_real(&cwd, &root, &full, true) else {
            warn!(
                "wheel {}.find: {path:?} leads out of the root {root:?}: refused",
                tree.option()
            );
            continue;
        };
        if !isfile(&real) {
            continue;
        }
        let mut head = Vec::with_capacity(512);
        open_checked(&real)
            .and_then(|f| f.take(512).read_to_end(&mut head))
            .map_err(|e| os_error(&e, &full))?;
        out.push(Found {
            full,
            real,
            text: !brine_py::is_binary(&head),
        });
    }
    Ok(out)
}

/// Open for reading a path `clean_real` resolved, not following a
/// symlink put in its place since.
fn open_checked(path: &str) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Salt's `read`: the text files `find` names, with their content.
fn read(tree: Tree, envs: &[(String, Vec<String>)], path: &str, saltenv: &Value) -> Result<Value, String> {
    let mut out = Vec::new();
    for f in find(tree, envs, path, saltenv)? {
        if !f.text {
            continue;
        }
        let file = open_checked(&f.real).map_err(|e| os_error(&e, &f.full))?;
        let size = file.metadata().map_err(|e| os_error(&e, &f.full))?.len();
        if size > MAX_READ {
            return Err(format!(
                "{} is {size} bytes; Brine's wheel reads files up to {MAX_READ} bytes",
                f.full
            ));
        }
        let mut bytes = Vec::new();
        file.take(MAX_READ + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| os_error(&e, &f.full))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            format!(
                "UnicodeDecodeError: 'utf-8' codec can't decode {}: {}",
                f.full,
                e.utf8_error()
            )
        })?;
        out.push(Value::map([(f.full.as_str(), Value::from(text))]));
    }
    Ok(Value::Array(out))
}

/// Salt's `list_env`: `{root: tree}` for each root of `saltenv`.
fn list_env(envs: &[(String, Vec<String>)], saltenv: &Value) -> Value {
    let Some(roots) = roots_of(envs, saltenv) else {
        return Value::Map(Vec::new());
    };
    let mut out = Value::Map(Vec::new());
    for root in roots {
        let tree = walk(&root);
        out.set(&root, tree);
    }
    out
}

/// One directory as `os.walk(top)` (top-down, not following symlinks)
/// and Salt's nesting make it: subdirectories first, each `{…}` (a
/// symlink to a directory stays `{}`), then the other entries as `"f"`,
/// both in directory order. A directory that cannot be read is `{}`, as
/// `os.walk` skips it; names that are not UTF-8 are left out (Salt's
/// answer could not be encoded).
fn walk(dir: &str) -> Value {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Value::Map(Vec::new());
    };
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    for entry in entries {
        let Ok(entry) = entry else {
            return Value::Map(Vec::new());
        };
        let Some(name) = entry.file_name().to_str().map(String::from) else {
            debug!("{dir}: a name that is not UTF-8 is left out of the list");
            continue;
        };
        let path = entry.path();
        // DirEntry.is_dir() follows symlinks, as os.walk's does.
        if std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
            let link = entry.file_type().is_ok_and(|t| t.is_symlink());
            dirs.push((name, link));
        } else {
            files.push(name);
        }
    }
    let mut out = Vec::with_capacity(dirs.len() + files.len());
    for (name, link) in dirs {
        let sub = if link {
            Value::Map(Vec::new())
        } else {
            walk(&join(dir, &name))
        };
        out.push((Value::from(name), sub));
    }
    out.extend(files.into_iter().map(|f| (Value::from(f), Value::from("f"))));
    Value::Map(out)
}

/// Salt's `write`: its answer, or `Err` where it raises.
fn write(
    tree: Tree,
    envs: &[(String, Vec<String>)],
    data: &Value,
    path: &str,
    saltenv: &Value,
    index: &Value,
) -> Result<String, String> {
    let env_name = to_str(saltenv);
    let Some(roots) = roots_of(envs, saltenv) else {
        return Ok(format!("Named environment {env_name} is not present"));
    };
    let i = match index {
        Value::Int(i) => i128::from(*i),
        Value::UInt(u) => i128::from(*u),
        Value::Bool(b) => i128::from(*b),
        other => {
            return Err(format!(
                "TypeError: list indices must be integers, not {}",
                brine_py::type_name(other)
            ))
        }
    };
    let len = roots.len() as i128;
    if len <= i {
        return Ok(format!(
            "Specified index {} in environment {env_name} is not present",
            to_str(index)
        ));
    }
    if isabs(path) {
        warn!("wheel {}.write: {path:?} is absolute: refused", tree.option());
        return Ok(format!(
            "The path passed in {path} is not relative to the environment {env_name}"
        ));
    }
    // Python's list index: negative counts from the end.
    let Some(root) = usize::try_from(if i < 0 { len + i } else { i })
        .ok()
        .and_then(|i| roots.get(i))
    else {
        return Err("IndexError: list index out of range".into());
    };
    let text = match data {
        Value::Str(s) => s.as_bytes(),
        Value::Bytes(b) => {
            std::str::from_utf8(b).map_err(|e| format!("UnicodeDecodeError: 'utf-8' codec can't decode data: {e}"))?;
            b.as_slice()
        }
        other => {
            return Err(format!(
                "TypeError: expected str, bytes or bytearray not {}",
                brine_py::type_name(other)
            ))
        }
    };
    let dest = join(root, path);
    let Some(real) = clean_real(&cwd(), root, &dest, true) else {
        warn!(
            "wheel {}.write: {path:?} leads out of the root {root:?}: refused",
            tree.option()
        );
        return Ok(tree.invalid(path));
    };
    let real_dir = dirname(&real);
    if !std::path::Path::new(&real_dir).is_dir() {
        std::fs::create_dir_all(&real_dir).map_err(|e| os_error(&e, &dirname(&dest)))?;
    }
    write_checked(&real, text).map_err(|e| os_error(&e, &dest))?;
    info!("wheel {}.write: wrote {real:?}", tree.option());
    Ok(format!("Wrote data to file {dest}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A root `srv` with `top.sls`, `sub/x.sls`, a binary file, a link
    /// out (to `secret`, beside the root) and a link in.
    fn tree() -> (tempfile::TempDir, Vec<(String, Vec<String>)>) {
        let t = tempfile::tempdir().unwrap();
        let srv = t.path().join("srv");
        std::fs::create_dir_all(srv.join("sub")).unwrap();
        std::fs::write(srv.join("top.sls"), "base: {}\n").unwrap();
        std::fs::write(srv.join("sub/x.sls"), "x: 1\n").unwrap();
        std::fs::write(srv.join("blob"), b"\x00\x01").unwrap();
        std::fs::write(t.path().join("secret"), "secret\n").unwrap();
        symlink(t.path().join("secret"), srv.join("out")).unwrap();
        symlink(t.path(), srv.join("up")).unwrap();
        symlink("sub/x.sls", srv.join("in.sls")).unwrap();
        let envs = vec![("base".into(), vec![srv.display().to_string()])];
        (t, envs)
    }

    fn names(found: Vec<Found>) -> Vec<(String, bool)> {
        found.into_iter().map(|f| (f.full, f.text)).collect()
    }

    #[test]
    fn find_and_read_stay_in_the_root() {
        let (t, envs) = tree();
        let srv = t.path().join("srv").display().to_string();
        let base = Value::from("base");
        for tree in [Tree::Files, Tree::Pillar] {
            let f = |p: &str| names(find(tree, &envs, p, &base).unwrap());
            assert_eq!(f("top.sls"), [(format!("{srv}/top.sls"), true)]);
            assert_eq!(f("blob"), [(format!("{srv}/blob"), false)]);
            assert_eq!(f("in.sls"), [(format!("{srv}/in.sls"), true)]);
            for bad in [
                "../secret",
                "out",
                "up/secret",
                "sub/../../secret",
                "/etc/passwd",
                "sub/../out",
            ] {
                assert!(f(bad).is_empty(), "{bad}");
                assert_eq!(read(tree, &envs, bad, &base).unwrap(), Value::Array(vec![]), "{bad}");
            }
            assert!(
                f("top.sls").len() == 1 && names(find(tree, &envs, "top.sls", &Value::from("dev")).unwrap()).is_empty()
            );
            assert_eq!(
                read(tree, &envs, "in.sls", &base).unwrap(),
                Value::Array(vec![Value::map([(
                    format!("{srv}/in.sls").as_str(),
                    Value::from("x: 1\n")
                )])])
            );
            assert_eq!(read(tree, &envs, "blob", &base).unwrap(), Value::Array(vec![]));
        }
    }

    #[test]
    fn write_refuses_what_salt_refuses() {
        let (t, envs) = tree();
        let srv = t.path().join("srv").display().to_string();
        let (base, zero) = (Value::from("base"), Value::Int(0));
        let data = Value::from("pwned");
        for tree in [Tree::Files, Tree::Pillar] {
            let w = |p: &str| write(tree, &envs, &data, p, &base, &zero).unwrap();
            for bad in ["../pwn", "up/pwn", "sub/../../pwn", "out"] {
                assert_eq!(w(bad), tree.invalid(bad), "{bad}");
            }
            assert_eq!(
                w("/tmp/pwn"),
                "The path passed in /tmp/pwn is not relative to the environment base"
            );
            assert_eq!(
                write(tree, &envs, &data, "a", &Value::from("dev"), &zero).unwrap(),
                "Named environment dev is not present"
            );
            assert_eq!(
                write(tree, &envs, &data, "a", &base, &Value::Int(1)).unwrap(),
                "Specified index 1 in environment base is not present"
            );
            assert!(write(tree, &envs, &data, "a", &base, &Value::Int(-2)).is_err());
            assert!(write(tree, &envs, &data, "a", &base, &Value::from("0")).is_err());
        }
        assert_eq!(std::fs::read_to_string(t.path().join("secret")).unwrap(), "secret\n");
        assert!(!t.path().join("pwn").exists());
        assert_eq!(Tree::Files.invalid("../x"), "Invalid path: ../x");
        assert_eq!(Tree::Pillar.invalid("../x"), "Invalid path");
        // Good writes: new directories, through a link inside, index -1.
        let w = |p: &str, i: i64| write(Tree::Files, &envs, &Value::from("ok"), p, &base, &Value::Int(i)).unwrap();
        assert_eq!(w("new/dir/f.sls", 0), format!("Wrote data to file {srv}/new/dir/f.sls"));
        assert_eq!(std::fs::read_to_string(format!("{srv}/new/dir/f.sls")).unwrap(), "ok");
        assert_eq!(w("in.sls", -1), format!("Wrote data to file {srv}/in.sls"));
        assert_eq!(std::fs::read_to_string(format!("{srv}/sub/x.sls")).unwrap(), "ok");
    }

    #[test]
    fn list_env_as_os_walk() {
        let (t, envs) = tree();
        let srv = t.path().join("srv").display().to_string();
        let v = list_env(&envs, &Value::from("base"));
        let root = v.get(&srv).unwrap();
        assert_eq!(root.get("sub"), Some(&Value::map([("x.sls", Value::from("f"))])));
        // A symlinked directory is listed, not entered.
        assert_eq!(root.get("up"), Some(&Value::Map(vec![])));
        for f in ["top.sls", "blob", "out", "in.sls"] {
            assert_eq!(root.get(f), Some(&Value::from("f")), "{f}");
        }
        assert_eq!(list_env(&envs, &Value::from("dev")), Value::Map(vec![]));
        let missing = vec![("base".to_string(), vec!["/nonexistent/brine".to_string()])];
        assert_eq!(
            list_env(&missing, &Value::from("base")),
            Value::map([("/nonexistent/brine", Value::Map(vec![]))])
        );
    }
}
