//! Python's `fnmatch` on POSIX (`fnmatch.fnmatch` is `fnmatchcase` there:
//! case-sensitive, `*` crosses `/`): the glob Salt matches minion ids,
//! grain values, key names, event tags and file names with.

use std::cell::RefCell;
use std::collections::HashMap;

thread_local! {
    /// Compiled patterns, as `fnmatch` keeps its own (bounded here).
    static COMPILED: RefCell<HashMap<String, Glob>> = RefCell::new(HashMap::new());
}

/// `fnmatch.fnmatch(name, pat)`, the compiled pattern kept for the next
/// call with the same pattern.
pub fn fnmatch(name: &str, pat: &str) -> bool {
    // Matched in place: a cloned Regex starts with empty match caches,
    // which costs more than the match itself on the event hot path.
    with_cached(pat, |g| g.matches(name))
}

/// `f` with this thread's compiled `pat` (compiled and kept on first use).
fn with_cached<T>(pat: &str, f: impl FnOnce(&Glob) -> T) -> T {
    COMPILED.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(g) = cache.get(pat) {
            return f(g);
        }
        if cache.len() >= 512 {
            cache.clear();
        }
        let g = cache.entry(pat.to_string()).or_insert_with(|| Glob::new(pat));
        f(g)
    })
}

/// A compiled `fnmatch` pattern, for matching many names (one regex
/// compile per pattern, not per name).
#[derive(Debug, Clone)]
pub struct Glob(Option<regex::Regex>);

impl Glob {
    pub fn new(pat: &str) -> Glob {
        let re = regex::Regex::new(&translate(pat));
        if let Err(e) = &re {
            log::warn!("glob {pat:?} has no regex equivalent here: {e}");
        }
        Glob(re.ok())
    }

    /// The compiled `pat` from this thread's cache (compiled and kept on
    /// first use), so a pattern repeated many times, as in a long compound
    /// target, is compiled once.
    pub fn cached(pat: &str) -> Glob {
        with_cached(pat, Glob::clone)
    }

    /// `fnmatch.fnmatch(name, pattern)`.
    pub fn matches(&self, name: &str) -> bool {
        self.0.as_ref().is_some_and(|re| re.is_match(name))
    }
}

/// One member of a bracket expression.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Member {
    Char(char),
    Range(char, char),
}

/// `fnmatch.translate` as a Rust regex anchored at both ends. `*` runs
/// collapse to one `.*`; `[...]` follows Python's reading of ranges
/// (the chunking at `-`, empty ranges dropped, `[!...]` negates, an
/// unclosed `[` is a literal).
fn translate(pat: &str) -> String {
    let p: Vec<char> = pat.chars().collect();
    let n = p.len();
    let mut out = String::from("(?s)^");
    let mut i = 0;
    while i < n {
        let c = p[i];
        i += 1;
        match c {
            '*' => {
                while i < n && p[i] == '*' {
                    i += 1;
                }
                out.push_str(".*");
            }
            '?' => out.push('.'),
            '[' => {
                let mut j = i;
                if j < n && p[j] == '!' {
                    j += 1;
                }
                if j < n && p[j] == ']' {
                    j += 1;
                }
                while j < n && p[j] != ']' {
                    j += 1;
                }
                if j >= n {
                    out.push_str("\\[");
                    continue;
                }
                out.push_str(&bracket(&p, i, j));
                i = j + 1;
            }
            other => out.push_str(&regex::escape(other.encode_utf8(&mut [0; 4]))),
        }
    }
    out.push('$');
    out
}

/// The regex for the bracket expression `p[start..end]` (between `[` and
/// `]`).
fn bracket(p: &[char], start: usize, end: usize) -> String {
    let inner = &p[start..end];
    // Chunks separated by range dashes: a dash right at the start (after
    // a `!`) is literal, and a dash found right after the previous range
    // dash's upper end belongs to the next chunk.
    let mut chunks: Vec<Vec<char>> = Vec::new();
    if !inner.contains(&'-') {
        chunks.push(inner.to_vec());
    } else {
        let mut from = start;
        let mut k = if p[start] == '!' { start + 2 } else { start + 1 };
        while let Some(d) = (k..end).find(|&x| p[x] == '-') {
            chunks.push(p[from..d].to_vec());
            from = d + 1;
            k = d + 3;
        }
        let last = &p[from..end];
        if last.is_empty() {
            if let Some(prev) = chunks.last_mut() {
                prev.push('-');
            }
        } else {
            chunks.push(last.to_vec());
        }
        // Drop empty ranges (upper end below the lower), merging the chunks.
        let mut k = chunks.len();
        while k > 1 {
            k -= 1;
            let (a, b) = (chunks[k - 1].last().copied(), chunks[k].first().copied());
            if let (Some(a), Some(b)) = (a, b) {
                if a > b {
                    let mut merged: Vec<char> = chunks[k - 1][..chunks[k - 1].len() - 1].to_vec();
                    merged.extend_from_slice(&chunks[k][1..]);
                    chunks[k - 1] = merged;
                    chunks.remove(k);
                }
            }
        }
    }
    let total: usize = chunks.iter().map(Vec::len).sum::<usize>() + chunks.len().saturating_sub(1);
    if total == 0 {
        // Python's `(?!)`: never matches.
        return "[^\\s\\S]".into();
    }
    if total == 1 && chunks.len() == 1 && chunks[0] == ['!'] {
        return ".".into();
    }
    let negate = chunks.first().and_then(|c| c.first()) == Some(&'!');
    if negate {
        chunks[0].remove(0);
    }
    // Members as Python's `re` reads the joined class: the dash between
    // two chunks makes a range of its neighbours; every other character
    // (dashes inside chunks were escaped) is literal.
    let mut members: Vec<Member> = Vec::new();
    for (idx, chunk) in chunks.iter().enumerate() {
        let mut chars = chunk.iter().copied();
        if idx > 0 {
            match (members.last().copied(), chars.next()) {
                (Some(Member::Char(lo)), Some(hi)) => {
                    members.pop();
                    members.push(Member::Range(lo, hi));
                }
                (_, Some(first)) => {
                    members.push(Member::Char('-'));
                    members.push(Member::Char(first));
                }
                (_, None) => members.push(Member::Char('-')),
            }
        }
        members.extend(chars.map(Member::Char));
    }
    let esc = |c: char| regex::escape(c.encode_utf8(&mut [0; 4]));
    let mut class = String::from("[");
    if negate {
        class.push('^');
    }
    for m in members {
        match m {
            Member::Char(c) => class.push_str(&esc(c)),
            Member::Range(a, b) => {
                class.push_str(&esc(a));
                class.push('-');
                class.push_str(&esc(b));
            }
        }
    }
    class.push(']');
    class
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_is_pythons() {
        assert!(fnmatch("web1", "web*"));
        assert!(fnmatch("a/b", "a*"));
        assert!(fnmatch("web1", "web?"));
        assert!(!fnmatch("web10", "web?"));
        assert!(fnmatch("web1", "web[0-9]"));
        assert!(!fnmatch("weba", "web[!a-z]"));
        assert!(fnmatch("web[", "web["));
        assert!(fnmatch("a.b", "a.b"));
        assert!(!fnmatch("axb", "a.b"));
        assert!(fnmatch("]", "[]]"));
        assert!(!fnmatch("Web1", "web*"));
        assert!(fnmatch("a\nb", "a*b"));
        assert!(fnmatch("a.conf", "*.conf"));
        assert!(!fnmatch("a.conf.bak", "*.conf"));
        assert!(fnmatch("b", "[a-c]"));
        assert!(!fnmatch("b", "[!a-c]"));
        assert!(fnmatch("[x", "[x"));
        assert!(fnmatch("a\\b", "a\\b"));
        assert!(fnmatch("", "*") && !fnmatch("", "?"));
    }

    #[test]
    fn compiled_patterns_are_reused() {
        let g = Glob::new("web*");
        assert!(g.matches("web1") && !g.matches("db1"));
        for i in 0..600 {
            assert!(fnmatch(&format!("m{i}"), &format!("m{i}")));
        }
        assert!(COMPILED.with(|c| c.borrow().len()) <= 512);
        assert!(fnmatch("m599", "m*"));
    }

    #[test]
    fn brackets_read_as_python_reads_them() {
        // (pattern, name, fnmatch result in Python 3.11)
        for (pat, name, want) in [
            ("[a-c-b]", "b", true),
            ("[a-c-b]", "-", true),
            ("[a-c-b]", "d", false),
            ("[z-a]", "z", false),
            ("[!z-a]", "q", true),
            ("[a-]", "-", true),
            ("[-a]", "-", true),
            ("[!-a]", "b", true),
            ("[!-a]", "-", false),
            ("[a--c]", "c", true),
            ("[a--c]", "a", false),
            ("[--a]", ".", true),
            ("[--a]", ",", false),
            ("[]-a]", "^", true),
            ("[!]-a]", "b", true),
            ("[^a]", "^", true),
            ("[[]", "[", true),
            ("[\\]", "\\", true),
            ("[a&&b]", "&", true),
            ("[!]", "!", false),
            ("[!]", "[!]", true),
        ] {
            assert_eq!(fnmatch(name, pat), want, "fnmatch({name:?}, {pat:?})");
        }
    }
}
