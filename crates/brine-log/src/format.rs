//! Log records on the wire and Salt's `%(field)s` format strings.

use std::time::{SystemTime, UNIX_EPOCH};

use log::Level;

/// One log record, as sent from any process to the writer.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The `log` level; a CRITICAL record is [`Level::Error`] with
    /// `critical` set (the `log` crate has no level above ERROR).
    pub level: Level,
    /// Python's CRITICAL (50): a record logged with [`crate::critical!`].
    pub critical: bool,
    /// Seconds since the epoch, with microseconds.
    pub time: f64,
    pub pid: u32,
    pub process_name: String,
    /// Logger name: the Rust module path with `.` separators.
    pub name: String,
    pub line: u32,
    pub message: String,
}

const SEP: char = '\u{1f}';

impl Record {
    pub fn now() -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    }

    /// `level␟time␟pid␟process␟name␟line␟message` (␟ = U+001F); the
    /// level is the `log` crate's number, 0 for CRITICAL.
    pub fn encode(&self) -> Vec<u8> {
        let level = if self.critical { 0 } else { self.level as usize };
        format!(
            "{}{SEP}{:.6}{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}",
            level, self.time, self.pid, self.process_name, self.name, self.line, self.message
        )
        .into_bytes()
    }

    /// Inverse of [`Record::encode`]; `None` for anything malformed.
    pub fn decode(bytes: &[u8]) -> Option<Record> {
        let s = String::from_utf8_lossy(bytes);
        let mut f = s.splitn(7, SEP);
        let n = f.next()?.parse::<usize>().ok()?;
        let level = match n {
            0 | 1 => Level::Error,
            2 => Level::Warn,
            3 => Level::Info,
            4 => Level::Debug,
            5 => Level::Trace,
            _ => return None,
        };
        Some(Record {
            level,
            critical: n == 0,
            time: f.next()?.parse().ok()?,
            pid: f.next()?.parse().ok()?,
            process_name: f.next()?.to_string(),
            name: f.next()?.to_string(),
            line: f.next()?.parse().ok()?,
            message: f.next()?.to_string(),
        })
    }

    /// Salt's level names.
    pub fn level_name(&self) -> &'static str {
        if self.critical {
            return "CRITICAL";
        }
        match self.level {
            Level::Error => "ERROR",
            Level::Warn => "WARNING",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        }
    }

    fn level_no(&self) -> u32 {
        if self.critical {
            return 50;
        }
        match self.level {
            Level::Error => 40,
            Level::Warn => 30,
            Level::Info => 20,
            Level::Debug => 10,
            Level::Trace => 5,
        }
    }
}

/// A Python `logging` format string (`%(name)-17s`, `%(msecs)03d`, …) and
/// the `strftime` format for `%(asctime)s`.
#[derive(Debug, Clone)]
pub struct Format {
    pub fmt: std::borrow::Cow<'static, str>,
    pub datefmt: std::borrow::Cow<'static, str>,
}

/// A message as it may appear in a log: every record stays one record.
/// Text a peer sent (ids, tags, targets) can reach a message, so a line
/// break is followed by an indent (a continuation can never pass for a
/// record of its own) and other control characters, which could rewrite
/// a terminal line or hide text, are written as escapes.
pub fn one_record(message: &str) -> String {
    if !message.chars().any(|c| c.is_control() && c != '\t') {
        return message.to_string();
    }
    let mut out = String::with_capacity(message.len() + 8);
    for c in message.chars() {
        match c {
            '\n' => out.push_str("\n    "),
            '\t' => out.push('\t'),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{{{:02x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

impl Format {
    /// Salt's default console format.
    pub const CONSOLE_DEFAULT: Format = Format {
        fmt: std::borrow::Cow::Borrowed("[%(levelname)-8s] %(message)s"),
        datefmt: std::borrow::Cow::Borrowed("%H:%M:%S"),
    };

    pub fn new(fmt: &str, datefmt: &str) -> Format {
        Format {
            fmt: fmt.to_string().into(),
            datefmt: datefmt.to_string().into(),
        }
    }

    /// Render `rec`. Unknown fields render empty, as a lenient formatter.
    pub fn render(&self, rec: &Record) -> String {
        let fmt = self.fmt.as_ref();
        let mut out = String::with_capacity(fmt.len() + rec.message.len() + 32);
        let b = fmt.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && i + 1 < b.len() {
                if b[i + 1] == b'%' {
                    out.push('%');
                    i += 2;
                    continue;
                }
                if b[i + 1] == b'(' {
                    if let Some(close) = fmt[i + 2..].find(')') {
                        let key = &fmt[i + 2..i + 2 + close];
                        let mut j = i + 2 + close + 1;
                        let spec_start = j;
                        while j < b.len()
                            && (b[j] == b'-' || b[j] == b'.' || b[j] == b'+' || b[j] == b' ' || b[j].is_ascii_digit())
                        {
                            j += 1;
                        }
                        if j < b.len() && b"sdfrix".contains(&b[j]) {
                            let spec = &fmt[spec_start..j];
                            let conv = b[j];
                            self.field(&mut out, rec, key, spec, conv);
                            i = j + 1;
                            continue;
                        }
                    }
                }
            }
            let ch = fmt[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
        out
    }

    fn field(&self, out: &mut String, rec: &Record, key: &str, spec: &str, conv: u8) {
        let left = spec.starts_with('-');
        let spec = spec.trim_start_matches(['-', '+', ' ']);
        let zero = spec.starts_with('0');
        let (width, prec) = match spec.split_once('.') {
            Some((w, p)) => (w.parse::<usize>().unwrap_or(0), p.parse::<usize>().ok()),
            None => (spec.parse::<usize>().unwrap_or(0), None),
        };
        let secs = rec.time.floor();
        let msecs = ((rec.time - secs) * 1000.0).floor();
        let value: String = match key {
            "message" => one_record(&rec.message),
            "name" => rec.name.clone(),
            "levelname" => rec.level_name().to_string(),
            "levelno" => rec.level_no().to_string(),
            "lineno" => rec.line.to_string(),
            "process" => rec.pid.to_string(),
            "processName" => rec.process_name.clone(),
            "asctime" => strftime(&self.datefmt, secs as i64),
            "msecs" => {
                if conv == b'd' {
                    (msecs as u64).to_string()
                } else {
                    format!("{:.*}", prec.unwrap_or(6), (rec.time - secs) * 1000.0)
                }
            }
            "created" => format!("{:.*}", prec.unwrap_or(6), rec.time),
            "module" => rec.name.rsplit('.').next().unwrap_or("").to_string(),
            "threadName" => "MainThread".to_string(),
            "thread" => rec.pid.to_string(),
            _ => String::new(),
        };
        let value = match (conv, prec) {
            (b's', Some(p)) => value.chars().take(p).collect(),
            _ => value,
        };
        let len = value.chars().count();
        if len >= width {
            out.push_str(&value);
        } else if left {
            out.push_str(&value);
            out.extend(std::iter::repeat_n(' ', width - len));
        } else {
            let pad = if zero && conv != b's' { '0' } else { ' ' };
            out.extend(std::iter::repeat_n(pad, width - len));
            out.push_str(&value);
        }
    }
}

/// Local time formatted with strftime(3).
pub fn strftime(fmt: &str, secs: i64) -> String {
    let Ok(cfmt) = std::ffi::CString::new(fmt) else {
        return String::new();
    };
    // SAFETY: localtime_r and strftime write into local buffers we own.
    unsafe {
        let t: libc::time_t = secs as libc::time_t;
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return String::new();
        }
        let mut buf = [0u8; 256];
        let n = libc::strftime(buf.as_mut_ptr() as *mut libc::c_char, buf.len(), cfmt.as_ptr(), &tm);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_stays_one_record() {
        assert_eq!(one_record("plain text"), "plain text");
        assert_eq!(one_record("tab\there"), "tab\there");
        assert_eq!(
            one_record("Authentication request from x\n2026-01-01 [CRITICAL] forged"),
            "Authentication request from x\n    2026-01-01 [CRITICAL] forged"
        );
        assert_eq!(one_record("a\rb\u{1b}[31mc\u{85}"), "a\\rb\\x{1b}[31mc\\x{85}");
        let f = Format::new("[%(levelname)s] %(message)s", "%H");
        let rec = Record {
            level: log::Level::Warn,
            critical: false,
            time: 0.0,
            pid: 1,
            process_name: "MWorker-0".into(),
            name: "t".into(),
            line: 1,
            message: "x\n[CRITICAL] y".into(),
        };
        assert_eq!(f.render(&rec), "[WARNING] x\n    [CRITICAL] y");
    }

    fn rec() -> Record {
        Record {
            level: Level::Warn,
            critical: false,
            time: 1_764_032_523.456_789,
            pid: 4242,
            process_name: "MWorker-0".into(),
            name: "brine_master.mworker".into(),
            line: 17,
            message: "hello %s world".into(),
        }
    }

    #[test]
    fn record_round_trips() {
        let r = rec();
        assert_eq!(Record::decode(&r.encode()), Some(r));
        let c = Record {
            level: Level::Error,
            critical: true,
            ..rec()
        };
        assert_eq!(Record::decode(&c.encode()), Some(c.clone()));
        let f = Format::new("[%(levelname)-8s][%(levelno)s] %(message)s", "");
        assert_eq!(f.render(&c), "[CRITICAL][50] hello %s world");
        assert_eq!(Record::decode(b"garbage"), None);
        assert_eq!(Record::decode(b"9\x1f1\x1f1\x1fa\x1fb\x1f1\x1fm"), None);
    }

    #[test]
    fn salt_logfile_format() {
        std::env::set_var("TZ", "UTC");
        let f = Format::new(
            "%(asctime)s,%(msecs)03d [%(name)-17s:%(lineno)-4d][%(levelname)-8s][%(process)d] %(message)s",
            "%Y-%m-%d %H:%M:%S",
        );
        assert_eq!(
            f.render(&rec()),
            "2025-11-25 01:02:03,456 [brine_master.mworker:17  ][WARNING ][4242] hello %s world"
        );
    }

    #[test]
    fn widths_and_literals() {
        let f = Format::new(
            "%% %(levelname)8s|%(processName)s|%(lineno)05d|%(unknown)s|%(message).5s",
            "",
        );
        assert_eq!(f.render(&rec()), "%  WARNING|MWorker-0|00017||hello");
        let short = Format::new("[%(name)-5s]", "");
        assert_eq!(short.render(&rec()), "[brine_master.mworker]");
    }
}
