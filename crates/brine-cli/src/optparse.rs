//! Command-line words as Python's optparse reads them, for Salt's CLIs.

/// A word as a flag and its inline value: `--out=json` → (`--out`,
/// `json`); `-cDIR` → (`-c`, `DIR`) for the short options in
/// `short_with_value`; anything else is the flag alone.
pub fn split<'a>(word: &'a str, short_with_value: &[&str]) -> (&'a str, Option<&'a str>) {
    if let Some(rest) = word.strip_prefix("--") {
        if let Some((f, v)) = rest.split_once('=') {
            return (&word[..f.len() + 2], Some(v));
        }
        return (word, None);
    }
    if word.len() > 2 && word.starts_with('-') {
        let (f, v) = word.split_at(2);
        if short_with_value.contains(&f) {
            return (f, Some(v));
        }
    }
    (word, None)
}

/// The value of `flag`: its inline value, else the next word (and `i`
/// moves past it). optparse's error when there is none.
pub fn value(args: &[String], i: &mut usize, flag: &str, inline: Option<&str>) -> Result<String, String> {
    if let Some(v) = inline {
        return Ok(v.to_string());
    }
    let v = args
        .get(*i)
        .cloned()
        .ok_or_else(|| format!("{flag} option requires 1 argument"))?;
    *i += 1;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_as_optparse_reads_them() {
        assert_eq!(split("--out=json", &[]), ("--out", Some("json")));
        assert_eq!(split("--out", &[]), ("--out", None));
        assert_eq!(split("-c/etc/salt", &["-c"]), ("-c", Some("/etc/salt")));
        assert_eq!(split("-cx", &[]), ("-cx", None));
        assert_eq!(split("-L", &["-c"]), ("-L", None));
        let args: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let mut i = 1;
        assert_eq!(value(&args, &mut i, "-c", None).unwrap(), "b");
        assert_eq!(i, 2);
        assert_eq!(
            value(&args, &mut i, "-c", None).unwrap_err(),
            "-c option requires 1 argument"
        );
        assert_eq!(value(&args, &mut i, "-c", Some("x")).unwrap(), "x");
    }
}
