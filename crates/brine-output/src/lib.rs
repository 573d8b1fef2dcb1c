//! Salt's outputters (`salt/output`), byte-identical to Salt 3007's for the
//! same data: `highstate`, `nested`, `json`, `yaml`, `txt`, `raw`,
//! `pprint`, `key`, `newline_values_only`, `no_return`, `quiet` and
//! `progress`, with Salt's colours (`salt.utils.color.get_colors`).
//!
//! [`printout`] is `salt.output.try_printout` (the outputter's text,
//! right-stripped, `nested` when the chosen outputter raises) and
//! [`display`] what `display_output` writes. [`Opts`] holds the options
//! they read, from the master configuration ([`Opts::from_config`]) and the
//! command line's output flags ([`cli::OutputFlags`]), which `salt` and
//! `salt-run` share.

use std::io::Write;
use std::path::PathBuf;

use brine_config::MasterConfig;
use brine_proto::Value;

pub mod cli;
pub mod color;
pub mod highstate;
pub mod json;
pub mod nested;
pub mod pprint;
pub mod progress;
mod py;
mod simple;
pub mod summary;

pub use cli::OutputFlags;
pub use color::{get_colors, Colors};

/// Writing the output failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    OutFile { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Stdout(std::io::Error),
}

/// `output_indent` as the json, yaml and pprint outputters read it.
#[derive(Debug, Clone, PartialEq)]
pub enum Indent {
    /// Not set (the default: json indents by 4, yaml block style).
    Absent,
    /// `output_indent: null`: json on one line.
    Null,
    /// `output_indent: pretty`: json by 4 with sorted keys.
    Pretty,
    /// `--out-indent N` or `output_indent: N`.
    Int(i64),
    /// Any other text (json indents by the text itself).
    Text(String),
}

/// The options Salt's outputters read from `opts`.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Colours on (resolved from `color`, `--no-color`, `--force-color`
    /// and whether stdout is a terminal, as `get_printout` does).
    pub color: bool,
    /// `color` from the configuration, if set.
    pub color_cfg: Option<bool>,
    pub no_color: bool,
    pub force_color: bool,
    /// `strip_colors` (ESC in data shown as `?`; default True).
    pub strip_colors: bool,
    /// `output` / `--out`: overrides the outputter a return asks for
    /// (except `highstate`, as `get_printout`).
    pub output: Option<String>,
    pub output_indent: Indent,
    /// `output_file` / `--out-file`: displays are appended to it.
    pub output_file: Option<PathBuf>,
    pub nested_indent: usize,
    pub state_output: String,
    pub state_verbose: bool,
    pub state_output_diff: bool,
    pub state_output_profile: bool,
    pub state_output_pct: bool,
    /// `state_compress_ids`: states of one ID, SLS and result shown once,
    /// with their count.
    pub state_compress_ids: bool,
    pub state_tabular: bool,
    /// `state_output: filter`'s lists (`str(result)` values).
    pub state_output_exclude: Vec<String>,
    pub state_output_terse: Vec<String>,
    /// The command line's arguments as `parse_input` made them (`arg`):
    /// `exclude=`/`terse=` there override the two lists above.
    pub arg: Vec<Value>,
    /// `--static`: with no outputter named, state functions show as
    /// `highstate`.
    pub static_: bool,
    /// The function run (`fun`), for `--static`.
    pub fun: String,
    /// `-p`: the printout is the progress outputter's (nothing).
    pub progress: bool,
    /// `cli_summary` / `--summary`.
    pub cli_summary: bool,
}

impl Default for Opts {
    /// Salt's master defaults, colour off.
    fn default() -> Opts {
        Opts {
            color: false,
            color_cfg: None,
            no_color: false,
            force_color: false,
            strip_colors: true,
            output: None,
            output_indent: Indent::Absent,
            output_file: None,
            nested_indent: 0,
            state_output: "full".into(),
            state_verbose: true,
            state_output_diff: false,
            state_output_profile: true,
            state_output_pct: false,
            state_compress_ids: false,
            state_tabular: false,
            state_output_exclude: Vec::new(),
            state_output_terse: Vec::new(),
            arg: Vec::new(),
            static_: false,
            fun: String::new(),
            progress: false,
            cli_summary: false,
        }
    }
}

/// A list option Salt accepts as a list or a comma-separated text (only
/// text items can equal the `str()` they are compared with).
fn str_list(v: Option<&serde_json::Value>) -> Vec<String> {
    match v {
        Some(serde_json::Value::String(s)) => s.split(',').map(str::to_string).collect(),
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

impl Opts {
    /// The outputters' options from the master configuration, colour
    /// resolved for this process's stdout.
    pub fn from_config(cfg: &MasterConfig) -> Opts {
        let d = Opts::default();
        let b = |k: &str, def: bool| cfg.get(k).map_or(def, brine_py::truthy);
        let mut o = Opts {
            color_cfg: cfg.get("color").map(brine_py::truthy),
            strip_colors: b("strip_colors", d.strip_colors),
            output: cfg.get_str("output").map(str::to_string),
            output_indent: match cfg.get("output_indent") {
                None => Indent::Absent,
                Some(serde_json::Value::Null) => Indent::Null,
                Some(serde_json::Value::String(s)) if s == "pretty" => Indent::Pretty,
                Some(serde_json::Value::String(s)) => Indent::Text(s.clone()),
                Some(v) => brine_py::int(v).map_or(Indent::Absent, |n| Indent::Int(n as i64)),
            },
            output_file: cfg.get_str("output_file").filter(|s| !s.is_empty()).map(PathBuf::from),
            nested_indent: cfg.get_u64("nested_indent").unwrap_or(0) as usize,
            state_output: cfg.get_str("state_output").unwrap_or("full").to_string(),
            state_verbose: b("state_verbose", d.state_verbose),
            state_output_diff: b("state_output_diff", d.state_output_diff),
            state_output_profile: b("state_output_profile", d.state_output_profile),
            state_output_pct: b("state_output_pct", d.state_output_pct),
            state_compress_ids: b("state_compress_ids", d.state_compress_ids),
            state_tabular: b("state_tabular", d.state_tabular),
            state_output_exclude: str_list(cfg.get("state_output_exclude")),
            state_output_terse: str_list(cfg.get("state_output_terse")),
            cli_summary: b("cli_summary", d.cli_summary),
            ..d
        };
        o.resolve_color();
        o
    }

    /// `get_printout`'s colour rule: `--force-color` wins, then
    /// `--no-color`; otherwise the configured `color`, else on only when
    /// stdout is a terminal.
    pub fn resolve_color(&mut self) {
        self.color = if self.force_color {
            true
        } else if self.no_color {
            false
        } else {
            match self.color_cfg {
                Some(c) => c,
                // SAFETY: isatty only inspects the descriptor.
                None => unsafe { libc::isatty(1) == 1 },
            }
        };
    }

    /// The outputter `get_printout(out, opts)` picks for a return that
    /// asks for `out` (`""` when it names none).
    pub fn outputter(&self, out: &str) -> String {
        let mut out = out.to_string();
        match &self.output {
            Some(o) if o != "highstate" => out = o.clone(),
            _ => {}
        }
        if out.is_empty() && self.static_ {
            if let Some(o) = self.output.as_ref().filter(|o| !o.is_empty()) {
                out = o.clone();
            } else if self.fun.split('.').next() == Some("state") {
                out = "highstate".into();
            }
        }
        if out == "text" {
            out = "txt".into();
        } else if out.is_empty() {
            out = "nested".into();
        }
        if self.progress {
            out = "progress".into();
        }
        out
    }
}

/// The outputters this crate has (Salt's others fall back to nested).
pub const OUTPUTTERS: &[&str] = &[
    "highstate",
    "nested",
    "json",
    "yaml",
    "txt",
    "raw",
    "pprint",
    "key",
    "newline_values_only",
    "no_return",
    "quiet",
    "progress",
];

/// One outputter's `output(data)`: `Ok(None)` where it returns None,
/// `Err` where it raises.
fn run(out: &str, data: &Value, opts: &Opts, retcode: i64) -> Result<Option<String>, highstate::Fallback> {
    let nested = |indent: usize| nested::output(data, get_colors(opts.color), opts.strip_colors, indent, retcode);
    Ok(Some(match out {
        "highstate" => match highstate::output(data, opts, 1)? {
            highstate::Printed::Text(t) | highstate::Printed::Str(t) => t,
            // An int has no rstrip: try_printout falls back to nested.
            highstate::Printed::Int => return Err(highstate::Fallback),
        },
        "json" => simple::json_out(data, opts),
        "yaml" => return simple::yaml(data, opts),
        "txt" => simple::txt(data),
        "raw" => simple::raw(data),
        "pprint" => simple::pprint(data, opts)?,
        "key" => simple::key(data, opts)?,
        "newline_values_only" => simple::newline_values_only(data)?,
        "no_return" => simple::no_return(data, opts)?,
        "quiet" | "progress" => String::new(),
        _ => nested(opts.nested_indent),
    }))
}

/// `salt.output.try_printout(data, out, opts, _retcode=retcode)` after
/// `get_printout`'s choice of outputter: the text, right-stripped, or
/// `None` when the outputter printed nothing at all.
pub fn printout(out: &str, data: &Value, opts: &Opts, retcode: i64) -> Option<String> {
    let chosen = opts.outputter(out);
    let text = match run(&chosen, data, opts, retcode) {
        Ok(t) => t,
        Err(highstate::Fallback) => Some(nested::output(
            data,
            get_colors(opts.color),
            opts.strip_colors,
            opts.nested_indent,
            retcode,
        )),
    };
    text.map(|t| t.trim_end().to_string())
}

/// What `display_output(data, out, opts)` prints on stdout: the printout
/// and a newline, nothing for an empty one.
pub fn display(out: &str, data: &Value, opts: &Opts) -> String {
    display_ret(out, data, opts, 0)
}

/// [`display`] for a minion's return with its `retcode` (the nested
/// outputter shows a failed one in red).
pub fn display_ret(out: &str, data: &Value, opts: &Opts, retcode: i64) -> String {
    match printout(out, data, opts, retcode) {
        Some(t) if !t.is_empty() => format!("{t}\n"),
        _ => String::new(),
    }
}

/// `display_output`: print to stdout, or append to `output_file` (which
/// gets the text and a newline; an empty printout writes nothing).
/// A closed pipe on stdout is not an error, as in Salt.
pub fn write_display(out: &str, data: &Value, opts: &Opts, retcode: i64) -> Result<(), Error> {
    let text = display_ret(out, data, opts, retcode);
    emit(&text, opts)
}

/// Write text that Salt prints with `print_cli` (or appends to
/// `output_file`).
pub fn emit(text: &str, opts: &Opts) -> Result<(), Error> {
    if text.is_empty() {
        return Ok(());
    }
    if let Some(path) = &opts.output_file {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|source| Error::OutFile {
                path: path.clone(),
                source,
            })?;
        return f.write_all(text.as_bytes()).map_err(|source| Error::OutFile {
            path: path.clone(),
            source,
        });
    }
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|_| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Stdout(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(overrides: serde_json::Value) -> MasterConfig {
        MasterConfig::from_overrides(
            std::path::Path::new("/etc/salt"),
            serde_json::from_value(overrides).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn options_from_the_master_config() {
        let o = Opts::from_config(&cfg(serde_json::json!({})));
        assert_eq!(o.state_output, "full");
        assert!(o.state_verbose && o.state_output_profile && o.strip_colors && !o.cli_summary);
        assert_eq!(o.output_indent, Indent::Absent);
        assert_eq!(o.output, None);
        let o = Opts::from_config(&cfg(serde_json::json!({
            "color": true, "state_output": "terse", "state_verbose": false,
            "output_indent": "pretty", "output": "json", "nested_indent": 2,
            "state_output_exclude": "True,None", "cli_summary": true,
        })));
        assert!(o.color && !o.state_verbose && o.cli_summary);
        assert_eq!(o.state_output, "terse");
        assert_eq!(o.output_indent, Indent::Pretty);
        assert_eq!(o.output.as_deref(), Some("json"));
        assert_eq!(o.nested_indent, 2);
        assert_eq!(o.state_output_exclude, ["True", "None"]);
        assert_eq!(
            Opts::from_config(&cfg(serde_json::json!({"output_indent": null}))).output_indent,
            Indent::Null
        );
        assert_eq!(
            Opts::from_config(&cfg(serde_json::json!({"output_indent": -1}))).output_indent,
            Indent::Int(-1)
        );
    }

    #[test]
    fn the_outputter_get_printout_picks() {
        let mut o = Opts::default();
        assert_eq!(o.outputter(""), "nested");
        assert_eq!(o.outputter("highstate"), "highstate");
        assert_eq!(o.outputter("text"), "txt");
        o.output = Some("json".into());
        assert_eq!(o.outputter("highstate"), "json");
        o.output = Some("highstate".into());
        assert_eq!(o.outputter("nested"), "nested");
        o.output = None;
        o.static_ = true;
        o.fun = "state.apply".into();
        assert_eq!(o.outputter(""), "highstate");
        o.fun = "test.ping".into();
        assert_eq!(o.outputter(""), "nested");
        o.progress = true;
        assert_eq!(o.outputter("json"), "progress");
        // A display ends in a newline; an empty printout prints nothing.
        let v = Value::map([("m", Value::Bool(true))]);
        assert_eq!(display("nested", &v, &Opts::default()), "m:\n    True\n");
        assert_eq!(display("quiet", &v, &Opts::default()), "");
    }

    #[test]
    fn displays_append_to_the_out_file() {
        let path = std::env::temp_dir().join(format!("brine-output-{}.txt", std::process::id()));
        std::fs::write(&path, "kept\n").unwrap();
        let mut o = Opts::default();
        OutputFlags {
            output_file: Some(path.clone()),
            output_file_append: true,
            ..OutputFlags::default()
        }
        .apply(&mut o)
        .unwrap();
        let v = Value::map([("m", Value::from("x"))]);
        write_display("nested", &v, &o, 0).unwrap();
        write_display("quiet", &v, &o, 0).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "kept\nm:\n    x\n");
        // Without --out-file-append the file starts empty.
        OutputFlags {
            output_file: Some(path.clone()),
            ..OutputFlags::default()
        }
        .apply(&mut o)
        .unwrap();
        write_display("txt", &v, &o, 0).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "m: x\n");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn returns_summary_counts() {
        let full = |ret: Value, rc: i64| Value::map([("ret", ret), ("retcode", Value::Int(rc))]);
        let got = vec![
            ("a".to_string(), full(Value::Bool(true), 0)),
            ("b".to_string(), full(Value::from("x"), 2)),
            (
                "c".to_string(),
                full(Value::from("Minion did not return. [No response]"), 1),
            ),
        ];
        assert_eq!(
            summary::returns_summary(&got, true),
            "\n\n-------------------------------------------\nSummary\n\
             -------------------------------------------\n# of minions targeted: 3\n\
             # of minions returned: 2\n# of minions that did not return: 1\n\
             # of minions with errors: 1\nMinions not responding: c\nMinions with failures: b\n\
             -------------------------------------------\n"
        );
    }
}
