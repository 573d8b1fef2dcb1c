//! `shlex.split(s)` (POSIX mode, no comments), as Salt's
//! `salt.utils.args.shlex_split` turns a command line into an argv when
//! no shell runs it.

use crate::Error;

const WHITESPACE: [char; 4] = [' ', '\t', '\r', '\n'];

/// The words of `s`: whitespace separates them, `'…'` is literal, `"…"`
/// keeps a backslash unless it escapes `"` or `\`, a backslash outside
/// quotes escapes any character, and quoted empty strings are words.
pub fn shlex_split(s: &str) -> Result<Vec<String>, Error> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if WHITESPACE.contains(&c) => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\\' => {
                cur.push(chars.next().ok_or(Error::Shlex("No escaped character"))?);
                in_word = true;
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next().ok_or(Error::Shlex("No closing quotation"))? {
                        '\'' => break,
                        x => cur.push(x),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next().ok_or(Error::Shlex("No closing quotation"))? {
                        '"' => break,
                        '\\' => match chars.next().ok_or(Error::Shlex("No escaped character"))? {
                            x @ ('"' | '\\') => cur.push(x),
                            x => {
                                cur.push('\\');
                                cur.push(x);
                            }
                        },
                        x => cur.push(x),
                    }
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<String> {
        shlex_split(s).unwrap()
    }

    #[test]
    fn as_python_splits() {
        assert_eq!(split("  cat  /etc/x.yaml \n"), ["cat", "/etc/x.yaml"]);
        assert_eq!(split(r#"echo {\"arg\":\"value\"}"#), ["echo", r#"{"arg":"value"}"#]);
        assert_eq!(split(r#"a'b c'"d e" '' """#), ["ab cd e", "", ""]);
        assert_eq!(split(r#""a\b \" \\" 'x\y'"#), [r#"a\b " \"#, r"x\y"]);
        assert_eq!(split(r"a\ b c\\d"), ["a b", r"c\d"]);
        assert_eq!(split("# not a comment"), ["#", "not", "a", "comment"]);
        assert!(split("").is_empty());
        for bad in ["'open", "\"open", "trailing\\", "\"esc\\"] {
            assert!(shlex_split(bad).is_err(), "{bad}");
        }
    }
}
