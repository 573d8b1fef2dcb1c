//! YAML as Salt reads it: `salt.utils.yaml.safe_load`, i.e. PyYAML's
//! (C)SafeLoader with YAML 1.1 scalar resolution, plus the changes of
//! `SaltYamlSafeLoader` (salt/utils/yamlloader.py):
//!
//! * plain `yes/Yes/YES/no/No/NO/true/True/TRUE/false/False/FALSE/on/On/ON/
//!   off/Off/OFF` are booleans (`y`/`n` are strings); `~`, `null`, `Null`,
//!   `NULL` and the empty scalar are null;
//! * integers: decimal, `0x` hex, `0b` binary, `_` separators, sexagesimal
//!   `1:30` (= 90); a leading-zero integer such as `0755` has its zeros
//!   stripped by Salt and is read as **decimal** 755 (`-0755`/`+0755` keep
//!   PyYAML's octal, -493/493);
//! * floats need a dot (`1.`, `.5`, `1.0e+3`; `1e3` is a string) and the
//!   exponent a sign; `.inf`/`.nan` too, sexagesimal `1:30.5`;
//! * timestamps stay strings (Salt maps the tag to `construct_scalar`);
//!   quoted scalars and `!!str` are always strings; unknown tags are an error;
//! * duplicate keys in one mapping are an error ("found conflicting ID"),
//!   compared with Python's `==` (`1`, `1.0` and `True` are the same key);
//! * merge keys `<<` as Salt flattens them: merged pairs go first, explicit
//!   keys win, and a key coming from two merge sources is a conflict;
//! * mapping keys keep their type (`4505:` is an integer key) in
//!   [`parse_yaml_value`].
//!
//! Only a single document is accepted, as `yaml.load` does.
//!
//! [`parse_yaml_value`] returns the Python objects as msgpack carries them
//! (what a master sends a minion); [`parse_yaml`] their JSON projection,
//! for configuration: non-string keys become their Python `str()`
//! (`4505`, `True`, `None`), `.inf`/`.nan` floats their source text,
//! `!!binary` its base64 text. In both, integers beyond 64 bits are their
//! source text, `!!set` a list of its members, `!!omap`/`!!pairs` a list of
//! `[key, value]` lists.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use brine_proto::Value as Msg;
use serde_json::Value;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::value::to_str;
use crate::Error;

const T: &str = "tag:yaml.org,2002:";

#[derive(Clone, Debug)]
enum Kind {
    Scalar { text: String, plain: bool },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Clone, Debug)]
struct Node {
    kind: Kind,
    /// The full tag (`tag:yaml.org,2002:str`, `!foo`, the non-specific
    /// `!`), `None` when there is none.
    tag: Option<String>,
    mark: Marker,
}

impl Node {
    fn id(&self) -> &'static str {
        match self.kind {
            Kind::Scalar { .. } => "scalar",
            Kind::Seq(_) => "sequence",
            Kind::Map(_) => "mapping",
        }
    }

    fn is_plain(&self, s: &str) -> bool {
        matches!(&self.kind, Kind::Scalar { text, plain: true } if text == s)
            && self.tag.as_deref().is_none_or(|t| t == "!")
    }

    fn is_merge_key(&self) -> bool {
        self.is_plain("<<") || self.tag.as_deref() == Some("tag:yaml.org,2002:merge")
    }
}

fn err(path: &Path, mark: &Marker, msg: impl Into<String>) -> Error {
    Error::Yaml {
        path: path.to_owned(),
        line: mark.line(),
        col: mark.col() + 1,
        msg: msg.into(),
    }
}

/// Parse `text` (the contents of `path`, which only names it in errors)
/// as Salt does, to the JSON projection of the document (see the module
/// documentation); an empty document is `Value::Null`.
pub fn parse_yaml(text: &str, path: &Path) -> Result<Value, Error> {
    Ok(brine_proto::json::to_json(&load(text, path, Mode::Json)?))
}

/// Parse `text` as Salt does, to the Python objects `safe_load` returns
/// as msgpack carries them: mapping keys keep their type (`4505:` is the
/// integer 4505, `true:` the boolean), `.inf`/`.nan` are floats,
/// `!!binary` is bytes. Integers beyond 64 bits are their text, `!!set`
/// a list of its members, `!!omap`/`!!pairs` a list of `[key, value]`
/// lists. An empty document is `Nil`.
pub fn parse_yaml_value(text: &str, path: &Path) -> Result<Msg, Error> {
    load(text, path, Mode::Python)
}

fn load(text: &str, path: &Path, mode: Mode) -> Result<Msg, Error> {
    // PyYAML's reader drops a byte order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut c = Composer {
        parser: Parser::new_from_str(text),
        text,
        anchors: HashMap::new(),
        path,
    };
    let root = c.single_document()?;
    match root {
        Some(node) => Constructor { path, mode }.construct(node),
        None => Ok(Msg::Nil),
    }
}

/// The line and 0-based column of the first tab at or after char `index`.
fn tab_after(text: &str, index: usize) -> Option<(usize, usize)> {
    let (mut line, mut col) = (1, 0);
    for (i, c) in text.chars().enumerate() {
        if i >= index && c == '\t' {
            return Some((line, col));
        }
        if c == '\n' {
            line += 1;
            col = 0;
        } else {
            col += 1;
        }
    }
    None
}

/// Events to nodes (PyYAML's Composer), aliases resolved.
struct Composer<'a> {
    parser: Parser<std::str::Chars<'a>>,
    text: &'a str,
    anchors: HashMap<usize, Node>,
    path: &'a Path,
}

impl Composer<'_> {
    fn next(&mut self) -> Result<(Event, Marker), Error> {
        self.parser.next_token().map_err(|e| {
            let m = e.marker();
            // A misplaced tab is reported where the tab is, as PyYAML does.
            let (line, col) = e
                .info()
                .contains("tab")
                .then(|| tab_after(self.text, m.index()))
                .flatten()
                .unwrap_or((m.line(), m.col()));
            Error::Yaml {
                path: self.path.to_owned(),
                line,
                col: col + 1,
                msg: e.info().to_string(),
            }
        })
    }

    fn single_document(&mut self) -> Result<Option<Node>, Error> {
        let mut root = None;
        let mut docs = 0;
        loop {
            let (ev, mark) = self.next()?;
            match ev {
                Event::StreamStart | Event::Nothing => {}
                Event::StreamEnd => return Ok(root),
                Event::DocumentStart => {
                    docs += 1;
                    if docs > 1 {
                        return Err(err(
                            self.path,
                            &mark,
                            "expected a single document in the stream, but found another document",
                        ));
                    }
                    let (ev, mark) = self.next()?;
                    root = Some(self.node(ev, mark)?);
                    self.anchors.clear();
                }
                Event::DocumentEnd => {}
                other => return Err(err(self.path, &mark, format!("unexpected {other:?}"))),
            }
        }
    }

    fn node(&mut self, ev: Event, mark: Marker) -> Result<Node, Error> {
        let full = |t: Option<yaml_rust2::parser::Tag>| t.map(|t| format!("{}{}", t.handle, t.suffix));
        let (node, anchor) = match ev {
            Event::Alias(id) => {
                return self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| err(self.path, &mark, "found undefined alias"))
            }
            Event::Scalar(text, style, anchor, tag) => (
                Node {
                    kind: Kind::Scalar {
                        text,
                        plain: style == TScalarStyle::Plain,
                    },
                    tag: full(tag),
                    mark,
                },
                anchor,
            ),
            Event::SequenceStart(anchor, tag) => {
                let mut items = Vec::new();
                loop {
                    match self.next()? {
                        (Event::SequenceEnd, _) => break,
                        (ev, m) => items.push(self.node(ev, m)?),
                    }
                }
                (
                    Node {
                        kind: Kind::Seq(items),
                        tag: full(tag),
                        mark,
                    },
                    anchor,
                )
            }
            Event::MappingStart(anchor, tag) => {
                let mut pairs = Vec::new();
                loop {
                    match self.next()? {
                        (Event::MappingEnd, _) => break,
                        (ev, m) => {
                            let k = self.node(ev, m)?;
                            let (ev, m) = self.next()?;
                            let v = self.node(ev, m)?;
                            pairs.push((k, v));
                        }
                    }
                }
                (
                    Node {
                        kind: Kind::Map(pairs),
                        tag: full(tag),
                        mark,
                    },
                    anchor,
                )
            }
            other => return Err(err(self.path, &mark, format!("unexpected {other:?}"))),
        };
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }
}

/// What the constructor builds: Python's objects as msgpack can carry
/// them ([`Mode::Python`]), or the JSON-safe projection [`parse_yaml`]
/// has always returned ([`Mode::Json`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Python,
    Json,
}

struct Constructor<'a> {
    path: &'a Path,
    mode: Mode,
}

impl Constructor<'_> {
    fn no_constructor(&self, node: &Node, tag: &str) -> Error {
        err(
            self.path,
            &node.mark,
            format!("could not determine a constructor for the tag '{tag}'"),
        )
    }

    fn construct(&self, node: Node) -> Result<Msg, Error> {
        let tag = node.tag.clone().filter(|t| t != "!");
        match node.kind {
            Kind::Scalar { ref text, .. } => self.scalar(&node, text, &scalar_tag(&node)),
            Kind::Seq(items) => {
                let t = tag.as_deref().unwrap_or("tag:yaml.org,2002:seq");
                match t.strip_prefix(T) {
                    Some("seq") => Ok(Msg::Array(
                        items.into_iter().map(|n| self.construct(n)).collect::<Result<_, _>>()?,
                    )),
                    Some("omap" | "pairs") => {
                        let mut out = Vec::new();
                        for item in items {
                            let Kind::Map(pairs) = item.kind else {
                                return Err(err(
                                    self.path,
                                    &item.mark,
                                    format!("expected a mapping of length 1, but found {}", item.id()),
                                ));
                            };
                            if pairs.len() != 1 {
                                return Err(err(
                                    self.path,
                                    &item.mark,
                                    format!("expected a single mapping item, but found {} items", pairs.len()),
                                ));
                            }
                            let (k, v) = pairs.into_iter().next().expect("one pair");
                            out.push(Msg::Array(vec![self.construct(k)?, self.construct(v)?]));
                        }
                        Ok(Msg::Array(out))
                    }
                    _ => Err(self.no_constructor(&node_stub(&node.mark), t)),
                }
            }
            Kind::Map(pairs) => {
                let t = tag.as_deref().unwrap_or("tag:yaml.org,2002:map");
                match t.strip_prefix(T) {
                    Some("map") => self.mapping(pairs).map(Msg::Map),
                    Some("set") => Ok(Msg::Array(self.mapping(pairs)?.into_iter().map(|(k, _)| k).collect())),
                    _ => Err(self.no_constructor(&node_stub(&node.mark), t)),
                }
            }
        }
    }

    fn scalar(&self, node: &Node, text: &str, tag: &str) -> Result<Msg, Error> {
        let bad = |what: &str| err(self.path, &node.mark, format!("invalid {what} scalar: {text:?}"));
        match tag.strip_prefix(T) {
            Some("str" | "python/unicode" | "timestamp") => Ok(Msg::from(text)),
            Some("null") => Ok(Msg::Nil),
            Some("bool") => match text.to_ascii_lowercase().as_str() {
                "yes" | "true" | "on" => Ok(Msg::Bool(true)),
                "no" | "false" | "off" => Ok(Msg::Bool(false)),
                _ => Err(bad("bool")),
            },
            Some("int") => construct_int(text).ok_or_else(|| bad("int")),
            Some("float") => construct_float(text, self.mode).ok_or_else(|| bad("float")),
            Some("binary") => {
                let b64: String = text.split_whitespace().collect();
                match self.mode {
                    Mode::Json => Ok(Msg::Str(b64)),
                    Mode::Python => {
                        use base64::Engine;
                        base64::engine::general_purpose::STANDARD
                            .decode(b64.as_bytes())
                            .map(Msg::Bytes)
                            .map_err(|e| err(self.path, &node.mark, format!("failed to decode base64 data: {e}")))
                    }
                }
            }
            _ => Err(self.no_constructor(node, tag)),
        }
    }

    /// Salt's `flatten_mapping`: merge keys removed, the merged pairs
    /// (later sources of a merge list first) put before the explicit ones,
    /// minus those whose key text an explicit key has.
    fn flatten(&self, pairs: Vec<(Node, Node)>) -> Result<Vec<(Node, Node)>, Error> {
        let mut merge = Vec::new();
        let mut explicit = Vec::new();
        for (k, v) in pairs {
            if !k.is_merge_key() {
                explicit.push((k, v));
                continue;
            }
            match v.kind {
                Kind::Map(p) => merge.extend(self.flatten(p)?),
                Kind::Seq(items) => {
                    let mut sub = Vec::new();
                    for item in items {
                        match item.kind {
                            Kind::Map(p) => sub.push(self.flatten(p)?),
                            _ => {
                                return Err(err(
                                    self.path,
                                    &item.mark,
                                    format!("expected a mapping for merging, but found {}", item.id()),
                                ))
                            }
                        }
                    }
                    for p in sub.into_iter().rev() {
                        merge.extend(p);
                    }
                }
                Kind::Scalar { .. } => {
                    return Err(err(
                        self.path,
                        &v.mark,
                        "expected a mapping or list of mappings for merging, but found scalar",
                    ))
                }
            }
        }
        if merge.is_empty() {
            return Ok(explicit);
        }
        let existing: HashSet<String> = explicit.iter().filter_map(|(k, _)| scalar_text(k)).collect();
        let mut out: Vec<(Node, Node)> = merge
            .into_iter()
            .filter(|(k, _)| scalar_text(k).is_none_or(|t| !existing.contains(&t)))
            .collect();
        out.extend(explicit);
        Ok(out)
    }

    fn mapping(&self, pairs: Vec<(Node, Node)>) -> Result<Vec<(Msg, Msg)>, Error> {
        let mut map: Vec<(Msg, Msg)> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for (mut k, v) in self.flatten(pairs)? {
            // A `=` key is the YAML 1.1 "value" key: Salt reads it as a string.
            if k.is_plain("=") {
                k.tag = Some(format!("{T}str"));
            }
            let kmark = k.mark;
            let raw = scalar_text(&k);
            let special = special_float_key(&k);
            let key = self.construct(k)?;
            let id = match special {
                // NaN keys are never equal to one another.
                Some("nan") => Some(format!("nan{}", seen.len())),
                Some(s) => Some(format!("f{s}")),
                None => crate::dict::key_id(&key),
            };
            let Some(id) = id else {
                return Err(err(
                    self.path,
                    &kmark,
                    format!("found unacceptable key {}", raw.unwrap_or_else(|| to_str(&key))),
                ));
            };
            let value = self.construct(v)?;
            let name = special.map_or_else(|| to_str(&key), String::from);
            if !seen.insert(id) {
                return Err(err(self.path, &kmark, format!("found conflicting ID '{name}'")));
            }
            let key = match self.mode {
                Mode::Python => key,
                Mode::Json => Msg::Str(name),
            };
            map.push((key, value));
        }
        Ok(map)
    }
}

/// The tag a scalar node is constructed with: its own, or the implicit
/// one of a plain scalar (an empty node with only the `!` tag is a string,
/// as libyaml reports it non-implicit).
fn scalar_tag(node: &Node) -> String {
    match (&node.kind, &node.tag) {
        (_, Some(t)) if t != "!" => t.clone(),
        (Kind::Scalar { text, plain: true }, Some(_)) if text.is_empty() => format!("{T}str"),
        (Kind::Scalar { text, plain: true }, _) => implicit_tag(text).to_string(),
        _ => format!("{T}str"),
    }
}

/// Python's `str()` of the float `.inf`/`.nan` a key resolved to.
fn special_float_key(node: &Node) -> Option<&'static str> {
    let Kind::Scalar { text, .. } = &node.kind else {
        return None;
    };
    if scalar_tag(node) != format!("{T}float") {
        return None;
    }
    let t = text.replace('_', "").to_ascii_lowercase();
    match t.as_str() {
        ".inf" | "+.inf" => Some("inf"),
        "-.inf" => Some("-inf"),
        ".nan" | "+.nan" | "-.nan" => Some("nan"),
        _ => None,
    }
}

fn node_stub(mark: &Marker) -> Node {
    Node {
        kind: Kind::Seq(Vec::new()),
        tag: None,
        mark: *mark,
    }
}

fn scalar_text(n: &Node) -> Option<String> {
    match &n.kind {
        Kind::Scalar { text, .. } => Some(text.clone()),
        _ => None,
    }
}

// ---------------------------------------------------------------- resolver

fn is_digit(c: char) -> bool {
    c.is_ascii_digit()
}

/// All chars of `s` satisfy `f`, and there is at least one.
fn all1(s: &str, f: impl Fn(char) -> bool) -> bool {
    !s.is_empty() && s.chars().all(f)
}

fn strip_sign(s: &str) -> &str {
    s.strip_prefix(['-', '+']).unwrap_or(s)
}

/// `:[0-5]?[0-9]` repeated at least once (the text after the first part).
fn sexagesimal_tail(parts: &[&str]) -> bool {
    !parts.is_empty()
        && parts.iter().all(|p| match p.as_bytes() {
            [a] => a.is_ascii_digit(),
            [a, b] => (b'0'..=b'5').contains(a) && b.is_ascii_digit(),
            _ => false,
        })
}

/// PyYAML's YAML 1.1 int regexp.
fn is_int(t: &str) -> bool {
    let b = strip_sign(t);
    if let Some(r) = b.strip_prefix("0b") {
        return all1(r, |c| c == '0' || c == '1' || c == '_');
    }
    if let Some(r) = b.strip_prefix("0x") {
        return all1(r, |c| c.is_ascii_hexdigit() || c == '_');
    }
    if b == "0" {
        return true;
    }
    if let Some(r) = b.strip_prefix('0') {
        return all1(r, |c| ('0'..='7').contains(&c) || c == '_');
    }
    let parts: Vec<&str> = b.split(':').collect();
    let first = parts[0];
    first.starts_with(|c: char| ('1'..='9').contains(&c))
        && first.chars().all(|c| is_digit(c) || c == '_')
        && (parts.len() == 1 || sexagesimal_tail(&parts[1..]))
}

/// PyYAML's YAML 1.1 float regexp.
fn is_float(t: &str) -> bool {
    let (mant, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let exp_ok = exp.is_none_or(|e| e.len() >= 2 && e.starts_with(['-', '+']) && e[1..].chars().all(is_digit));
    let frac_ok = |f: &str| f.chars().all(|c| is_digit(c) || c == '_');
    // [-+]?[0-9][0-9_]*\.[0-9_]*(exp)?
    let signed = strip_sign(mant);
    if let Some((int, frac)) = signed.split_once('.') {
        if int.starts_with(|c: char| is_digit(c))
            && int.chars().all(|c| is_digit(c) || c == '_')
            && frac_ok(frac)
            && exp_ok
        {
            return true;
        }
    }
    // \.[0-9][0-9_]*(exp)?   (no sign)
    if let Some(frac) = mant.strip_prefix('.') {
        if frac.starts_with(|c: char| is_digit(c)) && frac_ok(frac) && exp_ok {
            return true;
        }
    }
    if exp.is_some() {
        return false;
    }
    // [-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*
    if let Some((head, frac)) = signed.split_once('.') {
        let parts: Vec<&str> = head.split(':').collect();
        if parts.len() > 1
            && parts[0].starts_with(|c: char| is_digit(c))
            && parts[0].chars().all(|c| is_digit(c) || c == '_')
            && sexagesimal_tail(&parts[1..])
            && frac_ok(frac)
        {
            return true;
        }
    }
    // [-+]?\.(inf|Inf|INF) | \.(nan|NaN|NAN)
    matches!(signed, ".inf" | ".Inf" | ".INF") || matches!(t, ".nan" | ".NaN" | ".NAN")
}

/// PyYAML's implicit resolver for a plain scalar.
fn implicit_tag(t: &str) -> &'static str {
    const BOOL: [&str; 18] = [
        "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON",
        "off", "Off", "OFF",
    ];
    if matches!(t, "" | "~" | "null" | "Null" | "NULL") {
        "tag:yaml.org,2002:null"
    } else if BOOL.contains(&t) {
        "tag:yaml.org,2002:bool"
    } else if is_int(t) {
        "tag:yaml.org,2002:int"
    } else if is_float(t) {
        "tag:yaml.org,2002:float"
    } else if t == "<<" {
        "tag:yaml.org,2002:merge"
    } else if t == "=" {
        "tag:yaml.org,2002:value"
    } else if is_timestamp(t) {
        "tag:yaml.org,2002:timestamp"
    } else {
        "tag:yaml.org,2002:str"
    }
}

/// The YAML 1.1 timestamp regexp (the value stays a string either way; the
/// tag only matters for `!!timestamp`-style errors, so a loose check does).
fn is_timestamp(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() >= 8 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-'
}

/// A Python int as msgpack carries it; beyond 64 bits, its text.
fn number(i: i128, text: &str) -> Msg {
    if let Ok(v) = i64::try_from(i) {
        Msg::Int(v)
    } else if let Ok(v) = u64::try_from(i) {
        Msg::UInt(v)
    } else {
        Msg::from(text)
    }
}

/// `SaltYamlSafeLoader.construct_scalar` (leading zeros stripped) then
/// PyYAML's `construct_yaml_int`.
fn construct_int(text: &str) -> Option<Msg> {
    let mut v = text.to_string();
    if v != "0" && v.starts_with('0') && !v.starts_with("0b") && !v.starts_with("0x") {
        v = v.trim_start_matches('0').to_string();
        if v.is_empty() {
            v = "0".into();
        }
    }
    let mut v = v.replace('_', "");
    let neg = v.starts_with('-');
    if v.starts_with(['-', '+']) {
        v.remove(0);
    }
    let big = |s: &str, radix: u32| i128::from_str_radix(s, radix).ok();
    let mag = if v == "0" {
        Some(0)
    } else if let Some(b) = v.strip_prefix("0b") {
        big(b, 2)
    } else if let Some(h) = v.strip_prefix("0x") {
        big(h, 16)
    } else if v.starts_with('0') {
        big(&v, 8)
    } else if v.contains(':') {
        v.split(':').try_fold(0i128, |acc, p| Some(acc * 60 + big(p, 10)?))
    } else {
        big(&v, 10)
    }?;
    Some(number(if neg { -mag } else { mag }, text))
}

/// PyYAML's `construct_yaml_float`; `.inf`/`.nan` stay their text in
/// the JSON projection, which has no such numbers.
fn construct_float(text: &str, mode: Mode) -> Option<Msg> {
    let v = text.replace('_', "").to_ascii_lowercase();
    let (neg, body) = match v.as_bytes().first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, v.as_str()),
    };
    let f = match body {
        ".inf" | ".nan" if mode == Mode::Json => return Some(Msg::from(text)),
        ".inf" => f64::INFINITY,
        ".nan" => f64::NAN,
        _ if body.contains(':') => body
            .split(':')
            .try_fold(0f64, |acc, p| Some(acc * 60.0 + p.parse::<f64>().ok()?))?,
        _ => body.parse::<f64>().ok()?,
    };
    let f = if neg { -f } else { f };
    // `float()` of an over-long literal is inf in Python; JSON has none.
    if mode == Mode::Json && !f.is_finite() {
        return None;
    }
    Some(Msg::F64(f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> Value {
        parse_yaml(s, Path::new("/t/master")).unwrap()
    }

    fn one(s: &str) -> Value {
        p(&format!("k: {s}\n"))["k"].clone()
    }

    fn e(s: &str) -> String {
        parse_yaml(s, Path::new("/etc/salt/master")).unwrap_err().to_string()
    }

    #[test]
    fn booleans_as_pyyaml() {
        for t in ["yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"] {
            assert_eq!(one(t), Value::Bool(true), "{t}");
        }
        for f in ["no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"] {
            assert_eq!(one(f), Value::Bool(false), "{f}");
        }
        for s in ["y", "Y", "n", "N", "yES", "tRUE", "'yes'", "\"on\"", "!!str true"] {
            assert!(one(s).is_string(), "{s} stays a string");
        }
        assert_eq!(one("!!bool 'yes'"), Value::Bool(true));
    }

    #[test]
    fn nulls() {
        for n in ["~", "null", "Null", "NULL", "", "!!null x"] {
            assert_eq!(one(n), Value::Null, "{n:?}");
        }
        for s in ["'null'", "nULL", "None", "'~'", "\"\""] {
            assert!(one(s).is_string(), "{s}");
        }
    }

    #[test]
    fn integers_as_salt_reads_them() {
        assert_eq!(one("4505"), json!(4505));
        assert_eq!(one("-12"), json!(-12));
        assert_eq!(one("+7"), json!(7));
        assert_eq!(one("1_000"), json!(1000));
        assert_eq!(one("1__0"), json!(10));
        assert_eq!(one("0x1F"), json!(31));
        assert_eq!(one("0x_1F"), json!(31));
        assert_eq!(one("0b101"), json!(5));
        assert_eq!(one("0"), json!(0));
        // Salt strips leading zeros: 0755 is 755, not 493; signed stays octal.
        assert_eq!(one("0755"), json!(755));
        assert_eq!(one("00"), json!(0));
        assert_eq!(one("0_7"), json!(7));
        assert_eq!(one("-0755"), json!(-493));
        assert_eq!(one("+0755"), json!(493));
        assert_eq!(one("!!int '0755'"), json!(755));
        // YAML 1.1 sexagesimal survives in Salt.
        assert_eq!(one("1:30"), json!(90));
        assert_eq!(one("1:2:3"), json!(3723));
        assert_eq!(one("-1:30"), json!(-90));
        for s in ["1:60", "0789", "0o17", "0b", "0x", "12abc", "'4505'", "1 000"] {
            assert!(one(s).is_string(), "{s}");
        }
        assert_eq!(one("9223372036854775807"), json!(i64::MAX));
        assert_eq!(one("18446744073709551615"), json!(u64::MAX));
        assert_eq!(one("18446744073709551616"), json!("18446744073709551616"));
    }

    #[test]
    fn floats_and_timestamps() {
        assert_eq!(one("1.5"), json!(1.5));
        assert_eq!(one("-0.25"), json!(-0.25));
        assert_eq!(one("1."), json!(1.0));
        assert!(one("1.").is_f64());
        assert_eq!(one("1.0e+3"), json!(1000.0));
        assert_eq!(one("1.5E-2"), json!(0.015));
        assert_eq!(one(".5"), json!(0.5));
        assert_eq!(one("0.1_5"), json!(0.15));
        assert_eq!(one("0:30.5"), json!(30.5));
        assert_eq!(one("190:20:30.15"), json!(685230.15));
        for s in [
            "1e3",
            "1.0e3",
            "-.5",
            "+.5",
            "1.2.3",
            "2024-01-01",
            "2024-01-01 10:00:00",
            ".",
        ] {
            assert!(one(s).is_string(), "{s}");
        }
        assert_eq!(one(".inf"), json!(".inf"));
        assert_eq!(one("-.Inf"), json!("-.Inf"));
        assert_eq!(one(".NaN"), json!(".NaN"));
        assert_eq!(one("!!float 1"), json!(1.0));
        assert_eq!(one("!!timestamp 2024-01-01"), json!("2024-01-01"));
    }

    #[test]
    fn structures_anchors_and_merge_keys() {
        let v = p("base: &b {a: 1, b: 2}\nother:\n  <<: *b\n  b: 3\nlist: [x, *b]\n4505: port\nyes: t\n~: n\n1.5: f\n");
        assert_eq!(v["other"], json!({"a": 1, "b": 3}), "explicit key wins over merged");
        assert_eq!(v["list"][1]["b"], json!(2));
        assert_eq!(v["4505"], json!("port"));
        assert_eq!(v["True"], json!("t"));
        assert_eq!(v["None"], json!("n"));
        assert_eq!(v["1.5"], json!("f"));
        // Merged keys come first, in the order of the merged mapping.
        let m = p("a: &a {x: 1, z: 3}\nc:\n  w: 0\n  <<: *a\n");
        assert_eq!(
            m["c"].as_object().unwrap().keys().collect::<Vec<_>>(),
            vec!["x", "z", "w"]
        );
        let m = p("a: &a {x: 1}\nb: &b {y: 2}\nc:\n  <<: [*a, *b]\n  z: 3\n");
        assert_eq!(m["c"], json!({"y": 2, "x": 1, "z": 3}));
        // A key given by two merge sources is a conflict in Salt's loader.
        let s = e("a: &a {x: 1}\nb: &b {x: 2, y: 2}\nc:\n  <<: [*a, *b]\n");
        assert!(
            s.contains("line 1, column 8") && s.contains("conflicting ID 'x'"),
            "{s}"
        );
        let s = e("a: 1\n<<: 5\n");
        assert!(s.contains("line 2") && s.contains("for merging"), "{s}");
        // `=` is a string as a key, and unconstructable as a value (as in Salt).
        assert_eq!(p("=: v\n")["="], json!("v"));
        assert!(e("k: =\n").contains("tag:yaml.org,2002:value"));
        assert!(e("k: <<\n").contains("tag:yaml.org,2002:merge"));
        assert_eq!(one("! 12"), json!(12), "non-specific tag resolves as plain");
        assert!(e("k: !foo bar\n").contains("could not determine a constructor for the tag '!foo'"));
        assert_eq!(one("!!set {a, b}"), json!(["a", "b"]));
        assert_eq!(one("!!omap [a: 1, b: 2]"), json!([["a", 1], ["b", 2]]));
        assert_eq!(one("!!binary aGVs\n  bG8="), json!("aGVsbG8="));
    }

    #[test]
    fn duplicate_keys_compare_as_python() {
        assert!(e("a: 1\na: 2\n").contains("line 2, column 1: found conflicting ID 'a'"));
        assert!(e("1: a\nTrue: b\n").contains("conflicting ID 'True'"));
        assert!(e("1: a\n1.0: b\n").contains("conflicting ID '1.0'"));
        assert!(e("1: a\n0x1: b\n").contains("conflicting ID '1'"));
        // A string and an int are different keys in Python.
        assert_eq!(p("'1': a\n2: b\n"), json!({"1": "a", "2": "b"}));
        assert!(e("? [a]\n: b\n").contains("line 1, column 3: found unacceptable key"));
    }

    #[test]
    fn python_objects_keep_key_types() {
        let v = parse_yaml_value(
            "12345:\n  code: [luggage]\n'12345': s\ntrue: b\n~: n\n1.5: f\n.inf: i\nk: !!binary aGVs\n  bG8=\nn: .NaN\nbig: 18446744073709551616\n",
            Path::new("/x"),
        )
        .unwrap();
        let Msg::Map(pairs) = &v else { panic!("{v:?}") };
        let keys: Vec<&Msg> = pairs.iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys[..5],
            [
                &Msg::Int(12345),
                &Msg::from("12345"),
                &Msg::Bool(true),
                &Msg::Nil,
                &Msg::F64(1.5)
            ]
        );
        assert_eq!(keys[5], &Msg::F64(f64::INFINITY));
        assert_eq!(pairs[0].1, Msg::map([("code", Msg::Array(vec![Msg::from("luggage")]))]));
        assert_eq!(v.get("k"), Some(&Msg::Bytes(b"hello".to_vec())));
        assert!(matches!(v.get("n"), Some(Msg::F64(f)) if f.is_nan()));
        assert_eq!(v.get("big"), Some(&Msg::from("18446744073709551616")));
        // The same conflicts as the JSON projection: 1 == 1.0 == True.
        let e = parse_yaml_value("1: a\ntrue: b\n", Path::new("/x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("conflicting ID 'True'"), "{e}");
        let e = parse_yaml_value("k: !!binary '@@'\n", Path::new("/x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("failed to decode base64 data"), "{e}");
        // The projection of the same document is what parse_yaml returns.
        let j = parse_yaml("4505: a\nyes: b\n.inf: c\n", Path::new("/x")).unwrap();
        assert_eq!(j, json!({"4505": "a", "True": "b", "inf": "c"}));
    }

    #[test]
    fn errors_carry_file_and_line() {
        let s = e("a: 1\nb: 2\n  c: [3\n");
        assert!(
            s.starts_with("/etc/salt/master: line 3, column 4: mapping values are not allowed in this context"),
            "{s}"
        );
        let s = e("key: [a, b\nother: 1\n");
        assert!(s.starts_with("/etc/salt/master: line 2"), "{s}");
        let s = e("k:\n\t- a\n");
        assert!(s.contains("line 2"), "{s}");
        let s = e("a: 1\n---\nb: 2\n");
        assert!(s.contains("line 2") && s.contains("single document"), "{s}");
        assert_eq!(parse_yaml("", Path::new("/x")).unwrap(), Value::Null);
        assert_eq!(parse_yaml("# only a comment\n", Path::new("/x")).unwrap(), Value::Null);
        assert_eq!(parse_yaml("---\n...\n", Path::new("/x")).unwrap(), Value::Null);
        assert_eq!(parse_yaml("- a\n- 1\n", Path::new("/x")).unwrap(), json!(["a", 1]));
        assert_eq!(parse_yaml("0755", Path::new("/x")).unwrap(), json!(755));
    }
}
