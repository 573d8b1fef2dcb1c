//! `repr()` of Python's floats, strings and bytes; `str()` of an `OSError`.

/// `repr(float)`: shortest round-trip digits, fixed notation for decimal
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

/// Characters `str.isprintable()` rejects (close enough: controls, the
/// separators other than the space, format characters, surrogates).
fn py_unprintable(c: char) -> bool {
    let n = c as u32;
    n < 0x20
        || (0x7f..=0xa0).contains(&n)
        || n == 0xad
        || n == 0x1680
        || (0x2000..=0x200f).contains(&n)
        || (0x2028..=0x202f).contains(&n)
        || (0x205f..=0x206f).contains(&n)
        || n == 0x3000
        || n == 0xfeff
        || (0xfff9..=0xfffb).contains(&n)
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
            c if py_unprintable(c) => {
                let n = c as u32;
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02x}"));
                } else {
                    out.push_str(&format!("\\u{n:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

/// `str()` of the `OSError` Python raises for `e` on `path`:
/// `[Errno 13] Permission denied: '/etc/x'` (the message alone when `e`
/// carries no errno). A path with a NUL never reaches the system: Python
/// raises `ValueError: embedded null byte` for it.
pub fn os_error(e: &std::io::Error, path: &str) -> String {
    if path.contains('\0') {
        return "embedded null byte".into();
    }
    match e.raw_os_error() {
        Some(code) => {
            let text = std::io::Error::from_raw_os_error(code).to_string();
            let strerror = text
                .strip_suffix(&format!(" (os error {code})"))
                .unwrap_or(&text)
                .to_string();
            format!("[Errno {code}] {strerror}: {}", str_repr(path))
        }
        None => e.to_string(),
    }
}

/// `repr(bytes)`.
pub fn bytes_repr(b: &[u8]) -> String {
    let q = if b.contains(&b'\'') && !b.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut out = format!("b{q}");
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            c if c as char == q => {
                out.push('\\');
                out.push(c as char);
            }
            0x20..=0x7e => out.push(c as char),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push(q);
    out
}

/// Python's `json` string encoder (`py_encode_basestring`, or its
/// `_ascii` form with `ensure_ascii`): `s` quoted onto `out`, with quotes,
/// backslashes and control characters escaped (and, with
/// `ensure_ascii`, everything past `~` as UTF-16 `\\uXXXX` units).
pub fn json_str(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if ensure_ascii && (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_reprs_are_pythons() {
        for (f, want) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (0.015, "0.015"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1.5e-5, "1.5e-05"),
            (1.5e-7, "1.5e-07"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (-0.0001, "-0.0001"),
            (123456.789, "123456.789"),
            (685230.15, "685230.15"),
            (-0.0, "-0.0"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
        ] {
            assert_eq!(float_repr(f), want, "{f}");
        }
    }

    #[test]
    fn str_and_bytes_reprs_are_pythons() {
        assert_eq!(str_repr("it's"), "\"it's\"");
        assert_eq!(str_repr("a'b\"c\n"), "'a\\'b\"c\\n'");
        assert_eq!(str_repr("a\nb"), "'a\\nb'");
        assert_eq!(str_repr("\u{7f}\u{a0}\u{2028}é"), "'\\x7f\\xa0\\u2028é'");
        assert_eq!(bytes_repr(b"\x00a'"), "b\"\\x00a'\"");
        assert_eq!(bytes_repr("é".as_bytes()), "b'\\xc3\\xa9'");
    }

    #[test]
    fn os_errors_as_python_prints_them() {
        let denied = std::io::Error::from_raw_os_error(13);
        assert_eq!(os_error(&denied, "/etc/x"), "[Errno 13] Permission denied: '/etc/x'");
        let missing = std::io::Error::from_raw_os_error(2);
        assert_eq!(
            os_error(&missing, "/a'b"),
            "[Errno 2] No such file or directory: \"/a'b\""
        );
        assert_eq!(os_error(&missing, "a\0b"), "embedded null byte");
    }
}
