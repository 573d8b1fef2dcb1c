//! Salt's `nested` outputter (`salt/output/nested.py`, `NestDisplay`):
//! the default for execution functions.

use brine_proto::Value;

use crate::color::{strip_esc, Colors};
use crate::py;

/// `NestDisplay(retcode)`.
pub struct Nest {
    pub colors: Colors,
    pub strip_colors: bool,
    pub retcode: i64,
}

impl Nest {
    /// `ustring`: indent, colour, prefix, text, reset, suffix.
    fn line(&self, indent: usize, color: &str, msg: &str, prefix: &str, suffix: &str) -> String {
        format!("{}{color}{prefix}{msg}{}{suffix}", " ".repeat(indent), self.colors.endc)
    }

    /// `display(ret, indent, prefix, out)`.
    pub fn display(&self, ret: &Value, indent: usize, prefix: &str, out: &mut Vec<String>) {
        let c = &self.colors;
        let (list_color, map_color) = if self.retcode != 0 {
            (c.red, c.red)
        } else {
            (c.green, c.cyan)
        };
        match ret {
            Value::Nil | Value::Bool(_) => {
                out.push(self.line(indent, c.light_yellow, &brine_py::to_str(ret), prefix, ""))
            }
            Value::Int(_) | Value::UInt(_) | Value::F32(_) | Value::F64(_) => {
                out.push(self.line(indent, c.light_yellow, &brine_py::repr(ret), prefix, ""))
            }
            Value::Str(s) => self.text(s, indent, prefix, out),
            // Bytes are decoded as UTF-8 first; undecodable ones are shown
            // as nothing (they are none of the types display knows).
            Value::Bytes(b) => {
                if let Ok(s) = std::str::from_utf8(b) {
                    self.text(s, indent, prefix, out)
                }
            }
            Value::Array(items) => {
                for item in items {
                    if matches!(item, Value::Array(_) | Value::Map(_)) {
                        out.push(self.line(indent, list_color, "|_", "", ""));
                        let p = if item.is_map() { "" } else { "- " };
                        self.display(item, indent + 2, p, out);
                    } else {
                        self.display(item, indent, "- ", out);
                    }
                }
            }
            Value::Map(pairs) => {
                if indent > 0 {
                    out.push(self.line(indent, map_color, "----------", "", ""));
                }
                // sorted(ret); keys that do not compare are made text first.
                match py::sorted_keys(pairs) {
                    Some(order) => {
                        for i in order {
                            let (k, v) = &pairs[i];
                            out.push(self.line(indent, map_color, &brine_py::to_str(k), prefix, ":"));
                            self.display(v, indent + 4, "", out);
                        }
                    }
                    None => {
                        let mut items = py::str_keyed(pairs);
                        items.sort_by(|a, b| a.0.cmp(&b.0));
                        for (k, v) in items {
                            out.push(self.line(indent, map_color, &k, prefix, ":"));
                            self.display(v, indent + 4, "", out);
                        }
                    }
                }
            }
            Value::Ext(..) => {}
        }
    }

    fn text(&self, s: &str, indent: usize, prefix: &str, out: &mut Vec<String>) {
        for (i, line) in py::splitlines(s, false).into_iter().enumerate() {
            let p = if i == 0 {
                prefix.to_string()
            } else {
                " ".repeat(prefix.len())
            };
            let line = if self.strip_colors {
                strip_esc(line)
            } else {
                line.to_string()
            };
            out.push(self.line(indent, self.colors.green, &line, &p, ""));
        }
    }
}

/// `nested.output(ret, nested_indent=…, _retcode=…)`.
pub fn output(ret: &Value, colors: Colors, strip_colors: bool, indent: usize, retcode: i64) -> String {
    let nest = Nest {
        colors,
        strip_colors,
        retcode,
    };
    let mut lines = Vec::new();
    nest.display(ret, indent, "", &mut lines);
    lines.join("\n")
}
