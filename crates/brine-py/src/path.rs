//! `posixpath` as CPython 3.11 implements it, `urllib.parse`'s scheme,
//! and Salt's `salt.utils.path.join`.

/// `posixpath.normpath`.
pub fn normpath(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let initial = if path.starts_with("//") && !path.starts_with("///") {
        2
    } else if path.starts_with('/') {
        1
    } else {
        0
    };
    let mut parts: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        if comp.is_empty() || comp == "." {
            continue;
        }
        if comp != ".." || (initial == 0 && parts.is_empty()) || parts.last() == Some(&"..") {
            parts.push(comp);
        } else if !parts.is_empty() {
            parts.pop();
        }
    }
    let joined = format!("{}{}", "/".repeat(initial), parts.join("/"));
    if joined.is_empty() {
        ".".into()
    } else {
        joined
    }
}

/// `posixpath.join(a, b)`.
pub fn join(a: &str, b: &str) -> String {
    if b.starts_with('/') {
        b.to_string()
    } else if a.is_empty() || a.ends_with('/') {
        format!("{a}{b}")
    } else {
        format!("{a}/{b}")
    }
}

/// `posixpath.split`.
pub fn split(p: &str) -> (String, String) {
    let i = p.rfind('/').map_or(0, |i| i + 1);
    let (head, tail) = p.split_at(i);
    let head = if !head.is_empty() && !head.chars().all(|c| c == '/') {
        head.trim_end_matches('/')
    } else {
        head
    };
    (head.to_string(), tail.to_string())
}

/// `posixpath.dirname`.
pub fn dirname(p: &str) -> String {
    split(p).0
}

/// `posixpath.abspath`.
pub fn abspath(p: &str) -> String {
    if p.starts_with('/') {
        normpath(p)
    } else {
        let cwd = std::env::current_dir()
            .map(|d| d.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "/".into());
        normpath(&join(&cwd, p))
    }
}

/// `posixpath.expanduser`.
pub fn expanduser(path: &str) -> String {
    if !path.starts_with('~') {
        return path.to_string();
    }
    let i = path[1..].find('/').map_or(path.len(), |i| i + 1);
    let home = if i == 1 {
        match std::env::var("HOME") {
            Ok(h) => h,
            Err(_) => match nix::unistd::User::from_uid(nix::unistd::getuid()) {
                Ok(Some(u)) => u.dir.to_string_lossy().into_owned(),
                _ => return path.to_string(),
            },
        }
    } else {
        match nix::unistd::User::from_name(&path[1..i]) {
            Ok(Some(u)) => u.dir.to_string_lossy().into_owned(),
            _ => return path.to_string(),
        }
    };
    let out = format!("{}{}", home.trim_end_matches('/'), &path[i..]);
    if out.is_empty() {
        "/".into()
    } else {
        out
    }
}

/// `salt.utils.path.join(root, path)`: both normalised, `path` stripped of
/// its leading slashes so it always lands under `root`.
pub fn salt_join(root: &str, path: &str) -> String {
    let root = normpath(root);
    let path = normpath(path);
    normpath(&join(&root, path.trim_start_matches('/')))
}

/// `urllib.parse.urlparse(url).scheme` (Python 3.11): leading C0
/// controls and spaces stripped, tabs and newlines removed, lowercased;
/// empty when there is none.
pub fn url_scheme(url: &str) -> String {
    let url = url.trim_start_matches(|c: char| c <= ' ');
    let url: String = url.chars().filter(|c| !matches!(c, '\t' | '\r' | '\n')).collect();
    match url.find(':') {
        Some(i) if i > 0 => {
            let scheme = &url[..i];
            let first_alpha = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
            if first_alpha && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
                scheme.to_ascii_lowercase()
            } else {
                String::new()
            }
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_path() {
        assert_eq!(normpath("/a/./b/../c/"), "/a/c");
        assert_eq!(normpath("//a//b"), "//a/b");
        assert_eq!(normpath("///a"), "/a");
        assert_eq!(normpath("../x/.."), "..");
        assert_eq!(normpath(""), ".");
        assert_eq!(normpath("/.."), "/");
        assert_eq!(join("/a/", "b"), "/a/b");
        assert_eq!(join("/a", "/b"), "/b");
        assert_eq!(split("/a/b/"), ("/a/b".into(), "".into()));
        assert_eq!(split("//x"), ("//".into(), "x".into()));
        assert_eq!(dirname("/a/b"), "/a");
        assert_eq!(salt_join("/srv/r", "/etc/x"), "/srv/r/etc/x");
        assert_eq!(salt_join("/", ""), "/");
        assert_eq!(abspath("/a/../b"), "/b");
        assert_eq!(expanduser("x/~"), "x/~");
    }

    #[test]
    fn url_schemes() {
        assert_eq!(url_scheme("udp://localhost:514"), "udp");
        assert_eq!(url_scheme("file:///dev/log"), "file");
        assert_eq!(url_scheme("salt://x"), "salt");
        assert_eq!(url_scheme("/var/log/salt/master"), "");
        assert_eq!(url_scheme("1abc:x"), "");
        assert_eq!(url_scheme("1a:b"), "");
        assert_eq!(url_scheme("\tFoo:bar"), "foo");
        assert_eq!(url_scheme("s\nalt://x"), "salt");
    }
}
