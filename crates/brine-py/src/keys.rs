//! Salt's `clean_key`, how public keys are stored and compared.

/// `clean_key`: `"\n".join(s.strip().splitlines())`, how Salt stores and
/// compares public keys. Uses Python's definitions: `strip` removes what
/// `str.isspace` calls whitespace (Unicode White_Space plus U+001C..U+001F)
/// and `splitlines` breaks at `\n`, `\r\n`, `\r`, `\v`, `\f`, U+001C..U+001E,
/// U+0085, U+2028 and U+2029.
pub fn clean_key(s: &str) -> String {
    fn py_isspace(c: char) -> bool {
        c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
    }
    fn line_break(c: char) -> bool {
        matches!(
            c,
            '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{1c}' | '\u{1d}' | '\u{1e}' | '\u{85}' | '\u{2028}' | '\u{2029}'
        )
    }
    let t = s.trim_matches(py_isspace);
    let mut out = String::with_capacity(t.len());
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        if line_break(c) {
            if c == '\r' && chars.peek() == Some(&'\n') {
                chars.next();
            }
            out.push('\n');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_key_is_pythons() {
        // (input, "\n".join(input.strip().splitlines()) from CPython 3)
        let cases = [
            ("  a\r\nb\r\n\r\nc \n\n", "a\nb\n\nc"),
            (
                "\u{1f}a\u{1c}b\u{1d}\u{1e}c\u{2028}d\u{2029}e\u{85}f\u{0b}g\u{0c}h\rI\u{1f}",
                "a\nb\n\nc\nd\ne\nf\ng\nh\nI",
            ),
            (" \t\n ", ""),
            ("", ""),
            ("x", "x"),
            ("a\u{a0}b\u{3000}", "a\u{a0}b"),
        ];
        for (input, want) in cases {
            assert_eq!(clean_key(input), want, "{input:?}");
        }
    }

    /// The shared byte-exact vectors Salt's own functions produced
    /// (`shared/docs/salt-test-vectors.json` beside the clone; a missing
    /// file fails the test).
    fn vector(key: &str) -> String {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/docs/salt-test-vectors.json"
        );
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
            panic!("Salt test vectors missing at {path}: {e} (the repo expects shared/ beside the clone)")
        });
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        v["keys"][key]
            .as_str()
            .unwrap_or_else(|| panic!("vector keys.{key} missing or not a string"))
            .to_string()
    }

    #[test]
    fn clean_key_matches_salts_vectors() {
        for (raw, clean) in [
            ("minion_pub", "minion_pub_clean_key"),
            ("master_pub", "master_pub_clean_key"),
        ] {
            let (raw, clean) = (vector(raw), vector(clean));
            assert_eq!(clean_key(&raw), clean);
            assert_eq!(clean_key(&clean), clean);
            assert_eq!(clean_key(&raw.replace('\n', "\r\n")), clean);
        }
    }

    #[test]
    fn clean_key_of_a_pem_with_crlf_and_blank_lines() {
        let pem = "-----BEGIN PUBLIC KEY-----\r\nAAAA\r\nBBBB\r\n-----END PUBLIC KEY-----\r\n\r\n";
        assert_eq!(
            clean_key(pem),
            "-----BEGIN PUBLIC KEY-----\nAAAA\nBBBB\n-----END PUBLIC KEY-----"
        );
    }
}
