//! Python `re.match` with Rust's `regex`: Salt's pcre targets, `*_pcre`
//! grain/pillar expressions and the `mine_get` ACL are Python regexes
//! matched at the start of the string.
//!
//! The syntax both engines share is passed through; the spots where they
//! read the same text differently are rewritten: `\Z`, `$` (Python's also
//! matches before a final newline), `{` that is not a repetition (a
//! literal in Python), and `[`, `&`, `~` inside a class (literals in
//! Python, set syntax in Rust). What Rust's engine lacks — look-around,
//! backreferences, possessive and atomic groups — is refused as an invalid
//! pattern.

use super::TargetError;

/// A compiled Python pattern, used as `re.match` uses it.
#[derive(Debug, Clone)]
pub struct PyRegex(regex::Regex);

impl PyRegex {
    pub fn new(pat: &str) -> Result<PyRegex, TargetError> {
        let translated = translate(pat);
        regex::Regex::new(&format!("^(?:{translated})"))
            .map(PyRegex)
            .map_err(|e| TargetError::Regex(pat.to_string(), e.to_string()))
    }

    /// `bool(re.match(pattern, s))`.
    pub fn matches(&self, s: &str) -> bool {
        self.0.is_match(s)
    }
}

/// Rewrite the places where Python and Rust read a pattern differently.
fn translate(pat: &str) -> String {
    let p: Vec<char> = pat.chars().collect();
    let mut out = String::with_capacity(pat.len() + 8);
    let mut i = 0;
    while i < p.len() {
        let c = p[i];
        match c {
            '\\' if i + 1 < p.len() => {
                if p[i + 1] == 'Z' {
                    out.push_str("\\z");
                } else {
                    out.push('\\');
                    out.push(p[i + 1]);
                }
                i += 2;
            }
            '$' => {
                out.push_str("(?:\\n?\\z)");
                i += 1;
            }
            '{' => match repetition(&p[i..]) {
                Some((text, used)) => {
                    out.push_str(&text);
                    i += used;
                }
                None => {
                    out.push_str("\\{");
                    i += 1;
                }
            },
            '[' => {
                i = class(&p, i, &mut out);
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    out
}

/// Python's `{m}`, `{m,}`, `{,n}`, `{m,n}`, `{,}` at the start of `p`:
/// the Rust spelling and the characters used.
fn repetition(p: &[char]) -> Option<(String, usize)> {
    let mut i = 1;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < p.len() && p[*i].is_ascii_digit() {
            *i += 1;
        }
        p[start..*i].iter().collect::<String>()
    };
    if p.get(1) == Some(&'}') {
        return None;
    }
    let lo = digits(&mut i);
    let hi = if p.get(i) == Some(&',') {
        i += 1;
        Some(digits(&mut i))
    } else {
        None
    };
    if p.get(i) != Some(&'}') {
        return None;
    }
    let lo = if lo.is_empty() { "0".to_string() } else { lo };
    let text = match hi {
        None => format!("{{{lo}}}"),
        Some(h) => format!("{{{lo},{h}}}"),
    };
    Some((text, i + 1))
}

/// Copy the class starting at `p[start] == '['`; return the index after
/// it. An unclosed class is copied as is (both engines refuse it).
fn class(p: &[char], start: usize, out: &mut String) -> usize {
    let mut i = start + 1;
    out.push('[');
    if p.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    if p.get(i) == Some(&']') {
        out.push_str("\\]");
        i += 1;
    }
    while i < p.len() {
        match p[i] {
            ']' => {
                out.push(']');
                return i + 1;
            }
            '\\' if i + 1 < p.len() => {
                out.push('\\');
                out.push(p[i + 1]);
                i += 2;
            }
            c @ ('[' | '&' | '~') => {
                out.push('\\');
                out.push(c);
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pat: &str, s: &str) -> bool {
        PyRegex::new(pat).unwrap().matches(s)
    }

    #[test]
    fn matches_as_re_match_does() {
        assert!(m("web", "web1"));
        assert!(!m("eb", "web1"));
        assert!(m("web\\d$", "web1"));
        assert!(m("web1$", "web1\n"));
        assert!(!m("web1\\Z", "web1\n"));
        assert!(m("a{", "a{"));
        assert!(m("a{}", "a{}"));
        assert!(m("a{,2}b", "aab"));
        assert!(m("a{2}b", "aab"));
        assert!(m("[[]", "["));
        assert!(m("[]a]", "]"));
        assert!(m("[a&&b]", "&"));
        assert!(m("a|b", "b"));
        assert!(m("(?P<x>w)eb", "web"));
        assert!(PyRegex::new("web(").is_err());
        assert!(PyRegex::new("(?=a)").is_err(), "look-ahead is refused");
    }
}
