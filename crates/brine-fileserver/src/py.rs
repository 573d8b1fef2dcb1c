//! The Python and Salt path semantics only the fileserver's answers
//! depend on: `posixpath` (`realpath`, `commonpath`, `relpath`), Salt's
//! `clean_path` and `salt.utils.url` escaping.

use std::collections::HashMap;
use std::path::Path;

use brine_py::{abspath, dirname, join, normpath, split, url_scheme};

/// `os.path.isabs`.
pub fn isabs(p: &str) -> bool {
    p.starts_with('/')
}

/// `os.path.realpath(p)` (non-strict, as Python 3.11): symlinks resolved
/// component by component; missing components and loops are kept as text.
pub fn realpath(p: &str) -> String {
    let mut seen = HashMap::new();
    let (path, _) = join_realpath("", p, &mut seen);
    abspath(&path)
}

fn join_realpath(path: &str, rest: &str, seen: &mut HashMap<String, Option<String>>) -> (String, bool) {
    let mut path = path.to_string();
    let mut rest = rest;
    if let Some(r) = rest.strip_prefix('/') {
        rest = r;
        path = "/".into();
    }
    while !rest.is_empty() {
        let (name, tail) = rest.split_once('/').unwrap_or((rest, ""));
        rest = tail;
        if name.is_empty() || name == "." {
            continue;
        }
        if name == ".." {
            if path.is_empty() {
                path = "..".into();
            } else {
                let (head, last) = split(&path);
                path = if last == ".." {
                    join(&join(&head, ".."), "..")
                } else {
                    head
                };
            }
            continue;
        }
        let newpath = join(&path, name);
        let is_link = !newpath.contains('\0')
            && Path::new(&newpath)
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink());
        if !is_link {
            path = newpath;
            continue;
        }
        if let Some(known) = seen.get(&newpath) {
            match known {
                Some(resolved) => {
                    path = resolved.clone();
                    continue;
                }
                // A loop: Python gives up resolving here.
                None => return (join(&newpath, rest), false),
            }
        }
        seen.insert(newpath.clone(), None);
        let target = match std::fs::read_link(&newpath) {
            Ok(t) => t.to_string_lossy().into_owned(),
            Err(_) => {
                path = newpath;
                continue;
            }
        };
        let (resolved, ok) = join_realpath(&path, &target, seen);
        if !ok {
            return (join(&resolved, rest), false);
        }
        seen.insert(newpath, Some(resolved.clone()));
        path = resolved;
    }
    (path, true)
}

/// `os.path.commonpath([a, b])` for two absolute paths.
pub fn commonpath(a: &str, b: &str) -> String {
    let parts = |p: &str| -> Vec<String> {
        p.split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(String::from)
            .collect()
    };
    let (pa, pb) = (parts(a), parts(b));
    let common: Vec<String> = pa
        .iter()
        .zip(&pb)
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x.clone())
        .collect();
    format!("/{}", common.join("/"))
}

/// `os.path.relpath(path, start)`.
pub fn relpath(path: &str, start: &str) -> String {
    let comps = |p: &str| -> Vec<String> {
        abspath(p)
            .split('/')
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect()
    };
    let (p, s) = (comps(path), comps(start));
    let n = p.iter().zip(&s).take_while(|(x, y)| x == y).count();
    let mut out: Vec<String> = vec!["..".into(); s.len() - n];
    out.extend(p[n..].iter().cloned());
    if out.is_empty() {
        ".".into()
    } else {
        out.join("/")
    }
}

/// `root` and `path` as `salt.utils.verify.clean_path` compares them:
/// absolute (against `cwd`), normalised, and with symlinks resolved when
/// `resolve`.
fn clean_pair(cwd: &str, root: &str, path: &str, resolve: bool) -> (String, String) {
    let root = if isabs(root) { root.to_string() } else { join(cwd, root) };
    let mut normroot = normpath(&root);
    let path = if isabs(path) {
        path.to_string()
    } else {
        join(&normroot, path)
    };
    let mut norm = normpath(&path);
    if resolve {
        normroot = realpath(&normroot);
        norm = realpath(&norm);
    }
    (normroot, norm)
}

/// `salt.utils.verify.clean_path(root, path, subdir=True, realpath=...)`:
/// whether `path` stays under `root` (symlinks resolved when `resolve`).
pub fn clean_path(cwd: &str, root: &str, path: &str, resolve: bool) -> bool {
    let (normroot, norm) = clean_pair(cwd, root, path, resolve);
    commonpath(&norm, &normroot) == normroot
}

/// What `salt.utils.verify.clean_path(root, path, subdir)` returns with
/// `realpath=True`: `path` with symlinks resolved if it lies under `root`
/// (directly in it unless `subdir`), else `None`. Reading or writing
/// that path, rather than `path` as given, touches what was checked.
pub fn clean_real(cwd: &str, root: &str, path: &str, subdir: bool) -> Option<String> {
    let (normroot, norm) = clean_pair(cwd, root, path, true);
    let inside = if subdir {
        commonpath(&norm, &normroot) == normroot
    } else {
        dirname(&norm) == normroot
    };
    inside.then_some(norm)
}

/// `os.path.isfile` (a NUL in the path is simply "no").
pub fn isfile(p: &str) -> bool {
    !p.contains('\0') && std::fs::metadata(p).is_ok_and(|m| m.is_file())
}

/// `salt.utils.url.parse`: a `salt://` URL's path and `saltenv` query.
fn url_parse(url: &str) -> (String, Option<String>) {
    let Some(resource) = url.strip_prefix("salt://") else {
        return (url.to_string(), None);
    };
    if let Some((p, _)) = resource.split_once("?env=") {
        (p.to_string(), None)
    } else if let Some((p, e)) = resource.split_once("?saltenv=") {
        (p.to_string(), Some(e.to_string()))
    } else {
        (resource.to_string(), None)
    }
}

/// `salt.utils.url.is_escaped`.
pub fn is_escaped(url: &str) -> bool {
    match url_scheme(url).as_str() {
        "" => url.starts_with('|'),
        "salt" => url_parse(url).0.starts_with('|'),
        _ => false,
    }
}

/// `salt.utils.url.unescape` (for an escaped `url`).
pub fn unescape(url: &str) -> String {
    match url_scheme(url).as_str() {
        "" => url.trim_start_matches('|').to_string(),
        "salt" => {
            let (path, saltenv) = url_parse(url);
            let path = path.trim_start_matches('|').replace('\\', "/");
            match saltenv {
                Some(e) if !e.is_empty() => format!("salt://{path}?saltenv={e}"),
                _ => format!("salt://{path}"),
            }
        }
        _ => url.to_string(),
    }
}
