//! Python 3.11's `pprint.pformat(obj, indent=1, width=80)` over msgpack
//! values: dicts sorted, containers broken over lines when their repr does
//! not fit, long strings and bytes split into adjacent literals.

use brine_proto::Value;

use crate::py;

/// `pprint.pformat(v, indent=indent)` (width 80).
pub fn pformat(v: &Value, indent: usize) -> String {
    let p = Printer { indent, width: 80 };
    let mut out = String::new();
    p.format(v, &mut out, 0, 0, 0);
    out
}

struct Printer {
    indent: usize,
    width: usize,
}

/// `_safe_repr`: `repr` with dict items in sorted order.
fn safe_repr(v: &Value) -> String {
    match v {
        Value::Map(pairs) => {
            let items: Vec<String> = py::safe_sorted(pairs)
                .into_iter()
                .map(|i| format!("{}: {}", safe_repr(&pairs[i].0), safe_repr(&pairs[i].1)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(safe_repr).collect::<Vec<_>>().join(", ")),
        other => brine_py::repr(other),
    }
}

impl Printer {
    fn format(&self, v: &Value, out: &mut String, indent: usize, allowance: usize, level: usize) {
        let rep = safe_repr(v);
        let max_width = self.width as isize - indent as isize - allowance as isize;
        if py::len(&rep) as isize > max_width {
            match v {
                Value::Map(pairs) => return self.dict(pairs, out, indent, allowance, level + 1),
                Value::Array(items) => return self.list(items, out, indent, allowance, level + 1),
                Value::Str(s) => return self.string(s, out, indent, allowance, level + 1),
                Value::Bytes(b) => return self.bytes(b, out, indent, allowance, level + 1),
                _ => {}
            }
        }
        out.push_str(&rep);
    }

    fn dict(&self, pairs: &[(Value, Value)], out: &mut String, indent: usize, allowance: usize, level: usize) {
        out.push('{');
        if self.indent > 1 {
            out.push_str(&" ".repeat(self.indent - 1));
        }
        if !pairs.is_empty() {
            let indent = indent + self.indent;
            let allowance = allowance + 1;
            let delimnl = format!(",\n{}", " ".repeat(indent));
            let order = py::safe_sorted(pairs);
            let last_index = order.len() - 1;
            for (n, i) in order.into_iter().enumerate() {
                let last = n == last_index;
                let (k, val) = &pairs[i];
                let rep = safe_repr(k);
                out.push_str(&rep);
                out.push_str(": ");
                self.format(
                    val,
                    out,
                    indent + py::len(&rep) + 2,
                    if last { allowance } else { 1 },
                    level,
                );
                if !last {
                    out.push_str(&delimnl);
                }
            }
        }
        out.push('}');
    }

    fn list(&self, items: &[Value], out: &mut String, indent: usize, allowance: usize, level: usize) {
        out.push('[');
        let indent = indent + self.indent;
        if self.indent > 1 {
            out.push_str(&" ".repeat(self.indent - 1));
        }
        let delimnl = format!(",\n{}", " ".repeat(indent));
        for (n, item) in items.iter().enumerate() {
            let last = n + 1 == items.len();
            if n > 0 {
                out.push_str(&delimnl);
            }
            self.format(item, out, indent, if last { allowance + 1 } else { 1 }, level);
        }
        out.push(']');
    }

    fn string(&self, s: &str, out: &mut String, mut indent: usize, mut allowance: usize, level: usize) {
        if s.is_empty() {
            out.push_str(&brine_py::str_repr(s));
            return;
        }
        let mut chunks: Vec<String> = Vec::new();
        let lines = py::splitlines(s, true);
        if level == 1 {
            indent += 1;
            allowance += 1;
        }
        let max_width = self.width as isize - indent as isize;
        let mut max_width1 = max_width;
        let mut rep = String::new();
        for (i, line) in lines.iter().enumerate() {
            rep = brine_py::str_repr(line);
            let last_line = i + 1 == lines.len();
            if last_line {
                max_width1 -= allowance as isize;
            }
            if py::len(&rep) as isize <= max_width1 {
                chunks.push(rep.clone());
                continue;
            }
            // Alternating runs of non-space and space (`\S*\s*`).
            let parts = space_parts(line);
            let mut max_width2 = max_width;
            let mut current = String::new();
            for (j, part) in parts.iter().enumerate() {
                let candidate = format!("{current}{part}");
                if j + 1 == parts.len() && last_line {
                    max_width2 -= allowance as isize;
                }
                if py::len(&brine_py::str_repr(&candidate)) as isize > max_width2 {
                    if !current.is_empty() {
                        chunks.push(brine_py::str_repr(&current));
                    }
                    current = part.to_string();
                } else {
                    current = candidate;
                }
            }
            if !current.is_empty() {
                chunks.push(brine_py::str_repr(&current));
            }
        }
        if chunks.len() == 1 {
            out.push_str(&rep);
            return;
        }
        if level == 1 {
            out.push('(');
        }
        for (i, c) in chunks.iter().enumerate() {
            if i > 0 {
                out.push('\n');
                out.push_str(&" ".repeat(indent));
            }
            out.push_str(c);
        }
        if level == 1 {
            out.push(')');
        }
    }

    fn bytes(&self, b: &[u8], out: &mut String, mut indent: usize, mut allowance: usize, level: usize) {
        if b.len() <= 4 {
            out.push_str(&brine_py::bytes_repr(b));
            return;
        }
        let parens = level == 1;
        if parens {
            indent += 1;
            allowance += 1;
            out.push('(');
        }
        // `_wrap_bytes_repr(b, width - indent, allowance)`: 4-byte steps.
        let mut width = self.width as isize - indent as isize;
        let last = b.len() / 4 * 4;
        let mut current: Vec<u8> = Vec::new();
        let mut reps = Vec::new();
        for i in (0..b.len()).step_by(4) {
            let part = &b[i..(i + 4).min(b.len())];
            let mut candidate = current.clone();
            candidate.extend_from_slice(part);
            if i == last {
                width -= allowance as isize;
            }
            if brine_py::bytes_repr(&candidate).len() as isize > width {
                if !current.is_empty() {
                    reps.push(brine_py::bytes_repr(&current));
                }
                current = part.to_vec();
            } else {
                current = candidate;
            }
        }
        if !current.is_empty() {
            reps.push(brine_py::bytes_repr(&current));
        }
        out.push_str(&reps.join(&format!("\n{}", " ".repeat(indent))));
        if parens {
            out.push(')');
        }
    }
}

/// `re.findall(r'\S*\s*', line)` without the final empty match.
fn space_parts(line: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_space = false;
    for (i, c) in line.char_indices() {
        let space = py::is_space(c);
        if in_space && !space {
            parts.push(&line[start..i]);
            start = i;
        }
        in_space = space;
    }
    if start < line.len() {
        parts.push(&line[start..]);
    }
    parts
}
