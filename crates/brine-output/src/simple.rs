//! The small outputters: `txt`, `raw`, `newline_values_only`, `key`,
//! `no_return`, `yaml`, `pprint`, `json`.

use brine_proto::Value;

use crate::color::{get_colors, strip_esc};
use crate::highstate::Fallback;
use crate::{json, pprint, py, Indent, Opts};

type R<T> = Result<T, Fallback>;

/// `txt`: `key: line` for each line of each value of a dict; text as is;
/// anything else through `pprint.pformat`.
pub fn txt(data: &Value) -> String {
    let mut ret = String::new();
    match data {
        Value::Map(pairs) => {
            for (k, v) in pairs {
                let key = brine_py::to_str(k);
                match v {
                    Value::Str(s) => {
                        for line in py::splitlines(s, false) {
                            ret += &format!("{key}: {line}\n");
                        }
                    }
                    Value::Bytes(b) => {
                        for line in split_bytes_lines(b) {
                            ret += &format!("{key}: {}\n", brine_py::bytes_repr(line));
                        }
                    }
                    other => ret += &format!("{key}: {}\n", brine_py::to_str(other)),
                }
            }
        }
        Value::Str(s) => ret += &format!("{s}\n"),
        other => ret += &format!("{}\n", pprint::pformat(other, 1)),
    }
    ret
}

/// `bytes.splitlines()`: `\n`, `\r`, `\r\n`.
fn split_bytes_lines(b: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\n' || b[i] == b'\r' {
            out.push(&b[start..i]);
            if b[i] == b'\r' && b.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
            start = i + 1;
        }
        i += 1;
    }
    if start < b.len() {
        out.push(&b[start..]);
    }
    out
}

/// `raw`: `str(data)`.
pub fn raw(data: &Value) -> String {
    brine_py::to_str(data)
}

/// `newline_values_only`: each minion's value (a list's items one by one)
/// as `str()`, one a line.
pub fn newline_values_only(data: &Value) -> R<String> {
    let Value::Map(pairs) = data else { return Err(Fallback) };
    let mut values = Vec::new();
    for (_, v) in pairs {
        match v {
            Value::Array(items) => values.extend(items.iter().map(brine_py::to_str)),
            other => values.push(brine_py::to_str(other)),
        }
    }
    Ok(values.join("\n"))
}

/// `key`: salt-key's listing, `{status: [ids]}` or `{status: {id: text}}`
/// with the statuses of `pki_dir` (minions, minions_pre, …, local).
pub fn key(data: &Value, opts: &Opts) -> R<String> {
    let c = get_colors(opts.color);
    let Value::Map(pairs) = data else { return Err(Fallback) };
    let order = py::sorted_keys(pairs).ok_or(Fallback)?;
    let mut ret = String::new();
    for i in order {
        let (status, items) = &pairs[i];
        let (title_color, title, color) = match status.as_str() {
            Some("minions_pre") => (c.light_red, "Unaccepted Keys:", c.red),
            Some("minions") => (c.light_green, "Accepted Keys:", c.green),
            Some("minions_denied") => (c.light_magenta, "Denied Keys:", c.magenta),
            Some("minions_rejected") => (c.light_blue, "Rejected Keys:", c.blue),
            Some("local") => (c.light_magenta, "Local Keys:", c.magenta),
            _ => return Err(Fallback),
        };
        ret += &format!("{title_color}{title}{}\n", c.endc);
        let show = |k: &Value| {
            let k = brine_py::to_str(k);
            if opts.strip_colors {
                strip_esc(&k)
            } else {
                k
            }
        };
        match items {
            Value::Array(ids) => {
                let mut ids: Vec<&Value> = ids.iter().collect();
                let pairs: Vec<(Value, Value)> = ids.iter().map(|v| ((*v).clone(), Value::Nil)).collect();
                let order = py::sorted_keys(&pairs).ok_or(Fallback)?;
                ids = order.into_iter().map(|i| ids[i]).collect();
                for id in ids {
                    ret += &format!("{color}{}{}\n", show(id), c.endc);
                }
            }
            Value::Map(kv) => {
                for i in py::sorted_keys(kv).ok_or(Fallback)? {
                    let (k, v) = &kv[i];
                    ret += &format!("{color}{}:  {}{}\n", show(k), brine_py::to_str(v), c.endc);
                }
            }
            _ => {}
        }
    }
    Ok(ret)
}

/// `no_return`: the minions that did not return, in red.
pub fn no_return(data: &Value, opts: &Opts) -> R<String> {
    let c = get_colors(opts.color);
    fn walk(v: &Value, indent: usize, out: &mut String, c: &crate::color::Colors) -> R<()> {
        match v {
            Value::Str(s) => {
                for line in s.split('\n') {
                    *out += &format!("{}{}{line}{}\n", c.red, " ".repeat(indent), c.endc);
                }
            }
            Value::Map(pairs) => {
                for i in py::sorted_keys(pairs).ok_or(Fallback)? {
                    let (k, val) = &pairs[i];
                    *out += &format!("{}{}{}{}:\n", c.cyan, " ".repeat(indent), brine_py::to_str(k), c.endc);
                    walk(val, indent + 4, out, c)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
    let mut out = String::new();
    walk(data, 0, &mut out, &c)?;
    Ok(out)
}

/// `yaml`: `safe_dump` in block style (indented by `output_indent` when
/// given), flow style for a negative `output_indent`. `None` where the
/// dumper raises (Salt logs it and prints nothing).
pub fn yaml(data: &Value, opts: &Opts) -> R<Option<String>> {
    let dumped = match &opts.output_indent {
        Indent::Absent => brine_py::yaml_safe_dump(data),
        Indent::Int(n) if *n >= 0 => brine_py::yaml_safe_dump_indent(data, *n as usize),
        Indent::Int(_) => return Ok(flow(data).map(|s| format!("{s}\n"))),
        // `output_indent >= 0` raises for None and text.
        _ => return Err(Fallback),
    };
    Ok(dumped.ok())
}

/// PyYAML's flow style (`default_flow_style=True`) on one line.
fn flow(v: &Value) -> Option<String> {
    Some(match v {
        Value::Map(pairs) => {
            let order = py::sorted_keys(pairs).unwrap_or_else(|| (0..pairs.len()).collect());
            let mut items = Vec::new();
            for i in order {
                items.push(format!("{}: {}", flow(&pairs[i].0)?, flow(&pairs[i].1)?));
            }
            format!("{{{}}}", items.join(", "))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(flow).collect::<Option<Vec<_>>>()?.join(", ")),
        Value::Str(s) => {
            let plain = brine_py::yaml_str(s);
            // Flow indicators end a plain scalar inside a collection.
            if !plain.starts_with(['\'', '"']) && s.contains([',', '[', ']', '{', '}']) {
                brine_py::yaml_squote(s)
            } else {
                plain
            }
        }
        other => {
            let doc = brine_py::yaml_safe_dump(other).ok()?;
            let doc = doc.strip_suffix('\n').unwrap_or(&doc);
            // A lone scalar document ends with the `...` marker line.
            doc.strip_suffix("\n...").unwrap_or(doc).to_string()
        }
    })
}

/// `pprint`: `pformat(data, indent=output_indent)`.
pub fn pprint(data: &Value, opts: &Opts) -> R<String> {
    match &opts.output_indent {
        Indent::Absent => Ok(pprint::pformat(data, 1)),
        Indent::Int(n) if *n >= 0 => Ok(pprint::pformat(data, *n as usize)),
        Indent::Int(_) => Ok(pprint::pformat(data, 1)),
        _ => Err(Fallback),
    }
}

/// `json`: four spaces unless `output_indent` says otherwise (`None` or a
/// negative number: one line; `pretty`: four spaces, keys sorted).
pub fn json_out(data: &Value, opts: &Opts) -> String {
    let (indent, sort) = match &opts.output_indent {
        Indent::Absent => (Some("    ".to_string()), false),
        Indent::Null => (None, false),
        Indent::Pretty => (Some("    ".to_string()), true),
        Indent::Int(n) if *n < 0 => (None, false),
        Indent::Int(n) => (Some(" ".repeat(*n as usize)), false),
        Indent::Text(s) => (Some(s.clone()), false),
    };
    json::dumps(data, indent.as_deref(), sort).unwrap_or_else(|_| "{}".into())
}
