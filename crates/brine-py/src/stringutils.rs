//! `salt.utils.stringutils`: what Salt calls text.

/// Salt's `is_binary(data)` (which `salt.utils.files.is_text` applies to a
/// file's first 512 bytes): NUL means binary; otherwise binary when more
/// than 30 % of the bytes are neither printable ASCII nor `\n\r\t\f\b`,
/// where bytes 128-254 count as text if the data is UTF-8 (or UTF-8 cut
/// off in the middle of its last character).
pub fn is_binary(data: &[u8]) -> bool {
    if data.is_empty() {
        return false;
    }
    if data.contains(&0) {
        return true;
    }
    let high_is_text = match std::str::from_utf8(data) {
        Ok(_) => true,
        // Python's "unexpected end of data": only the last character is
        // incomplete.
        Err(e) => e.error_len().is_none(),
    };
    let text =
        |b: u8| (32..127).contains(&b) || b"\n\r\t\x0c\x08".contains(&b) || (high_is_text && (128..255).contains(&b));
    let nontext = data.iter().filter(|b| !text(**b)).count();
    nontext as f64 / data.len() as f64 > 0.30
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_as_salt_sees_it() {
        assert!(!is_binary(b""));
        assert!(!is_binary(b"key: value\n"));
        assert!(is_binary(b"a\0b"));
        assert!(!is_binary("héllo wörld".as_bytes()));
        // Cut in the middle of a character: still UTF-8 text.
        assert!(!is_binary(&"ééé".as_bytes()[..5]));
        // Latin-1: not UTF-8, so the high bytes count against it.
        assert!(is_binary(b"\xe9\xe9\xe9a"));
        assert!(!is_binary(b"\xe9aaaaaaaaa"));
        // Exactly 30 % is still text.
        assert!(!is_binary(b"\x01\x01\x01aaaaaaa"));
        assert!(is_binary(b"\x01\x01\x01\x01aaaaaa"));
    }
}
