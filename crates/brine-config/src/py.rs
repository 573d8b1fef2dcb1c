//! Python semantics the configuration code needs: truthiness, `==`,
//! `str()`/`repr()` of values, `int()`, and the `os.path`/`glob`/`fnmatch`
//! functions Salt calls (POSIX flavour, as CPython 3.11 implements them).

use std::path::Path;

use serde_json::{Map, Number, Value};

// ---------------------------------------------------------------- values

/// Python truthiness of a config value.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A number as Python compares it (`True == 1 == 1.0`).
fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// Python `==` between two values.
pub fn eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => x.as_f64() == y.as_f64(),
        (Value::Number(x), Value::Number(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| eq(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| eq(v, w)))
        }
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

/// `type(v).__name__`.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// `repr(float)`: shortest round-trip digits, fixed notation for
/// exponents -4..16, else `1e+16` style.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let sci = format!("{:e}", f.abs());
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let sign = if f.is_sign_negative() { "-" } else { "" };
    let body = if (-4..16).contains(&exp) {
        if exp < 0 {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        } else {
            let point = exp as usize + 1;
            if digits.len() <= point {
                format!("{digits}{}.0", "0".repeat(point - digits.len()))
            } else {
                format!("{}.{}", &digits[..point], &digits[point..])
            }
        }
    } else {
        let m = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        format!("{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    };
    format!("{sign}{body}")
}

fn number_str(n: &Number) -> String {
    if n.is_f64() {
        float_repr(n.as_f64().unwrap_or(0.0))
    } else {
        n.to_string()
    }
}

/// `repr(str)`.
pub fn str_repr(s: &str) -> String {
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

/// `repr(v)`.
pub fn repr(v: &Value) -> String {
    match v {
        Value::String(s) => str_repr(s),
        other => to_str(other),
    }
}

/// `str(v)`.
pub fn to_str(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => number_str(n),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(repr).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", str_repr(k), repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `int(v)` for the values a config can hold; `None` where Python raises.
pub fn int(v: &Value) -> Option<i128> {
    match v {
        Value::Bool(b) => Some(i128::from(*b)),
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f.trunc() as i128)),
        Value::String(s) => {
            let t = s.trim();
            let (neg, body) = match t.as_bytes().first()? {
                b'-' => (true, &t[1..]),
                b'+' => (false, &t[1..]),
                _ => (false, t),
            };
            // Digits with single underscores between them, as int() accepts.
            if body.is_empty()
                || body.starts_with('_')
                || body.ends_with('_')
                || body.contains("__")
                || !body.chars().all(|c| c.is_ascii_digit() || c == '_')
            {
                return None;
            }
            let n: i128 = body.replace('_', "").parse().ok()?;
            Some(if neg { -n } else { n })
        }
        _ => None,
    }
}

/// An object from a `json!` literal.
pub fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

// ---------------------------------------------------------------- os.path

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

/// `urllib.parse.urlparse(s).scheme != ""`.
pub fn has_url_scheme(s: &str) -> bool {
    let s = s.trim_start_matches(|c: char| c <= ' ');
    match s.find(':') {
        Some(i) if i > 0 => {
            let scheme = &s[..i];
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }
        _ => false,
    }
}

// ---------------------------------------------------------------- glob

/// `glob.has_magic`.
pub fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

enum Tok {
    Lit(char),
    Any,
    Star,
    Set { negate: bool, ranges: Vec<(char, char)> },
    Never,
}

/// `fnmatch.translate`, as tokens.
fn compile(pat: &str) -> Vec<Tok> {
    let p: Vec<char> = pat.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < p.len() {
        let c = p[i];
        i += 1;
        match c {
            '*' => {
                if !matches!(out.last(), Some(Tok::Star)) {
                    out.push(Tok::Star);
                }
            }
            '?' => out.push(Tok::Any),
            '[' => {
                let mut j = i;
                if j < p.len() && p[j] == '!' {
                    j += 1;
                }
                if j < p.len() && p[j] == ']' {
                    j += 1;
                }
                while j < p.len() && p[j] != ']' {
                    j += 1;
                }
                if j >= p.len() {
                    out.push(Tok::Lit('['));
                    continue;
                }
                let stuff = &p[i..j];
                i = j + 1;
                let (negate, body) = match stuff.first() {
                    Some('!') => (true, &stuff[1..]),
                    _ => (false, stuff),
                };
                if stuff.is_empty() {
                    out.push(Tok::Never);
                    continue;
                }
                let mut ranges = Vec::new();
                let mut k = 0;
                while k < body.len() {
                    if k + 2 < body.len() && body[k + 1] == '-' {
                        if body[k] <= body[k + 2] {
                            ranges.push((body[k], body[k + 2]));
                        }
                        k += 3;
                    } else {
                        ranges.push((body[k], body[k]));
                        k += 1;
                    }
                }
                if negate && ranges.is_empty() {
                    out.push(Tok::Any);
                } else if ranges.is_empty() {
                    out.push(Tok::Never);
                } else {
                    out.push(Tok::Set { negate, ranges });
                }
            }
            c => out.push(Tok::Lit(c)),
        }
    }
    out
}

fn matches(toks: &[Tok], s: &[char]) -> bool {
    match toks.split_first() {
        None => s.is_empty(),
        Some((Tok::Star, rest)) => (0..=s.len()).any(|i| matches(rest, &s[i..])),
        Some((tok, rest)) => {
            let Some((&c, tail)) = s.split_first() else {
                return false;
            };
            let ok = match tok {
                Tok::Lit(l) => *l == c,
                Tok::Any => true,
                Tok::Set { negate, ranges } => ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negate,
                Tok::Never | Tok::Star => false,
            };
            ok && matches(rest, tail)
        }
    }
}

/// `fnmatch.fnmatchcase(name, pat)`.
#[cfg(test)]
pub fn fnmatch(name: &str, pat: &str) -> bool {
    let chars: Vec<char> = name.chars().collect();
    matches(&compile(pat), &chars)
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
    let toks = compile(pat);
    let hidden_ok = pat.starts_with('.');
    listdir(dir, dironly)
        .into_iter()
        .filter(|n| hidden_ok || !n.starts_with('.'))
        .filter(|n| matches(&toks, &n.chars().collect::<Vec<_>>()))
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
    use serde_json::json;

    #[test]
    fn python_reprs() {
        assert_eq!(float_repr(1.0), "1.0");
        assert_eq!(float_repr(0.015), "0.015");
        assert_eq!(float_repr(1e16), "1e+16");
        assert_eq!(float_repr(1e15), "1000000000000000.0");
        assert_eq!(float_repr(1.5e-7), "1.5e-07");
        assert_eq!(float_repr(-0.0001), "-0.0001");
        assert_eq!(float_repr(685230.15), "685230.15");
        assert_eq!(
            to_str(&json!({"a": [1, "x'", null, true, 2.5]})),
            r#"{'a': [1, "x'", None, True, 2.5]}"#
        );
    }

    #[test]
    fn python_equality_and_int() {
        assert!(eq(&json!(1), &json!(true)));
        assert!(eq(&json!(1), &json!(1.0)));
        assert!(!eq(&json!("1"), &json!(1)));
        assert_eq!(int(&json!("1_000")), Some(1000));
        assert_eq!(int(&json!(" 12 ")), Some(12));
        assert_eq!(int(&json!("1.5")), None);
        assert_eq!(int(&json!(2.9)), Some(2));
        assert_eq!(int(&json!([1])), None);
    }

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
        assert_eq!(salt_join("/srv/r", "/etc/x"), "/srv/r/etc/x");
        assert_eq!(salt_join("/", ""), "/");
        assert!(has_url_scheme("udp://localhost:514"));
        assert!(has_url_scheme("file:///dev/log"));
        assert!(!has_url_scheme("/var/log/salt/master"));
        assert!(!has_url_scheme("1abc:x"));
    }

    #[test]
    fn fnmatch_like_python() {
        assert!(fnmatch("a.conf", "*.conf"));
        assert!(!fnmatch("a.conf.bak", "*.conf"));
        assert!(fnmatch("b", "[a-c]"));
        assert!(!fnmatch("b", "[!a-c]"));
        assert!(fnmatch("]", "[]]"));
        assert!(fnmatch("[x", "[x"));
        assert!(fnmatch("x", "?"));
        assert!(fnmatch("a\\b", "a\\b"));
    }

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
