//! `glob.glob` and `glob.has_magic` (not recursive: `**` is `*`).

use std::path::Path;

use crate::fnmatch::Glob;
use crate::path::{join, split};

/// `glob.has_magic`.
pub fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn lexists(p: &str) -> bool {
    Path::new(p).symlink_metadata().is_ok()
}

fn isdir(p: &str) -> bool {
    Path::new(if p.is_empty() { "." } else { p }).is_dir()
}

fn listdir(dir: &str, dironly: bool) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(if dir.is_empty() { "." } else { dir }) else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .filter(|e| !dironly || e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn glob1(dir: &str, pat: &str, dironly: bool) -> Vec<String> {
    let glob = Glob::new(pat);
    let hidden_ok = pat.starts_with('.');
    listdir(dir, dironly)
        .into_iter()
        .filter(|n| (hidden_ok || !n.starts_with('.')) && glob.matches(n))
        .collect()
}

fn glob0(dir: &str, base: &str) -> Vec<String> {
    let ok = if base.is_empty() {
        isdir(dir)
    } else {
        lexists(&join(dir, base))
    };
    if ok {
        vec![base.to_string()]
    } else {
        Vec::new()
    }
}

fn iglob(pathname: &str, dironly: bool) -> Vec<String> {
    let (dir, base) = split(pathname);
    if !has_magic(pathname) {
        let ok = if base.is_empty() {
            isdir(&dir)
        } else {
            lexists(pathname)
        };
        return if ok { vec![pathname.to_string()] } else { Vec::new() };
    }
    if dir.is_empty() {
        return glob1("", &base, dironly);
    }
    let dirs = if dir != pathname && has_magic(&dir) {
        iglob(&dir, true)
    } else {
        vec![dir]
    };
    let mut out = Vec::new();
    for d in dirs {
        let names = if has_magic(&base) {
            glob1(&d, &base, dironly)
        } else {
            glob0(&d, &base)
        };
        out.extend(names.into_iter().map(|n| join(&d, &n)));
    }
    out
}

/// `glob.glob(pattern)` (not recursive, hidden names need a leading-dot
/// pattern, results in directory order).
pub fn glob(pattern: &str) -> Vec<String> {
    iglob(pattern, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_like_python() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().to_str().unwrap();
        for f in ["a.conf", ".hidden.conf", "sub/x.conf", "sub2/y.conf", "b.txt"] {
            let p = d.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        let mut g = glob(&format!("{root}/*.conf"));
        g.sort();
        assert_eq!(g, vec![format!("{root}/a.conf")]);
        let mut g = glob(&format!("{root}/.*.conf"));
        g.sort();
        assert_eq!(g, vec![format!("{root}/.hidden.conf")]);
        let mut g = glob(&format!("{root}/sub*/*.conf"));
        g.sort();
        assert_eq!(g, vec![format!("{root}/sub/x.conf"), format!("{root}/sub2/y.conf")]);
        assert_eq!(glob(&format!("{root}/b.txt")), vec![format!("{root}/b.txt")]);
        assert!(glob(&format!("{root}/missing")).is_empty());
        // `**` is not recursive in Salt's glob.glob call.
        let mut g = glob(&format!("{root}/**/*.conf"));
        g.sort();
        assert_eq!(g.len(), 2);
    }
}
