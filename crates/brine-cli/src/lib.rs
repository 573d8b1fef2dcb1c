//! Salt's command-line tools, for Brine. `salt-key` works on the same
//! `pki_dir` as Python's (same config, same layout, same output), so keys
//! managed by either are seen by both and by the running master.

pub mod key;
pub mod run;
pub mod salt;

/// JSON with 4-space indentation, as Salt's json outputter prints it.
pub fn json_pretty(v: &serde_json::Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    serde::Serialize::serialize(v, &mut ser).expect("serializing JSON to memory");
    String::from_utf8(buf).expect("JSON is UTF-8")
}
