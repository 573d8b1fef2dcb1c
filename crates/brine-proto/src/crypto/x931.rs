//! ANSI X9.31 padding exactly as libcrypto's `RSA_padding_add_X931` /
//! `RSA_padding_check_X931` implement it (Salt reaches them through
//! `RSA_private_encrypt`/`RSA_public_decrypt` with `RSA_X931_PADDING` in
//! `salt/utils/rsax931.py`). No digest and no DigestInfo: the "message" is
//! the raw bytes (`b"salt"` for `tok`, a 64-char hex digest for `_auth`'s
//! `sig`). The `min(s, n − s)` and `m & 0xF == 12` steps live with the RSA
//! operations in `rsa.rs`.

use super::CryptoError;

/// The `k`-byte block for `msg`: `6A ‖ msg ‖ CC` when `k − len − 2 == 0`,
/// else `6B ‖ BB × (k − len − 3) ‖ BA ‖ msg ‖ CC`.
pub(super) fn pad(msg: &[u8], k: usize) -> Result<Vec<u8>, CryptoError> {
    let j = k.checked_sub(msg.len() + 2).ok_or(CryptoError::TooLong)?;
    let mut block = Vec::with_capacity(k);
    if j == 0 {
        block.push(0x6a);
    } else {
        block.push(0x6b);
        block.resize(j, 0xbb);
        block.push(0xba);
    }
    block.extend_from_slice(msg);
    block.push(0xcc);
    debug_assert_eq!(block.len(), k);
    Ok(block)
}

/// The message inside a recovered block, accepting exactly what
/// `RSA_padding_check_X931` accepts (the block is always `k` bytes here),
/// including its quirks: `6B BA …` (no `BB`) is refused even though
/// `pad` produces it when `k − len == 3`, an empty message is refused
/// (the `BB` scan stops one byte short of its `BA`), and a `6B BB…` run that reaches
/// the end without `BA` yields an empty message if the byte after the
/// scanned run is `CC`.
pub(super) fn unpad(block: &[u8]) -> Result<&[u8], CryptoError> {
    let flen = block.len();
    if flen < 2 {
        return Err(CryptoError::BadPadding);
    }
    let (start, len) = match block[0] {
        0x6a => (1, flen - 2),
        0x6b => {
            // j == 0 (or a 2-byte block) leaves i == 0 below: refused.
            let j = flen.saturating_sub(3);
            let mut i = 0;
            let mut p = 1;
            while i < j {
                let c = block[p];
                p += 1;
                if c == 0xba {
                    break;
                }
                if c != 0xbb {
                    return Err(CryptoError::BadPadding);
                }
                i += 1;
            }
            if i == 0 {
                return Err(CryptoError::BadPadding);
            }
            (p, j - i)
        }
        _ => return Err(CryptoError::BadPadding),
    };
    if block[start + len] != 0xcc {
        return Err(CryptoError::BadPadding);
    }
    Ok(&block[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pad_shapes() {
        assert_eq!(pad(b"ab", 4).unwrap(), [0x6a, b'a', b'b', 0xcc]);
        assert_eq!(pad(b"ab", 5).unwrap(), [0x6b, 0xba, b'a', b'b', 0xcc]);
        assert_eq!(pad(b"ab", 7).unwrap(), [0x6b, 0xbb, 0xbb, 0xba, b'a', b'b', 0xcc]);
        assert_eq!(pad(b"", 3).unwrap(), [0x6b, 0xba, 0xcc]);
        assert!(matches!(pad(b"abc", 4), Err(CryptoError::TooLong)));
        assert!(matches!(pad(b"abc", 0), Err(CryptoError::TooLong)));
    }

    #[test]
    fn unpad_is_libcryptos_check() {
        assert_eq!(unpad(&[0x6a, b'a', b'b', 0xcc]).unwrap(), b"ab");
        assert_eq!(unpad(&[0x6b, 0xbb, 0xba, b'a', 0xcc]).unwrap(), b"a");
        // An empty message: the scan stops one byte short of BA.
        assert!(unpad(&[0x6b, 0xbb, 0xbb, 0xba, 0xcc]).is_err());
        // 6B BA: libcrypto wants at least one BB.
        assert!(unpad(&[0x6b, 0xba, b'a', b'b', 0xcc]).is_err());
        // A BB run to the end: empty message when the next byte is CC.
        assert_eq!(unpad(&[0x6b, 0xbb, 0xbb, 0xcc, 0x00]).unwrap(), b"");
        assert!(unpad(&[0x6b, 0xbb, 0xbb, 0xbb, 0xcc]).is_err());
        assert!(unpad(&[0x6b, 0xbb, 0x00, 0xba, 0xcc]).is_err());
        assert!(unpad(&[0x6a, b'a', b'b', 0xcd]).is_err());
        assert!(unpad(&[0x00, b'a', b'b', 0xcc]).is_err());
        assert_eq!(unpad(&[0x6a, 0xcc]).unwrap(), b"");
        assert!(unpad(&[0x6b, 0xcc]).is_err());
        assert!(unpad(&[0x6b, 0xba, 0xcc]).is_err());
        assert!(unpad(&[0x6a]).is_err());
        assert!(unpad(&[]).is_err());
    }
}
