//! Salt's "Output Options" (`salt.utils.parsers.OutputOptionsMixIn`), the
//! flags every CLI that prints through an outputter takes, parsed once for
//! `salt` and `salt-run`.

use std::path::PathBuf;

use crate::{Indent, Opts};

/// The help text of the group, as Salt's `--help` shows it.
pub const HELP: &str = "  Output Options:
    Configure your preferred output format.

    --out=OUTPUT, --output=OUTPUT
                        Print the output from the command using the
                        specified outputter.
    --out-indent=OUTPUT_INDENT, --output-indent=OUTPUT_INDENT
                        Print the output indented by the provided value in
                        spaces. Negative values disables indentation. Only
                        applicable in outputters that support indentation.
    --out-file=OUTPUT_FILE, --output-file=OUTPUT_FILE
                        Write the output to the specified file.
    --out-file-append, --output-file-append
                        Append the output to the specified file.
    --no-color, --no-colour
                        Disable all colored output.
    --force-color, --force-colour
                        Force colored output.
    --state-output=STATE_OUTPUT, --state_output=STATE_OUTPUT
                        Override the configured state_output value for
                        minion output. One of 'full', 'terse', 'mixed',
                        'changes' or 'filter'. Default: 'none'.
    --state-verbose=STATE_VERBOSE, --state_verbose=STATE_VERBOSE
                        Override the configured state_verbose value for
                        minion output. Set to True or False. Default: none.
";

/// The output flags given on a command line (`None`: not given, the
/// configuration's value stands).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutputFlags {
    pub output: Option<String>,
    pub output_indent: Option<i64>,
    pub output_file: Option<PathBuf>,
    pub output_file_append: bool,
    pub no_color: bool,
    pub force_color: bool,
    pub state_output: Option<String>,
    /// `--state-verbose`: "True"/"true" and "False"/"false" are booleans;
    /// any other text is kept, and a non-empty text is true to Salt.
    pub state_verbose: Option<bool>,
}

impl OutputFlags {
    /// If `args[i]` is an output flag, take it (and its value, inline
    /// after `=` or the next argument) and answer how many arguments it
    /// used; `Ok(0)` when it is not one of these flags. Errors are
    /// optparse's messages.
    pub fn take(&mut self, args: &[String], i: usize) -> Result<usize, String> {
        let a = &args[i];
        if !a.starts_with("--") {
            return Ok(0);
        }
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (a.as_str(), None),
        };
        let takes_value = matches!(
            flag,
            "--out"
                | "--output"
                | "--out-indent"
                | "--output-indent"
                | "--out-file"
                | "--output-file"
                | "--state-output"
                | "--state_output"
                | "--state-verbose"
                | "--state_verbose"
        );
        let switch = matches!(
            flag,
            "--out-file-append"
                | "--output-file-append"
                | "--no-color"
                | "--no-colour"
                | "--force-color"
                | "--force-colour"
        );
        if !takes_value && !switch {
            return Ok(0);
        }
        if switch {
            if inline.is_some() {
                return Err(format!("{flag} option does not take a value"));
            }
            match flag {
                "--out-file-append" | "--output-file-append" => self.output_file_append = true,
                "--no-color" | "--no-colour" => self.no_color = true,
                _ => self.force_color = true,
            }
            return Ok(1);
        }
        let (value, used) = match inline {
            Some(v) => (v, 1),
            None => match args.get(i + 1) {
                Some(v) => (v.clone(), 2),
                None => return Err(format!("{flag} option requires 1 argument")),
            },
        };
        match flag {
            "--out" | "--output" => self.output = Some(value),
            "--out-indent" | "--output-indent" => {
                let n = brine_py::int_str(&value)
                    .and_then(|n| i64::try_from(n).ok())
                    .ok_or_else(|| format!("option {flag}: invalid integer value: {}", brine_py::str_repr(&value)))?;
                self.output_indent = Some(n);
            }
            "--out-file" | "--output-file" => self.output_file = Some(PathBuf::from(value)),
            "--state-output" | "--state_output" => self.state_output = Some(value),
            _ => {
                self.state_verbose = Some(match value.as_str() {
                    "True" | "true" => true,
                    "False" | "false" => false,
                    other => !other.is_empty(),
                })
            }
        }
        Ok(used)
    }

    /// Put the flags over the configuration's options (Salt's
    /// `__merge_config_with_cli`: what was given on the command line wins),
    /// truncate `--out-file` unless `--out-file-append` (Salt's
    /// `process_output_file`), and resolve the colour again.
    pub fn apply(&self, opts: &mut Opts) -> Result<(), String> {
        if let Some(o) = &self.output {
            opts.output = Some(o.clone());
        }
        if let Some(n) = self.output_indent {
            opts.output_indent = Indent::Int(n);
        }
        if let Some(p) = &self.output_file {
            opts.output_file = Some(p.clone());
            if !self.output_file_append && p.is_file() {
                std::fs::File::create(p).map_err(|e| format!("{}: Access denied: {e}", p.display()))?;
            }
        }
        if let Some(s) = &self.state_output {
            opts.state_output = s.clone();
        }
        if let Some(v) = self.state_verbose {
            opts.state_verbose = v;
        }
        opts.no_color |= self.no_color;
        opts.force_color |= self.force_color;
        opts.resolve_color();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<(OutputFlags, Vec<String>), String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut f = OutputFlags::default();
        let mut rest = Vec::new();
        let mut i = 0;
        while i < args.len() {
            match f.take(&args, i)? {
                0 => {
                    rest.push(args[i].clone());
                    i += 1
                }
                n => i += n,
            }
        }
        Ok((f, rest))
    }

    #[test]
    fn flags() {
        let (f, rest) = parse(&[
            "--out",
            "json",
            "x",
            "--out-indent=-1",
            "--no-colour",
            "--state_verbose=false",
            "--state-output",
            "terse",
        ])
        .unwrap();
        assert_eq!(rest, ["x"]);
        assert_eq!(f.output.as_deref(), Some("json"));
        assert_eq!(f.output_indent, Some(-1));
        assert!(f.no_color && !f.force_color);
        assert_eq!(f.state_verbose, Some(false));
        assert_eq!(f.state_output.as_deref(), Some("terse"));
        assert!(parse(&["--out-indent", "x"])
            .unwrap_err()
            .contains("invalid integer value: 'x'"));
        assert!(parse(&["--out"]).is_err());
        let mut o = Opts::default();
        f.apply(&mut o).unwrap();
        assert_eq!(o.output_indent, Indent::Int(-1));
        assert!(!o.color && !o.state_verbose);
        let (f, _) = parse(&["--force-color"]).unwrap();
        f.apply(&mut o).unwrap();
        assert!(o.color);
    }
}
