//! Man pages and shell completions for Salt's commands, generated from the
//! help text each command prints. The parsers of `salt-master`, `salt`,
//! `salt-run` and `salt-key` are hand-written in optparse's manner, and
//! their help texts are laid out as optparse prints them: a `Usage:` line,
//! a description, `Options:` and indented option groups (`  Logging
//! Options:`), each option's spellings on the left (`-c CONFIG_DIR,
//! --config-dir=CONFIG_DIR`) and its help in a column on the right. That
//! text is read back into a [`Help`] and rendered as a roff page (section
//! 1), a bash completion and a zsh completion, so what is documented and
//! completed is what `--help` shows; the tests check every spelling against
//! the parsers.

use std::fmt::Write as _;

/// One spelling of an option: `-c` or `--config-dir`, with the name of its
/// value when it takes one (`CONFIG_DIR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub name: String,
    pub metavar: Option<String>,
}

impl Flag {
    pub fn is_long(&self) -> bool {
        self.name.starts_with("--")
    }
}

/// What a section of the help lists, in its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// One or more spellings sharing one help text (optparse prints an
    /// option's spellings together; salt-key lists several options on one
    /// entry).
    Option { flags: Vec<Flag>, help: String },
    /// A word the command takes as its first argument, with its help
    /// (`  status    print …` in a section of its own).
    Command { name: String, help: String },
    /// A paragraph (a group's description).
    Text(String),
}

/// A titled part of the help: `Options`, then optparse's groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub title: String,
    pub items: Vec<Item>,
}

/// A help text, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Help {
    /// The command: the first word of the usage line.
    pub name: String,
    /// The usage lines without `Usage: ` (`salt-key [options]`).
    pub usage: Vec<String>,
    /// The paragraphs between the usage and the first section.
    pub description: Vec<String>,
    pub sections: Vec<Section>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("the help text does not start with a `Usage: ` line")]
    NoUsage,
    #[error("line {line}: {word:?} in an option's spellings is not an option")]
    NotAnOption { line: usize, word: String },
    #[error("line {line}: the option's spellings end with a comma and nothing follows")]
    Unfinished { line: usize },
}

/// The column-ish boundary between an option line (indented by 2 or 4, as
/// optparse's groups are) and a help line continued in the help column
/// (24).
const OPTION_INDENT_MAX: usize = 8;

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// A group title: `Options:`, `  Logging Options:` — words of letters,
/// ending with a colon, nothing else on the line.
fn is_title(line: &str) -> bool {
    let t = line.trim();
    let Some(words) = t.strip_suffix(':') else {
        return false;
    };
    words.starts_with(|c: char| c.is_ascii_uppercase())
        && !words.contains("  ")
        && words.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
}

/// A command entry: an indented lower-case word, two or more spaces, its
/// help.
fn command_entry(line: &str) -> Option<(String, String)> {
    let t = line.trim_start();
    if indent(line) == 0 || indent(line) >= OPTION_INDENT_MAX {
        return None;
    }
    let (word, rest) = t.split_once("  ")?;
    let ok = word.starts_with(|c: char| c.is_ascii_lowercase())
        && word
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    let help = rest.trim();
    (ok && !help.is_empty()).then(|| (word.to_string(), help.to_string()))
}

/// One spelling: `-c CONFIG_DIR`, `--config-dir=CONFIG_DIR`, `-V`,
/// `--versions-report`.
fn flag(word: &str) -> Option<Flag> {
    let word = word.trim();
    let (name, metavar) = match word.split_once(['=', ' ']) {
        Some((n, m)) => (n, Some(m.trim().to_string())),
        None => (word, None),
    };
    let body = name.strip_prefix("--").or_else(|| name.strip_prefix('-'))?;
    let ok = body.starts_with(|c: char| c.is_ascii_alphanumeric())
        && body.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && (name.starts_with("--") || body.len() == 1);
    ok.then(|| Flag {
        name: name.to_string(),
        metavar: metavar.filter(|m| !m.is_empty()),
    })
}

fn append(text: &mut String, more: &str) {
    if !text.is_empty() {
        text.push(' ');
    }
    text.push_str(more.trim());
}

/// Read an optparse-style help text.
pub fn parse(text: &str) -> Result<Help, ParseError> {
    let mut lines = text
        .lines()
        .enumerate()
        .skip_while(|(_, l)| l.trim().is_empty())
        .peekable();
    let (_, first) = lines.next().ok_or(ParseError::NoUsage)?;
    let first = first.strip_prefix("Usage: ").ok_or(ParseError::NoUsage)?;
    let mut usage = vec![first.trim().to_string()];
    // optparse aligns further usage lines under the first.
    while let Some((_, l)) = lines.next_if(|(_, l)| l.starts_with(' ') && !l.trim().is_empty()) {
        usage.push(l.trim().to_string());
    }
    let name = usage[0].split_whitespace().next().unwrap_or_default().to_string();
    let mut help = Help {
        name,
        usage,
        description: Vec::new(),
        sections: Vec::new(),
    };
    // Whether the next non-blank line continues the last paragraph or item.
    let mut open = false;
    while let Some((n, line)) = lines.next() {
        if line.trim().is_empty() {
            open = false;
            continue;
        }
        if !open && is_title(line) {
            let title = line.trim().trim_end_matches(':').to_string();
            help.sections.push(Section {
                title,
                items: Vec::new(),
            });
            continue;
        }
        let Some(section) = help.sections.last_mut() else {
            if open {
                append(help.description.last_mut().expect("an open paragraph"), line);
            } else {
                help.description.push(line.trim().to_string());
                open = true;
            }
            continue;
        };
        let t = line.trim_start();
        if t.starts_with('-') && indent(line) < OPTION_INDENT_MAX {
            // The spellings run up to two spaces (then the help) or the end
            // of the line; a trailing comma continues them on the next line.
            let (mut spec, mut text) = match t.split_once("  ") {
                Some((s, h)) => (s.trim().to_string(), h.trim().to_string()),
                None => (t.trim().to_string(), String::new()),
            };
            while spec.ends_with(',') && text.is_empty() {
                let Some((_, next)) = lines.next() else {
                    return Err(ParseError::Unfinished { line: n + 1 });
                };
                let next = next.trim();
                let (s, h) = next.split_once("  ").unwrap_or((next, ""));
                spec.push(' ');
                spec.push_str(s.trim());
                text = h.trim().to_string();
            }
            let flags = spec
                .split(',')
                .map(|w| {
                    flag(w).ok_or_else(|| ParseError::NotAnOption {
                        line: n + 1,
                        word: w.trim().to_string(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            section.items.push(Item::Option { flags, help: text });
            open = true;
            continue;
        }
        if open {
            match section.items.last_mut() {
                Some(Item::Option { help: h, .. } | Item::Command { help: h, .. } | Item::Text(h)) => append(h, line),
                None => section.items.push(Item::Text(line.trim().to_string())),
            }
            continue;
        }
        section.items.push(match command_entry(line) {
            Some((name, help)) => Item::Command { name, help },
            None => Item::Text(line.trim().to_string()),
        });
        open = true;
    }
    Ok(help)
}

impl Help {
    /// Every option spelling, in the order of the help.
    pub fn flags(&self) -> Vec<(&Flag, &str)> {
        let mut out = Vec::new();
        for s in &self.sections {
            for item in &s.items {
                if let Item::Option { flags, help } = item {
                    out.extend(flags.iter().map(|f| (f, help.as_str())));
                }
            }
        }
        out
    }

    /// The command words (`status`): the literal words of the usage lines
    /// (`salt-master [options] status [--out=json]`) and the entries of a
    /// section that lists them, with their help where there is one.
    pub fn commands(&self) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = Vec::new();
        for s in &self.sections {
            for item in &s.items {
                if let Item::Command { name, help } = item {
                    out.push((name.as_str(), help.as_str()));
                }
            }
        }
        for line in &self.usage {
            for word in line.split_whitespace().skip(1) {
                let literal = word.starts_with(|c: char| c.is_ascii_lowercase())
                    && word
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
                if literal && !out.iter().any(|(n, _)| *n == word) {
                    out.push((word, ""));
                }
            }
        }
        out
    }

    /// The positional arguments of the first usage line after
    /// `[options]`: `'<target>' <function> [arguments]` → (`target`,
    /// required), (`function`, required), (`arguments`, optional).
    pub fn positionals(&self) -> Vec<(String, bool)> {
        self.usage[0]
            .split_whitespace()
            .skip(1)
            .filter(|w| *w != "[options]")
            .map(|w| {
                let w = w.trim_matches('\'').trim_matches('"');
                let optional = w.starts_with('[');
                let name = w.trim_matches(|c| matches!(c, '[' | ']' | '<' | '>'));
                (name.to_string(), !optional)
            })
            .collect()
    }
}

/// What an option's value is, for completion: from its help (`One of 'a',
/// 'b'`; `Set to True or False`) or its metavar's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueKind {
    Dir,
    File,
    User,
    Choices(Vec<String>),
    /// Anything: nothing is offered.
    Free,
}

/// The single-quoted words of `text` (up to a full stop outside quotes
/// when `sentence`), those that look like a value one types (`json`,
/// `warning`), not a path or a phrase.
fn quoted_words(text: &str, sentence: bool) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let w: String = chars.by_ref().take_while(|c| *c != '\'').collect();
                if !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                    words.push(w);
                }
            }
            '.' if sentence => break,
            _ => {}
        }
    }
    words
}

/// The choices a help text lists: the quoted words after `One of` up to
/// the end of that sentence; else two or more quoted words before any
/// `Default:` (`'json' prints …, 'table' for people`); else `True or
/// False`.
fn choices(help: &str) -> Option<Vec<String>> {
    if let Some(i) = help.find("One of ") {
        let words = quoted_words(&help[i + 7..], true);
        return (!words.is_empty()).then_some(words);
    }
    let before_default = help.split("Default:").next().unwrap_or("");
    let words = quoted_words(before_default, false);
    if words.len() >= 2 {
        return Some(words);
    }
    help.contains("True or False")
        .then(|| vec!["True".into(), "False".into()])
}

pub fn value_kind(flag: &Flag, help: &str) -> Option<ValueKind> {
    let metavar = flag.metavar.as_deref()?;
    if let Some(c) = choices(help) {
        return Some(ValueKind::Choices(c));
    }
    Some(if metavar == "DIR" || metavar.ends_with("_DIR") {
        ValueKind::Dir
    } else if metavar.contains("FILE") {
        ValueKind::File
    } else if metavar == "USER" {
        ValueKind::User
    } else if metavar == "OUTPUT" {
        ValueKind::Choices(brine_output::OUTPUTTERS.iter().map(|s| s.to_string()).collect())
    } else {
        ValueKind::Free
    })
}

/// A manual page: the command, its one-line summary, what its `--help`
/// prints, and what the help cannot say (more description, the files it
/// reads, related pages).
#[derive(Debug, Clone)]
pub struct Page {
    pub name: &'static str,
    pub summary: &'static str,
    pub help: String,
    pub description: &'static [&'static str],
    pub files: &'static [(&'static str, &'static str)],
    pub see_also: &'static [&'static str],
}

/// The files Salt's commands on the master read.
const CONFIG_FILES: [(&str, &str); 2] = [
    (
        "/etc/salt/master",
        "The master's configuration (with -c DIR: DIR/master). Salt's options and defaults; \
         root_dir is prepended to the paths below.",
    ),
    (
        "/etc/salt/master.d/*.conf",
        "More configuration, read after the master file (default_include).",
    ),
];

/// The pages of the commands this crate builds (salt-master's page is
/// built where its help text lives, in brine-master).
pub fn cli_pages() -> Vec<Page> {
    const CLIENT_FILES: &[(&str, &str)] = &[
        CONFIG_FILES[0],
        CONFIG_FILES[1],
        (
            "/var/cache/salt/master/.root_key",
            "The key the master writes for each local user it serves (.<user>_key): the \
             command signs in with it when no eauth is given.",
        ),
        (
            "~/.salt_token",
            "The token saved by -T (token_file), reused until it expires.",
        ),
    ];
    vec![
        Page {
            name: "salt",
            summary: "publish a command to Salt minions and print their returns",
            help: crate::salt::help(),
            description: &[
                "salt publishes the function with its arguments to the minions the target \
                 matches, through the master's request port, and prints each return as it \
                 arrives with Salt's outputters. It stands in for Salt's salt command and \
                 works against Brine's master and Python's alike.",
            ],
            files: CLIENT_FILES,
            see_also: &["salt-master(1)", "salt-run(1)", "salt-key(1)", "salt-minion(1)"],
        },
        Page {
            name: "salt-run",
            summary: "run Salt runners on the master",
            help: crate::run::help(),
            description: &[
                "The runner runs in the master, as the local user or by eauth; salt-run follows \
                 its events on the master's event bus and prints them as Salt's salt-run does. \
                 The exit status is the runner's retcode.",
            ],
            files: CLIENT_FILES,
            see_also: &["salt-master(1)", "salt(1)", "salt-key(1)"],
        },
        Page {
            name: "salt-key",
            summary: "manage the Salt master's minion keys",
            help: crate::key::help(),
            description: &[
                "salt-key lists, accepts, rejects, deletes and prints the minions' public keys \
                 in the master's pki_dir, in the same layout as Salt's, so keys managed by \
                 either are seen by both and by the running master. Without an action it \
                 lists all keys.",
            ],
            files: &[
                CONFIG_FILES[0],
                CONFIG_FILES[1],
                (
                    "/etc/salt/pki/master",
                    "pki_dir: minions/ (accepted), minions_pre/ (unaccepted), \
                     minions_rejected/, minions_denied/.",
                ),
            ],
            see_also: &["salt-master(1)", "salt(1)", "salt-run(1)"],
        },
    ]
}

/// Where each generated file goes under an output directory, as Debian
/// lays them out under /usr/share.
pub fn man_path(name: &str) -> String {
    format!("man/man1/{name}.1")
}
pub fn bash_path(name: &str) -> String {
    format!("bash-completion/completions/{name}")
}
pub fn zsh_path(name: &str) -> String {
    format!("zsh/vendor-completions/_{name}")
}

/// The page's three files: (path under the output directory, contents).
pub fn render_all(page: &Page, version: &str) -> Result<Vec<(String, String)>, ParseError> {
    let help = parse(&page.help)?;
    Ok(vec![
        (man_path(page.name), man(page, &help, version)),
        (bash_path(page.name), bash(&help)),
        (zsh_path(page.name), zsh(&help)),
    ])
}

/// A value a parser takes for the option: its first choice, a number, a
/// job id, else `x`.
fn sample(f: &Flag, h: &str) -> String {
    if let Some(ValueKind::Choices(c)) = value_kind(f, h) {
        return c[0].clone();
    }
    match f.metavar.as_deref().unwrap_or("") {
        "JID" => "20250101000000000000".into(),
        m if m.contains("TIMEOUT") || m.contains("INDENT") || m == "N" => "3".into(),
        _ => "x".into(),
    }
}

/// Each spelling the help lists as a user types it: alone, or with a
/// value in the next word and in the same word (`-cDIR`, `--opt=DIR`).
/// What the completions offer; a command's parser is tested to accept
/// every one.
pub fn invocations(help: &Help) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (f, h) in help.flags() {
        match &f.metavar {
            None => out.push(vec![f.name.clone()]),
            Some(_) => {
                let v = sample(f, h);
                out.push(vec![f.name.clone(), v.clone()]);
                out.push(vec![if f.is_long() {
                    format!("{}={v}", f.name)
                } else {
                    format!("{}{v}", f.name)
                }]);
            }
        }
    }
    out
}

// ---------------------------------------------------------------- roff

/// Text for a roff text line: backslashes as `\e`, hyphens as `\-` (so
/// that option names copy as typed), a leading `.` or `'` (which would
/// make a control line) guarded by `\&`, one line.
pub fn roff(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            '\n' => out.push(' '),
            '…' => out.push_str("..."),
            c => out.push(c),
        }
    }
    let out = out.trim().to_string();
    if out.starts_with('.') || out.starts_with('\'') {
        format!("\\&{out}")
    } else {
        out
    }
}

/// A macro argument: [`roff`] text in double quotes, `"` as `\(dq`.
fn roff_arg(text: &str) -> String {
    format!("\"{}\"", roff(text).replace('"', "\\(dq"))
}

fn flag_tag(flags: &[Flag]) -> String {
    flags
        .iter()
        .map(|f| match (&f.metavar, f.is_long()) {
            (Some(m), true) => format!("\\fB{}\\fR=\\fI{}\\fR", roff(&f.name), roff(m)),
            (Some(m), false) => format!("\\fB{}\\fR \\fI{}\\fR", roff(&f.name), roff(m)),
            (None, _) => format!("\\fB{}\\fR", roff(&f.name)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The roff source of the page, section 1.
pub fn man(page: &Page, help: &Help, version: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        ".\\\" Generated by brine-manual from `{} --help`; do not edit.",
        page.name
    );
    let _ = writeln!(
        s,
        ".TH {} 1 \"\" {} \"Brine\"",
        roff_arg(&page.name.to_uppercase()),
        roff_arg(&format!("Brine {version}"))
    );
    let _ = writeln!(s, ".SH NAME\n{} \\- {}", roff(page.name), roff(page.summary));
    s.push_str(".SH SYNOPSIS\n");
    for (i, u) in help.usage.iter().enumerate() {
        if i > 0 {
            s.push_str(".br\n");
        }
        let (cmd, rest) = u.split_once(' ').unwrap_or((u, ""));
        let _ = writeln!(s, "\\fB{}\\fR {}", roff(cmd), roff(rest));
    }
    s.push_str(".SH DESCRIPTION\n");
    let mut paras: Vec<&str> = help.description.iter().map(String::as_str).collect();
    paras.extend(page.description.iter().copied());
    if paras.is_empty() {
        paras.push(page.summary);
    }
    for (i, p) in paras.iter().enumerate() {
        if i > 0 {
            s.push_str(".PP\n");
        }
        let _ = writeln!(s, "{}", roff(p));
    }
    let mut options_open = false;
    for section in &help.sections {
        let has_options = section.items.iter().any(|i| matches!(i, Item::Option { .. }));
        if section.title == "Options" || (has_options && !options_open) {
            s.push_str(".SH OPTIONS\n");
            options_open = true;
            if section.title != "Options" {
                let _ = writeln!(s, ".SS {}", roff_arg(&section.title));
            }
        } else if has_options {
            let _ = writeln!(s, ".SS {}", roff_arg(&section.title));
        } else {
            let _ = writeln!(s, ".SH {}", roff_arg(&section.title.to_uppercase()));
        }
        for item in &section.items {
            match item {
                Item::Option { flags, help } => {
                    let _ = writeln!(s, ".TP\n{}", flag_tag(flags));
                    if !help.is_empty() {
                        let _ = writeln!(s, "{}", roff(help));
                    }
                }
                Item::Command { name, help } => {
                    let _ = writeln!(s, ".TP\n\\fB{}\\fR\n{}", roff(name), roff(help));
                }
                Item::Text(t) => {
                    let _ = writeln!(s, ".PP\n{}", roff(t));
                }
            }
        }
    }
    if !page.files.is_empty() {
        s.push_str(".SH FILES\n");
        for (path, what) in page.files {
            let _ = writeln!(s, ".TP\n.I {}\n{}", roff(path), roff(what));
        }
    }
    if !page.see_also.is_empty() {
        s.push_str(".SH \"SEE ALSO\"\n");
        for (i, r) in page.see_also.iter().enumerate() {
            let (name, sec) = r.split_once('(').unwrap_or((r, "1)"));
            let comma = if i + 1 < page.see_also.len() { "," } else { "" };
            let _ = writeln!(s, ".BR {} ({}){comma}", roff(name), sec.trim_end_matches(')'));
        }
        s.push_str(".PP\nSalt's documentation: https://docs.saltproject.io/\n");
    }
    s
}

// ---------------------------------------------------------------- bash

/// A word list for a single-quoted shell string.
fn sh_words<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| w.as_ref().replace('\'', "'\\''"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The words the bash completion offers for options: each spelling, long
/// ones that take a value with `=` (`--config-dir=`).
pub fn offered(help: &Help) -> Vec<String> {
    help.flags()
        .into_iter()
        .map(|(f, _)| match (&f.metavar, f.is_long()) {
            (Some(_), true) => format!("{}=", f.name),
            _ => f.name.clone(),
        })
        .collect()
}

fn bash_function(name: &str) -> String {
    format!("_brine_{}", name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"))
}

/// A bash completion script (loaded by bash-completion from
/// /usr/share/bash-completion/completions/<command>).
pub fn bash(help: &Help) -> String {
    let func = bash_function(&help.name);
    let mut s = String::new();
    let _ = writeln!(s, "# bash completion for {}  -*- shell-script -*-", help.name);
    let _ = writeln!(
        s,
        "# Generated by brine-manual from `{} --help`; do not edit.\n",
        help.name
    );
    let _ = writeln!(s, "{func}()\n{{");
    s.push_str(
        "    local cur=${COMP_WORDS[COMP_CWORD]} prev=\n    \
         (( COMP_CWORD > 0 )) && prev=${COMP_WORDS[COMP_CWORD-1]}\n    \
         # --opt=value: bash splits the word at '=' (COMP_WORDBREAKS), or not.\n    \
         if [[ $cur == = ]]; then\n        cur=\n    \
         elif [[ $prev == = ]] && (( COMP_CWORD > 1 )); then\n        prev=${COMP_WORDS[COMP_CWORD-2]}\n    \
         elif [[ $cur == --*=* ]]; then\n        prev=${cur%%=*}\n        cur=${cur#*=}\n    fi\n",
    );
    // The options that take a value, grouped by what is offered for it.
    let mut arms: Vec<(Vec<String>, String)> = Vec::new();
    for (f, h) in help.flags() {
        let Some(kind) = value_kind(f, h) else { continue };
        let action = match kind {
            ValueKind::Dir => {
                "compopt -o filenames 2>/dev/null\n            mapfile -t COMPREPLY < <(compgen -d -- \"$cur\")"
                    .to_string()
            }
            ValueKind::File => {
                "compopt -o filenames 2>/dev/null\n            mapfile -t COMPREPLY < <(compgen -f -- \"$cur\")"
                    .to_string()
            }
            ValueKind::User => "mapfile -t COMPREPLY < <(compgen -u -- \"$cur\")".to_string(),
            ValueKind::Choices(c) => format!("mapfile -t COMPREPLY < <(compgen -W '{}' -- \"$cur\")", sh_words(&c)),
            ValueKind::Free => "COMPREPLY=()".to_string(),
        };
        match arms.iter_mut().find(|(_, a)| *a == action) {
            Some((names, _)) => names.push(f.name.clone()),
            None => arms.push((vec![f.name.clone()], action)),
        }
    }
    if !arms.is_empty() {
        s.push_str("    case $prev in\n");
        for (names, action) in &arms {
            let _ = writeln!(
                s,
                "        {})\n            {action}\n            return ;;",
                names.join("|")
            );
        }
        s.push_str("    esac\n");
    }
    let _ = write!(
        s,
        "    if [[ $cur == -* ]]; then\n        \
         mapfile -t COMPREPLY < <(compgen -W '{}' -- \"$cur\")\n        \
         [[ ${{#COMPREPLY[@]}} == 1 && ${{COMPREPLY[0]}} == *= ]] && compopt -o nospace 2>/dev/null\n        \
         return\n    fi\n",
        sh_words(&offered(help))
    );
    let commands: Vec<&str> = help.commands().into_iter().map(|(c, _)| c).collect();
    if commands.is_empty() {
        s.push_str("    COMPREPLY=()\n");
    } else {
        let _ = writeln!(
            s,
            "    mapfile -t COMPREPLY < <(compgen -W '{}' -- \"$cur\")",
            sh_words(&commands)
        );
    }
    let _ = writeln!(s, "}}\ncomplete -F {func} {}", help.name);
    s
}

// ---------------------------------------------------------------- zsh

/// Text inside an `_arguments` spec, itself in single quotes: the quote
/// closed and reopened, and `_arguments`' own `[`, `]` and `:` escaped.
fn zsh_text(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '\'' => out.push_str("'\\''"),
            '[' | ']' | ':' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The first sentence of a help text, for a one-line description.
fn first_sentence(help: &str) -> &str {
    let h = help.trim();
    match h.find(". ") {
        Some(i) => &h[..i],
        None => h.trim_end_matches('.'),
    }
}

/// A zsh completion function (`#compdef`, found in
/// /usr/share/zsh/vendor-completions by compinit).
pub fn zsh(help: &Help) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "#compdef {}", help.name);
    let _ = writeln!(
        s,
        "# Generated by brine-manual from `{} --help`; do not edit.\n",
        help.name
    );
    // -s: single-letter options bundle (`-dl debug`), as optparse's; -S:
    // `--` ends the options.
    s.push_str("_arguments -s -S \\\n");
    for (f, h) in help.flags() {
        let desc = zsh_text(first_sentence(h));
        let value = match value_kind(f, h) {
            None => String::new(),
            Some(kind) => {
                let action = match kind {
                    ValueKind::Dir => "_files -/".to_string(),
                    ValueKind::File => "_files".to_string(),
                    ValueKind::User => "_users".to_string(),
                    ValueKind::Choices(c) => {
                        format!("({})", c.iter().map(|w| zsh_text(w)).collect::<Vec<_>>().join(" "))
                    }
                    ValueKind::Free => " ".to_string(),
                };
                let msg = zsh_text(&f.metavar.as_deref().unwrap_or("value").to_lowercase());
                format!(":{msg}:{action}")
            }
        };
        // `-c+`: the value in the same word or the next; `--x=`: after `=`
        // or in the next word.
        let suffix = match (&f.metavar, f.is_long()) {
            (None, _) => "",
            (Some(_), true) => "=",
            (Some(_), false) => "+",
        };
        let _ = writeln!(s, "  '{}{suffix}[{desc}]{value}' \\", f.name);
    }
    let commands = help.commands();
    if !commands.is_empty() {
        let words: Vec<String> = commands
            .iter()
            .map(|(c, h)| {
                format!(
                    "{}\\:\"{}\"",
                    zsh_text(c),
                    zsh_text(first_sentence(h)).replace('"', "\\\"")
                )
            })
            .collect();
        // Optional: each command's usage line is one of several.
        let _ = writeln!(s, "  '1::command:(({}))' \\", words.join(" "));
    } else {
        let mut n = 0;
        for (name, required) in help.positionals() {
            let name = zsh_text(&name);
            if required {
                n += 1;
                let _ = writeln!(s, "  '{n}:{name}: ' \\");
            } else {
                let _ = writeln!(s, "  '*::{name}: ' \\");
                break;
            }
        }
    }
    // The last line ends the continued command.
    s.push_str("  && return 0\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every word of the text that looks like an option (`-x`, `--word`)
    /// where a word starts: after a space, a comma, `(`, `[` or at a line's
    /// start. Read independently of [`parse`], to catch what it would drop.
    fn dash_words(text: &str) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        let b: Vec<char> = text.chars().collect();
        for i in 0..b.len() {
            let starts = i == 0 || matches!(b[i - 1], ' ' | ',' | '(' | '[' | '\n');
            if !starts || b[i] != '-' {
                continue;
            }
            let mut j = i;
            while j < b.len() && b[j] == '-' {
                j += 1;
            }
            let k0 = j;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == '-' || b[j] == '_') {
                j += 1;
            }
            if j > k0 && j - i >= 2 && b[k0].is_ascii_alphanumeric() {
                out.insert(b[i..j].iter().collect::<String>());
            }
        }
        out
    }

    fn pages() -> Vec<(Page, Help)> {
        cli_pages()
            .into_iter()
            .map(|p| {
                let h = parse(&p.help).unwrap_or_else(|e| panic!("{}: {e}", p.name));
                (p, h)
            })
            .collect()
    }

    #[test]
    fn every_option_of_each_help_is_read() {
        for (page, help) in pages() {
            let found: std::collections::BTreeSet<String> = help.flags().iter().map(|(f, _)| f.name.clone()).collect();
            assert_eq!(found, dash_words(&page.help), "{}", page.name);
            assert_eq!(help.name, page.name);
            assert!(help.commands().is_empty(), "{}: {:?}", page.name, help.commands());
        }
    }

    #[test]
    fn salt_key_help_reads_as_optparse_prints_it() {
        let help = parse(&crate::key::help()).unwrap();
        assert_eq!(help.usage, ["salt-key [options]"]);
        assert_eq!(
            help.description,
            ["salt-key is used to manage Salt authentication keys"]
        );
        let titles: Vec<&str> = help.sections.iter().map(|s| s.title.as_str()).collect();
        assert_eq!(titles, ["Options", "Actions"]);
        let Item::Option { flags, help: text } = &help.sections[0].items[2] else {
            panic!()
        };
        assert_eq!(
            flags,
            &[
                Flag {
                    name: "-c".into(),
                    metavar: Some("CONFIG_DIR".into())
                },
                Flag {
                    name: "--config-dir".into(),
                    metavar: Some("CONFIG_DIR".into())
                },
            ]
        );
        assert_eq!(
            text,
            "Pass in an alternative configuration directory. Default: '/etc/salt'."
        );
        // Several options on one entry, over two lines.
        let out: Vec<&str> = help
            .flags()
            .into_iter()
            .filter(|(_, h)| *h == "as salt's output options.")
            .map(|(f, _)| f.name.as_str())
            .collect();
        assert_eq!(
            out,
            [
                "--out-indent",
                "--out-file",
                "--out-file-append",
                "--no-color",
                "--force-color"
            ]
        );
        assert_eq!(help.positionals(), []);
    }

    #[test]
    fn group_descriptions_commands_and_positionals() {
        let help = parse(&crate::salt::help()).unwrap();
        let out = help.sections.iter().find(|s| s.title == "Output Options").unwrap();
        assert_eq!(
            out.items[0],
            Item::Text("Configure your preferred output format.".into())
        );
        assert_eq!(
            help.positionals(),
            [
                ("target".to_string(), true),
                ("function".to_string(), true),
                ("arguments".to_string(), false)
            ]
        );
        let text = "Usage: tool [options] <cmd>\n       tool status\n\nDoes things.\n\nOptions:\n  -h, --help  help\n\nCommands:\n  status                print the state of the\n                        running master.\n";
        let help = parse(text).unwrap();
        assert_eq!(help.usage, ["tool [options] <cmd>", "tool status"]);
        assert_eq!(help.commands(), [("status", "print the state of the running master.")]);
        let help = parse("Usage: m [options]\n       m [options] status [--out=json]\n\nOptions:\n  --out=OUTPUT  With status: 'json' prints JSON,\n                'table' (the default) for people.\n").unwrap();
        assert_eq!(help.commands(), [("status", "")]);
        let (f, h) = help.flags()[0];
        assert_eq!(
            value_kind(f, h),
            Some(ValueKind::Choices(vec!["json".into(), "table".into()]))
        );
        assert!(zsh(&help).contains("  '1::command:((status\\:\"\"))' \\\n"));
        assert_eq!(parse("Options:\n  -h\n"), Err(ParseError::NoUsage));
        assert_eq!(
            parse("Usage: x\n\nOptions:\n  -a, b  help\n"),
            Err(ParseError::NotAnOption {
                line: 4,
                word: "b".into()
            })
        );
        assert_eq!(
            parse("Usage: x\n\nOptions:\n  -a,\n"),
            Err(ParseError::Unfinished { line: 4 })
        );
    }

    #[test]
    fn value_kinds_from_help_and_metavar() {
        let help = parse(&crate::salt::help()).unwrap();
        let kind = |name: &str| {
            let (f, h) = help.flags().into_iter().find(|(f, _)| f.name == name).unwrap();
            value_kind(f, h)
        };
        assert_eq!(kind("-c"), Some(ValueKind::Dir));
        assert_eq!(kind("--out-file"), Some(ValueKind::File));
        assert_eq!(kind("-v"), None);
        assert_eq!(kind("-t"), Some(ValueKind::Free));
        assert_eq!(
            kind("--state-output"),
            Some(ValueKind::Choices(
                ["full", "terse", "mixed", "changes", "filter"]
                    .map(String::from)
                    .to_vec()
            ))
        );
        assert_eq!(
            kind("--state-verbose"),
            Some(ValueKind::Choices(vec!["True".into(), "False".into()]))
        );
        let Some(ValueKind::Choices(outs)) = kind("--out") else {
            panic!()
        };
        assert!(outs.contains(&"json".to_string()) && outs.contains(&"highstate".to_string()));
    }

    #[test]
    fn roff_escapes_control_characters() {
        assert_eq!(roff(".hidden"), "\\&.hidden");
        assert_eq!(roff("'quoted"), "\\&'quoted");
        assert_eq!(roff("  .after spaces"), "\\&.after spaces");
        assert_eq!(roff("a\\b"), "a\\eb");
        assert_eq!(roff("--out-file"), "\\-\\-out\\-file");
        assert_eq!(roff("line\nbreak"), "line break");
        assert_eq!(roff("mid . and ' stay"), "mid . and ' stay");
        assert_eq!(roff("pprint…"), "pprint...");
        assert_eq!(roff_arg("say \"x\""), "\"say \\(dqx\\(dq\"");
        // No text line of a page starts a control line by accident.
        for (page, help) in pages() {
            let man = man(&page, &help, "0.1.0");
            for line in man.lines() {
                if line.starts_with('.') || line.starts_with('\'') {
                    let m = line.trim_start_matches(['.', '\'']);
                    let mac = m.split_whitespace().next().unwrap_or("");
                    assert!(
                        ["\\\"", "TH", "SH", "SS", "TP", "PP", "br", "I", "B", "BR"].contains(&mac),
                        "{}: {line}",
                        page.name
                    );
                }
            }
        }
    }

    #[test]
    fn man_page_sections() {
        let (page, help) = pages().into_iter().find(|(p, _)| p.name == "salt-key").unwrap();
        let man = man(&page, &help, "1.2.3");
        for want in [
            ".TH \"SALT\\-KEY\" 1 \"\" \"Brine 1.2.3\" \"Brine\"\n",
            ".SH NAME\nsalt\\-key \\- manage",
            ".SH SYNOPSIS\n\\fBsalt\\-key\\fR [options]\n",
            ".SH DESCRIPTION\nsalt\\-key is used to manage Salt authentication keys\n.PP\n",
            ".SH OPTIONS\n.TP\n\\fB\\-\\-version\\fR\nshow program's version number and exit\n",
            ".TP\n\\fB\\-c\\fR \\fICONFIG_DIR\\fR, \\fB\\-\\-config\\-dir\\fR=\\fICONFIG_DIR\\fR\n",
            ".SS \"Actions\"\n",
            ".SH FILES\n.TP\n.I /etc/salt/master\n",
            ".SH \"SEE ALSO\"\n.BR salt\\-master (1),\n",
            ".BR salt\\-run (1)\n",
        ] {
            assert!(man.contains(want), "no {want:?} in\n{man}");
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// The option words of a generated bash script.
    fn bash_offers(script: &str) -> Vec<String> {
        let line = script
            .lines()
            .find(|l| l.contains("compgen -W") && l.contains("'-"))
            .expect("an option list");
        let words = line.split('\'').nth(1).unwrap();
        words
            .split_whitespace()
            .map(|w| w.trim_end_matches('=').to_string())
            .collect()
    }

    /// The option words of a generated zsh script.
    fn zsh_offers(script: &str) -> Vec<String> {
        script
            .lines()
            .filter_map(|l| l.trim().strip_prefix("'-"))
            .map(|l| {
                let end = l.find(['[', '+', '=']).unwrap();
                format!("-{}", &l[..end])
            })
            .collect()
    }

    #[test]
    fn completions_offer_only_what_the_parsers_accept() {
        for (page, help) in pages() {
            let names: Vec<String> = help.flags().iter().map(|(f, _)| f.name.clone()).collect();
            assert_eq!(bash_offers(&bash(&help)), names, "{}", page.name);
            assert_eq!(zsh_offers(&zsh(&help)), names, "{}", page.name);
            for args in invocations(&help) {
                let verdict = match page.name {
                    "salt" => {
                        let mut a = args.clone();
                        a.extend(strings(&["*", "test.ping"]));
                        crate::salt::parse(&a).map(|_| ())
                    }
                    "salt-run" => {
                        let mut a = args.clone();
                        a.push("test.arg".into());
                        crate::run::parse(&a).map(|_| ())
                    }
                    "salt-key" => crate::key::parse(&args).map(|_| ()),
                    other => panic!("no parser for {other}"),
                };
                assert_eq!(verdict, Ok(()), "{} {args:?}", page.name);
            }
        }
    }

    #[test]
    fn bash_script_shape() {
        let help = parse(&crate::key::help()).unwrap();
        let script = bash(&help);
        assert!(script.contains("_brine_salt_key()\n{"));
        assert!(script.ends_with("complete -F _brine_salt_key salt-key\n"));
        assert!(script.contains("        -c|--config-dir)\n            compopt -o filenames"));
        assert!(script.contains(" --config-dir= "));
        assert!(script.contains(" --include-all "));
        let zsh = zsh(&help);
        assert!(zsh.starts_with("#compdef salt-key\n"));
        assert!(zsh.contains("  '-c+[Pass in an alternative configuration directory]:config_dir:_files -/' \\\n"));
        assert!(zsh.contains("  '-y[Answer \"Yes\" to all questions presented]' \\\n"));
        assert_eq!(zsh_text("a'b[c]:d"), "a'\\''b\\[c\\]\\:d");
    }
}
