//! Python methods, Salt's and Jinja2's filters, tests and globals for
//! pillar templates, with Python semantics.

use brine_proto::Value as Msg;
use minijinja::value::{from_args, Kwargs, Value as Mj, ValueKind};
use minijinja::{Environment, Error, State};
use serde_json::Value as Json;

use super::*;

/// Python methods minijinja lacks: the read-only ones pycompat provides,
/// plus a few; mutating ones fail clearly.
pub(super) fn py_methods(state: &mut State, value: &Mj, method: &str, args: &[Mj]) -> Result<Mj, Error> {
    match (value.kind(), method) {
        (ValueKind::Map, "copy") | (ValueKind::Seq, "copy") => {
            let _: () = from_args(args)?;
            Ok(value.clone())
        }
        (ValueKind::Map, "has_key") => {
            let (k,): (Mj,) = from_args(args)?;
            Ok(Mj::from(value.get_item(&k).is_ok_and(|v| !v.is_undefined())))
        }
        (ValueKind::Seq, "index") => {
            let (x,): (Mj,) = from_args(args)?;
            value
                .try_iter()?
                .position(|v| v == x)
                .map(Mj::from)
                .ok_or_else(|| err(format!("{} is not in list", pyfmt::py_repr(&x))))
        }
        (ValueKind::String, "rsplit") => {
            let (sep, max): (Option<String>, Option<i64>) = from_args(args)?;
            let s = value.as_str().unwrap_or_default();
            let max = max.filter(|m| *m >= 0).map(|m| m as usize);
            let parts: Vec<Mj> = match sep {
                Some(sep) => match max {
                    Some(m) => {
                        let mut v: Vec<&str> = s.rsplitn(m + 1, sep.as_str()).collect();
                        v.reverse();
                        v.into_iter().map(Mj::from).collect()
                    }
                    None => s.split(sep.as_str()).map(Mj::from).collect(),
                },
                None => s.split_whitespace().map(Mj::from).collect(),
            };
            Ok(Mj::from(parts))
        }
        (ValueKind::String, "zfill") => {
            let (w,): (usize,) = from_args(args)?;
            let s = value.as_str().unwrap_or_default();
            let n = s.chars().count();
            if n >= w {
                return Ok(value.clone());
            }
            let (sign, rest) = match s.chars().next() {
                Some(c @ ('+' | '-')) => (c.to_string(), &s[1..]),
                _ => (String::new(), s),
            };
            Ok(Mj::from(format!("{sign}{}{rest}", "0".repeat(w - n))))
        }
        (
            ValueKind::Map | ValueKind::Seq,
            "append" | "extend" | "update" | "setdefault" | "pop" | "popitem" | "insert" | "remove" | "clear" | "sort"
            | "reverse",
        ) => Err(err(format!(
            "{method}(): Brine's Jinja (minijinja) cannot change a {} in place; build a new value instead",
            value.kind()
        ))),
        _ => minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args),
    }
}

// ------------------------------------------------------------ filters

fn regex_for(rgx: &str, ignorecase: bool, multiline: bool) -> Result<regex::Regex, Error> {
    regex::RegexBuilder::new(rgx)
        .case_insensitive(ignorecase)
        .multi_line(multiline)
        .build()
        .map_err(|e| err(format!("invalid regular expression {rgx:?}: {e}")))
}

/// The groups of a match, as `re.Match.groups()` (3007: the whole match
/// when the pattern has no group).
fn groups(caps: regex::Captures) -> Mj {
    let items: Vec<Mj> = if caps.len() == 1 {
        vec![Mj::from(caps.get(0).map_or("", |m| m.as_str()))]
    } else {
        (1..caps.len())
            .map(|i| caps.get(i).map_or(Mj::from(()), |m| Mj::from(m.as_str())))
            .collect()
    };
    Mj::from(minijinja::value::Tuple::from(items))
}

/// Python's `re.sub` replacement syntax (`\1`, `\g<name>`) in Rust's.
fn py_replacement(val: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = val.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '$' {
            out.push_str("$$");
        } else if c == '\\' && i + 1 < chars.len() {
            let n = chars[i + 1];
            if n.is_ascii_digit() {
                let mut j = i + 1;
                let mut num = String::new();
                while j < chars.len() && chars[j].is_ascii_digit() && num.len() < 2 {
                    num.push(chars[j]);
                    j += 1;
                }
                out.push_str(&format!("${{{num}}}"));
                i = j;
                continue;
            }
            if n == 'g' && chars.get(i + 2) == Some(&'<') {
                if let Some(end) = chars[i + 3..].iter().position(|c| *c == '>') {
                    let name: String = chars[i + 3..i + 3 + end].iter().collect();
                    out.push_str(&format!("${{{name}}}"));
                    i += 4 + end;
                    continue;
                }
            }
            let lit = match n {
                'n' => Some('\n'),
                't' => Some('\t'),
                'r' => Some('\r'),
                '\\' => Some('\\'),
                _ => None,
            };
            match lit {
                Some(l) => out.push(l),
                None => {
                    out.push('\\');
                    out.push(n);
                }
            }
            i += 2;
            continue;
        } else {
            out.push(c);
        }
        i += 1;
    }
    out
}

fn as_list(v: &Mj) -> Result<Vec<Mj>, Error> {
    Ok(v.try_iter()?.collect())
}

fn unique_list(items: Vec<Mj>) -> Vec<Mj> {
    let mut out: Vec<Mj> = Vec::new();
    for v in items {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// Salt's `to_bool`.
fn to_bool(v: &Mj) -> bool {
    match v.kind() {
        ValueKind::None | ValueKind::Undefined => false,
        ValueKind::Bool => v.is_true(),
        ValueKind::String => matches!(
            v.as_str().unwrap_or_default().to_lowercase().as_str(),
            "yes" | "1" | "true"
        ),
        ValueKind::Number if v.is_integer() => v.as_i64().is_some_and(|n| n > 0),
        ValueKind::Seq | ValueKind::Map => v.len().is_some_and(|n| n > 0),
        _ => false,
    }
}

fn load_yaml_text(s: &str) -> Result<Mj, Error> {
    brine_py::parse_yaml_value(s, Path::new("<load_yaml>"))
        .map(|v| from_msg(&v))
        .map_err(|e| err(format!("Encountered error loading yaml: {e}")))
}

fn digest(kind: openssl::hash::MessageDigest, s: &str) -> Result<String, Error> {
    openssl::hash::hash(kind, s.as_bytes())
        .map(hex::encode)
        .map_err(|e| err(e.to_string()))
}

/// Jinja2's `int` filter: strings as `int()` then `int(float())`,
/// `default` (0) when that fails.
fn jinja_int(v: &Mj, default: i64, base: u32) -> Mj {
    match v.kind() {
        ValueKind::String => {
            let t = v.as_str().unwrap_or_default().trim().replace('_', "");
            let (neg, body) = match t.strip_prefix('-') {
                Some(b) => (true, b.to_string()),
                None => (false, t.strip_prefix('+').unwrap_or(&t).to_string()),
            };
            let digits = match base {
                16 => body
                    .strip_prefix("0x")
                    .or_else(|| body.strip_prefix("0X"))
                    .unwrap_or(&body)
                    .to_string(),
                8 => body
                    .strip_prefix("0o")
                    .or_else(|| body.strip_prefix("0O"))
                    .unwrap_or(&body)
                    .to_string(),
                2 => body
                    .strip_prefix("0b")
                    .or_else(|| body.strip_prefix("0B"))
                    .unwrap_or(&body)
                    .to_string(),
                _ => body,
            };
            if let Ok(n) = i64::from_str_radix(&digits, base) {
                return Mj::from(if neg { -n } else { n });
            }
            match t.parse::<f64>() {
                Ok(f) if f.is_finite() => Mj::from(f.trunc() as i64),
                _ => Mj::from(default),
            }
        }
        ValueKind::Bool => Mj::from(i64::from(v.is_true())),
        ValueKind::Number if v.is_integer() => v.clone(),
        ValueKind::Number => f64::try_from(v.clone())
            .ok()
            .filter(|f| f.is_finite())
            .map_or(Mj::from(default), |f| Mj::from(f.trunc() as i64)),
        _ => Mj::from(default),
    }
}

pub(super) fn add_filters(env: &mut Environment) {
    env.add_filter("int", |v: Mj, default: Option<i64>, base: Option<u32>| {
        jinja_int(&v, default.unwrap_or(0), base.unwrap_or(10))
    });
    env.add_filter("float", |v: Mj, default: Option<f64>| -> Mj {
        let d = default.unwrap_or(0.0);
        match v.kind() {
            ValueKind::String => Mj::from(v.as_str().unwrap_or_default().trim().parse::<f64>().unwrap_or(d)),
            ValueKind::Bool => Mj::from(if v.is_true() { 1.0 } else { 0.0 }),
            ValueKind::Number => Mj::from(f64::try_from(v).unwrap_or(d)),
            _ => Mj::from(d),
        }
    });
    env.add_filter("wordcount", |s: String| {
        s.split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .count()
    });
    env.add_filter("center", |s: String, width: Option<usize>| {
        let width = width.unwrap_or(80);
        let n = s.chars().count();
        if n >= width {
            return s;
        }
        // Python's str.center: the extra space goes right unless the
        // total padding is odd and the width is odd.
        let pad = width - n;
        let left = pad / 2 + (pad & width & 1);
        format!("{}{s}{}", " ".repeat(left), " ".repeat(pad - left))
    });
    env.add_filter("string", |v: Mj| match v.kind() {
        ValueKind::String => v,
        _ => Mj::from(pyfmt::py_str(&v)),
    });
    env.add_filter(
        "join",
        |v: Mj, d: Option<String>, kwargs: Kwargs| -> Result<Mj, Error> {
            let attribute = kwargs.get::<Option<String>>("attribute")?;
            kwargs.assert_all_used()?;
            let sep = d.unwrap_or_default();
            let mut parts = Vec::new();
            for item in v.try_iter()? {
                let item = match &attribute {
                    Some(a) => a.split('.').try_fold(item, |x, seg| match seg.parse::<usize>() {
                        Ok(i) => x.get_item_by_index(i),
                        Err(_) => x.get_attr(seg),
                    })?,
                    None => item,
                };
                parts.push(pyfmt::py_str(&item));
            }
            Ok(Mj::from(parts.join(&sep)))
        },
    );
    env.add_filter("yaml", |v: Mj, flow_style: Option<bool>| -> Result<Mj, Error> {
        if flow_style == Some(false) {
            debug!("yaml(flow_style=False) is written in flow style by Brine");
        }
        Ok(Mj::from_safe_string(pyfmt::yaml_flow(&v).map_err(err)?))
    });
    env.add_filter("json", |v: Mj, kwargs: Kwargs| -> Result<Mj, Error> {
        let sort = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(true);
        let indent = kwargs.get::<Option<usize>>("indent")?;
        kwargs.assert_all_used()?;
        Ok(Mj::from_safe_string(pyfmt::json_dumps(
            &from_mj(&v)?,
            sort,
            false,
            indent,
        )))
    });
    env.add_filter(
        "tojson",
        |v: Mj, indent: Option<usize>, kwargs: Kwargs| -> Result<Mj, Error> {
            let ascii = kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(true);
            let sort = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
            let text = pyfmt::json_dumps(&from_mj(&v)?, sort, ascii, indent)
                .replace('<', "\\u003c")
                .replace('>', "\\u003e")
                .replace('&', "\\u0026")
                .replace('\'', "\\u0027");
            Ok(Mj::from_safe_string(text))
        },
    );
    env.add_filter("python", |v: Mj| Mj::from_safe_string(pyfmt::py_repr(&v)));
    env.add_filter("yaml_encode", |v: Mj| -> Result<Mj, Error> {
        Ok(Mj::from(match v.kind() {
            ValueKind::String => brine_py::yaml_dquote(v.as_str().unwrap_or_default(), false),
            ValueKind::None | ValueKind::Undefined => "null".into(),
            ValueKind::Bool | ValueKind::Number => pyfmt::yaml_flow(&v).map_err(err)?,
            _ => {
                return Err(err(format!(
                    "yaml_encode() only works with YAML scalar data; failed for {}",
                    v.kind()
                )))
            }
        }))
    });
    env.add_filter("yaml_dquote", |v: Mj| {
        Mj::from(brine_py::yaml_dquote(&pyfmt::py_str(&v), false))
    });
    env.add_filter("yaml_squote", |v: Mj| {
        Mj::from(brine_py::yaml_squote(&pyfmt::py_str(&v)))
    });
    env.add_filter("load_yaml", |v: Mj| load_yaml_text(&pyfmt::py_str(&v)));
    env.add_filter("load_json", |v: Mj| -> Result<Mj, Error> {
        let s = pyfmt::py_str(&v);
        serde_json::from_str::<Json>(&s)
            .map(|j| to_mj(&j))
            .map_err(|_| err(format!("Unable to load json from {s}")))
    });
    env.add_filter("load_text", |v: Mj| Mj::from(pyfmt::py_str(&v)));
    env.add_filter(
        "regex_search",
        |txt: String, rgx: String, ignorecase: Option<bool>, multiline: Option<bool>| -> Result<Mj, Error> {
            let re = regex_for(&rgx, ignorecase.unwrap_or(false), multiline.unwrap_or(false))?;
            Ok(re.captures(&txt).map_or(Mj::from(()), groups))
        },
    );
    env.add_filter(
        "regex_match",
        |txt: String, rgx: String, ignorecase: Option<bool>, multiline: Option<bool>| -> Result<Mj, Error> {
            let re = regex_for(&format!("^(?:{rgx})"), ignorecase.unwrap_or(false), false)?;
            let _ = multiline;
            Ok(re.captures(&txt).map_or(Mj::from(()), groups))
        },
    );
    env.add_filter(
        "regex_replace",
        |txt: String,
         rgx: String,
         val: String,
         ignorecase: Option<bool>,
         multiline: Option<bool>|
         -> Result<Mj, Error> {
            let re = regex_for(&rgx, ignorecase.unwrap_or(false), multiline.unwrap_or(false))?;
            Ok(Mj::from(
                re.replace_all(&txt, py_replacement(&val).as_str()).into_owned(),
            ))
        },
    );
    env.add_filter("regex_escape", |s: String| Mj::from(regex::escape(&s)));
    env.add_filter("unique", |v: Mj| -> Result<Mj, Error> {
        Ok(Mj::from(unique_list(as_list(&v)?)))
    });
    env.add_filter("to_bool", |v: Mj| to_bool(&v));
    env.add_filter("quote", |s: String| -> Mj {
        if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c)) {
            Mj::from(s)
        } else {
            Mj::from(format!("'{}'", s.replace('\'', "'\"'\"'")))
        }
    });
    env.add_filter("sequence", |v: Mj| match v.kind() {
        ValueKind::Seq | ValueKind::Map => v,
        _ => Mj::from(vec![v]),
    });
    env.add_filter("skip", |_v: Mj| Mj::from(""));
    env.add_filter("is_list", |v: Mj| v.kind() == ValueKind::Seq && !v.is_tuple());
    env.add_filter("is_iter", |v: Mj| {
        matches!(v.kind(), ValueKind::Seq | ValueKind::Map | ValueKind::Iterable)
    });
    env.add_filter("union", |a: Mj, b: Mj| -> Result<Mj, Error> {
        let mut all = as_list(&a)?;
        all.extend(as_list(&b)?);
        Ok(Mj::from(unique_list(all)))
    });
    env.add_filter("intersect", |a: Mj, b: Mj| -> Result<Mj, Error> {
        let b = as_list(&b)?;
        Ok(Mj::from(unique_list(
            as_list(&a)?.into_iter().filter(|x| b.contains(x)).collect(),
        )))
    });
    env.add_filter("difference", |a: Mj, b: Mj| -> Result<Mj, Error> {
        let b = as_list(&b)?;
        Ok(Mj::from(unique_list(
            as_list(&a)?.into_iter().filter(|x| !b.contains(x)).collect(),
        )))
    });
    env.add_filter("symmetric_difference", |a: Mj, b: Mj| -> Result<Mj, Error> {
        let (a, b) = (as_list(&a)?, as_list(&b)?);
        let mut out: Vec<Mj> = a.iter().filter(|x| !b.contains(x)).cloned().collect();
        out.extend(b.iter().filter(|x| !a.contains(x)).cloned());
        Ok(Mj::from(unique_list(out)))
    });
    env.add_filter("avg", |v: Mj| -> Result<Mj, Error> {
        let items = as_list(&v)?;
        if items.is_empty() {
            return Ok(Mj::from(0.0));
        }
        let sum: f64 = items.iter().filter_map(|x| f64::try_from(x.clone()).ok()).sum();
        Ok(Mj::from(sum / items.len() as f64))
    });
    env.add_filter("base64_encode", |s: String| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
    });
    env.add_filter("base64_decode", |s: String| -> Result<Mj, Error> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map_err(|e| err(e.to_string()))?;
        Ok(String::from_utf8(bytes).map_or_else(|e| Mj::from_bytes(e.into_bytes()), Mj::from))
    });
    env.add_filter("md5", |s: String| digest(openssl::hash::MessageDigest::md5(), &s));
    env.add_filter("sha1", |s: String| digest(openssl::hash::MessageDigest::sha1(), &s));
    env.add_filter("sha256", |s: String| digest(openssl::hash::MessageDigest::sha256(), &s));
    env.add_filter("sha512", |s: String| digest(openssl::hash::MessageDigest::sha512(), &s));
    env.add_filter(
        "traverse",
        |v: Mj, key: String, default: Option<Mj>, delimiter: Option<String>| -> Result<Mj, Error> {
            let data = to_msg(&v)?;
            Ok(
                brine_targeting::traverse(&data, &key, delimiter.as_deref().unwrap_or(":"))
                    .map(from_msg)
                    .unwrap_or_else(|| default.unwrap_or(Mj::from(()))),
            )
        },
    );
    env.add_filter("path_join", |parts: minijinja::value::Rest<String>| {
        let mut out = String::new();
        for p in parts.iter() {
            if p.starts_with('/') {
                out = p.clone();
            } else if out.is_empty() || out.ends_with('/') {
                out.push_str(p);
            } else {
                out.push('/');
                out.push_str(p);
            }
        }
        out
    });
    env.add_filter("flatten", |v: Mj, levels: Option<i64>| -> Result<Mj, Error> {
        fn flat(items: Vec<Mj>, levels: Option<i64>, out: &mut Vec<Mj>) -> Result<(), Error> {
            for x in items {
                if x.kind() == ValueKind::Seq && levels.is_none_or(|l| l > 0) {
                    flat(as_list(&x)?, levels.map(|l| l - 1), out)?;
                } else {
                    out.push(x);
                }
            }
            Ok(())
        }
        let mut out = Vec::new();
        flat(as_list(&v)?, levels, &mut out)?;
        Ok(Mj::from(out))
    });
    env.add_filter("min", |v: Mj| -> Result<Mj, Error> {
        Ok(as_list(&v)?
            .into_iter()
            .min_by(|a, b| a.cmp(b))
            .unwrap_or(Mj::UNDEFINED))
    });
    env.add_filter("max", |v: Mj| -> Result<Mj, Error> {
        Ok(as_list(&v)?
            .into_iter()
            .max_by(|a, b| a.cmp(b))
            .unwrap_or(Mj::UNDEFINED))
    });
    env.add_filter("to_num", |v: Mj| -> Mj {
        let s = pyfmt::py_str(&v);
        if let Ok(i) = s.trim().parse::<i64>() {
            return Mj::from(i);
        }
        s.trim().parse::<f64>().map(Mj::from).unwrap_or(v)
    });
    env.add_filter("str_to_num", |v: Mj| -> Mj {
        let s = pyfmt::py_str(&v);
        s.trim().parse::<i64>().map(Mj::from).unwrap_or(v)
    });
    env.add_filter("contains_whitespace", |s: String| s.chars().any(char::is_whitespace));
    env.add_filter("is_hex", |s: String| {
        let t = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(&s);
        !t.is_empty() && t.chars().all(|c| c.is_ascii_hexdigit())
    });
    env.add_filter("substring_in_list", |s: String, list: Mj| -> Result<bool, Error> {
        Ok(as_list(&list)?
            .iter()
            .any(|x| x.as_str().is_some_and(|x| x.contains(&s))))
    });
    env.add_filter("sorted_ignorecase", |v: Mj| -> Result<Mj, Error> {
        let mut items = as_list(&v)?;
        items.sort_by_key(|x| pyfmt::py_str(x).to_lowercase());
        Ok(Mj::from(items))
    });
    env.add_filter("is_ip", |s: String| s.parse::<std::net::IpAddr>().is_ok());
    env.add_filter("is_ipv4", |s: String| s.parse::<std::net::Ipv4Addr>().is_ok());
    env.add_filter("is_ipv6", |s: String| s.parse::<std::net::Ipv6Addr>().is_ok());
    env.add_filter("to_snake_case", |s: String| {
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        }
        out
    });
    env.add_filter("to_camelcase", |s: String, uppercamel: Option<bool>| {
        let mut out = String::new();
        for (i, part) in s.split('_').enumerate() {
            let mut cs = part.chars();
            match cs.next() {
                Some(c) if i > 0 || uppercamel.unwrap_or(false) => {
                    out.extend(c.to_uppercase());
                    out.push_str(cs.as_str());
                }
                Some(c) => {
                    out.push(c);
                    out.push_str(cs.as_str());
                }
                None => {}
            }
        }
        out
    });
    env.add_filter("exactly_one_true", |v: Mj| -> Result<bool, Error> {
        Ok(as_list(&v)?.iter().filter(|x| x.is_true()).count() == 1)
    });
    env.add_filter("exactly_n_true", |v: Mj, n: Option<usize>| -> Result<bool, Error> {
        Ok(as_list(&v)?.iter().filter(|x| x.is_true()).count() == n.unwrap_or(1))
    });
    env.add_filter("dict_to_sls_yaml_params", |v: Mj| -> Result<Mj, Error> {
        let mut lines = Vec::new();
        for k in as_list(&v)? {
            let val = v.get_item(&k)?;
            lines.push(format!(
                "- {}: {}",
                pyfmt::yaml_flow(&k).map_err(err)?,
                pyfmt::yaml_flow(&val).map_err(err)?
            ));
        }
        Ok(Mj::from_safe_string(lines.join("\n")))
    });
    env.add_filter("to_entries", |v: Mj| -> Result<Mj, Error> {
        let mut out = Vec::new();
        for k in as_list(&v)? {
            let val = v.get_item(&k)?;
            out.push(Mj::from_iter([("key".to_string(), k), ("value".to_string(), val)]));
        }
        Ok(Mj::from(out))
    });
    env.add_filter("from_entries", |v: Mj| -> Result<Mj, Error> {
        let mut out: Vec<(Mj, Mj)> = Vec::new();
        for e in as_list(&v)? {
            let k = ["key", "k", "name", "Name", "Key"]
                .iter()
                .find_map(|n| e.get_attr(n).ok().filter(|x| !x.is_undefined()));
            let val = ["value", "v", "Value"]
                .iter()
                .find_map(|n| e.get_attr(n).ok().filter(|x| !x.is_undefined()));
            out.push((k.unwrap_or(Mj::from(())), val.unwrap_or(Mj::from(()))));
        }
        Ok(Mj::from_iter(out))
    });
    for name in [
        "set_dict_key_value",
        "append_dict_key_value",
        "extend_dict_key_value",
        "update_dict_key_value",
    ] {
        env.add_filter(
            name,
            move |d: Mj, keys: String, value: Mj, delimiter: Option<String>| -> Result<Mj, Error> {
                let mut data = to_msg(&d)?;
                let value = to_msg(&value)?;
                let delim = delimiter.unwrap_or_else(|| ":".into());
                dict_key_op(name, &mut data, &keys, value, &delim).map_err(err)?;
                Ok(from_msg(&data))
            },
        );
    }
}

/// Salt's `set_dict_key_value` family, on a copy (minijinja values are
/// immutable: the filter's result is what changed).
fn dict_key_op(op: &str, data: &mut Msg, keys: &str, value: Msg, delim: &str) -> Result<(), String> {
    use brine_py::dict;
    /// `d[key]`, set to `init` first unless it already satisfies `keep`.
    fn slot<'a>(d: &'a mut Msg, key: &str, keep: fn(&Msg) -> bool, init: Msg) -> Result<&'a mut Msg, String> {
        let Msg::Map(m) = d else {
            return Err("not a dict".into());
        };
        let key = Msg::from(key);
        let i = match dict::position(m, &key) {
            Some(i) => {
                if !keep(&m[i].1) {
                    m[i].1 = init;
                }
                i
            }
            None => {
                m.push((key, init));
                m.len() - 1
            }
        };
        Ok(&mut m[i].1)
    }
    let parts: Vec<&str> = keys.split(delim).collect();
    let (last, path) = parts.split_last().ok_or("no key")?;
    let mut ptr = data;
    for p in path {
        ptr = slot(ptr, p, Msg::is_map, Msg::Map(Vec::new()))?;
    }
    match op {
        "set_dict_key_value" => {
            *slot(ptr, last, |_| false, Msg::Nil)? = value;
        }
        "update_dict_key_value" => {
            let target = slot(ptr, last, |v| !v.is_nil(), Msg::Map(Vec::new()))?;
            let (Msg::Map(t), Msg::Map(v)) = (target, value) else {
                return Err("The last key contains a non-dict, which cannot update.".into());
            };
            for (k, x) in v {
                dict::insert(t, k, x);
            }
        }
        _ => {
            let target = slot(ptr, last, |v| !v.is_nil(), Msg::Array(Vec::new()))?;
            let Msg::Array(t) = target else {
                return Err("The last key contains a non-list, which cannot append.".into());
            };
            match (op, value) {
                ("extend_dict_key_value", Msg::Array(v)) => t.extend(v),
                ("extend_dict_key_value", _) => return Err("Cannot extend a list with a non-list".into()),
                (_, v) => t.push(v),
            }
        }
    }
    Ok(())
}

pub(super) fn add_tests(env: &mut Environment) {
    env.add_test(
        "match",
        |txt: String, rgx: String, ignorecase: Option<bool>, multiline: Option<bool>| -> Result<bool, Error> {
            let re = regex_for(
                &format!("^(?:{rgx})"),
                ignorecase.unwrap_or(false),
                multiline.unwrap_or(false),
            )?;
            Ok(re.is_match(&txt))
        },
    );
    env.add_test("equalto", |a: Mj, b: Mj| a == b);
    env.add_test("list", |v: Mj| v.kind() == ValueKind::Seq && !v.is_tuple());
}

pub(super) fn add_globals(env: &mut Environment) {
    env.add_function("__mut", crate::mutable::mutable);
    env.add_function(
        "__salt_import",
        |state: &State, name: String, fmt: String| -> Result<Mj, Error> {
            let text = state.get_template(&name)?.render(())?;
            match fmt.as_str() {
                "yaml" => load_yaml_text(&text),
                "json" => serde_json::from_str::<Json>(&text)
                    .map(|j| to_mj(&j))
                    .map_err(|_| err(format!("Unable to load json from {text}"))),
                _ => Ok(Mj::from(text)),
            }
        },
    );
    env.add_function("raise", |msg: Mj| -> Result<Mj, Error> {
        Err(err(pyfmt::py_str(&msg)))
    });
    env.add_function("odict", |args: &[Mj]| -> Result<Mj, Error> {
        let (pos, kw) = split_args(args)?;
        let mut out: Vec<(Mj, Mj)> = Vec::new();
        if let Some(first) = pos.first() {
            if first.kind() == ValueKind::Map {
                for k in as_list(first)? {
                    let v = first.get_item(&k)?;
                    out.push((k, v));
                }
            } else {
                for pair in as_list(first)? {
                    let items = as_list(&pair)?;
                    if let [k, v] = items.as_slice() {
                        out.push((k.clone(), v.clone()));
                    }
                }
            }
        }
        if let Some(kw) = kw {
            for k in kw.args() {
                out.push((Mj::from(k), kw.get::<Mj>(k)?));
            }
        }
        Ok(Mj::from_iter(out))
    });
}
