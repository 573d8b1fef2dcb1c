//! Test helpers: hex decoding and the shared byte-exact vectors
//! (`<repo>/../shared/docs/salt-test-vectors.json`, which CI places beside
//! the clone; a missing file fails the tests loudly).

pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub fn vectors_text() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/docs/salt-test-vectors.json"
    );
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("test vectors missing at {path}: {e}"))
}

/// The string value of the first `"key": "..."` in the vectors file.
pub fn vector(key: &str) -> String {
    let text = vectors_text();
    let i = text.find(&format!("\"{key}\"")).unwrap_or_else(|| panic!("{key}"));
    let rest = &text[i + key.len() + 2..];
    let start = rest.find('"').unwrap() + 1;
    let end = rest[start..].find('"').unwrap();
    rest[start..start + end].to_string()
}
