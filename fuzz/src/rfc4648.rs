//! Base64 as RFC 4648 section 4 defines it: 4-character quanta over the 64-character
//! alphabet, the last quantum padded with "=" or "==". Section 3.3: any character outside
//! the alphabet (whitespace included) is an error unless the referring specification
//! says otherwise; neither RFC 6455 (for the key) nor the module's README (for the
//! `base64` subprotocol) does. Section 3.5: a decoder MAY reject pad bits that are not
//! zero, so both answers are lawful and `decode` tells that case apart.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The 6-bit value of an alphabet character.
pub fn value(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == c).map(|v| v as u32)
}

pub fn encode(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len().div_ceil(3) * 4);
    for group in data.chunks(3) {
        let mut bits = 0u32;
        for (i, &b) in group.iter().enumerate() {
            bits |= u32::from(b) << (16 - 8 * i);
        }
        // n input bytes give n + 1 characters, then "=" up to 4.
        for i in 0..4 {
            out.push(if i <= group.len() {
                ALPHABET[(bits >> (18 - 6 * i) & 63) as usize]
            } else {
                b'='
            });
        }
    }
    out
}

#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Canonical(Vec<u8>),
    /// Well-formed, but the pad bits of the last quantum are not zero: the bytes are those
    /// of the other bits; a decoder may also reject it (section 3.5).
    NonCanonical(Vec<u8>),
    Invalid,
}

pub fn decode(text: &[u8]) -> Decoded {
    if !text.len().is_multiple_of(4) {
        return Decoded::Invalid;
    }
    let quanta = text.len() / 4;
    let (mut out, mut canonical) = (Vec::new(), true);
    for (qi, q) in text.chunks(4).enumerate() {
        let pads = q.iter().rev().take_while(|&&c| c == b'=').count();
        // "=" only ends the last quantum, and at most two of them.
        if pads > 2 || (pads > 0 && qi + 1 != quanta) {
            return Decoded::Invalid;
        }
        let mut bits = 0u32;
        for &c in &q[..4 - pads] {
            let Some(v) = value(c) else {
                return Decoded::Invalid;
            };
            bits = bits << 6 | v;
        }
        bits <<= 6 * pads;
        let n = 3 - pads;
        out.extend_from_slice(&bits.to_be_bytes()[1..1 + n]);
        canonical &= bits & ((1 << (24 - 8 * n)) - 1) == 0;
    }
    if canonical {
        Decoded::Canonical(out)
    } else {
        Decoded::NonCanonical(out)
    }
}

/// The bytes fully determined by the alphabet characters that start `text` (up to its
/// first other character): all a streaming decoder may have produced from it.
pub fn determined(text: &[u8]) -> Vec<u8> {
    let (mut bits, mut nbits, mut out) = (0u32, 0u32, Vec::new());
    for v in text.iter().map_while(|&c| value(c)) {
        bits = (bits << 6 | v) & 0xffff;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
        }
    }
    out
}

/// Whether `text` can no longer become a valid encoding, whatever follows; with
/// `strict_pad`, non-zero pad bits count as invalid once the padding shows them.
pub fn doomed(text: &[u8], strict_pad: bool) -> bool {
    let p = text.iter().position(|&c| c == b'=').unwrap_or(text.len());
    if text[..p].iter().any(|&c| value(c).is_none()) {
        return true;
    }
    if p == text.len() {
        return false;
    }
    let quantum_end = (p / 4 + 1) * 4;
    if p % 4 < 2 || text[p..].iter().any(|&c| c != b'=') || text.len() > quantum_end {
        return true;
    }
    // p % 4 is 2 or 3: the quantum's characters before the padding are all known.
    let q = &text[p - p % 4..p];
    let bits = q
        .iter()
        .filter_map(|&c| value(c))
        .fold(0u32, |a, v| a << 6 | v);
    let unused = if p % 4 == 2 { 4 } else { 2 };
    strict_pad && bits & ((1 << unused) - 1) != 0
}

pub(crate) fn self_check() {
    // Section 10.
    let vectors: [(&[u8], &[u8]); 7] = [
        (b"", b""),
        (b"f", b"Zg=="),
        (b"fo", b"Zm8="),
        (b"foo", b"Zm9v"),
        (b"foob", b"Zm9vYg=="),
        (b"fooba", b"Zm9vYmE="),
        (b"foobar", b"Zm9vYmFy"),
    ];
    for (plain, coded) in vectors {
        assert_eq!(encode(plain), coded);
        assert_eq!(decode(coded), Decoded::Canonical(plain.to_vec()));
        assert_eq!(determined(coded), plain);
        assert!(!doomed(coded, true));
    }
    assert_eq!(decode(b"Zh=="), Decoded::NonCanonical(b"f".to_vec()));
    assert!(doomed(b"Zh==", true) && !doomed(b"Zh==", false));
    for bad in [
        &b"Zg="[..],
        b"Zg",
        b"Z===",
        b"Zg==Zg==",
        b"Zm 9v",
        b"Zm9v\n",
        b"=Zm9",
    ] {
        assert_eq!(decode(bad), Decoded::Invalid, "{bad:?}");
    }
    assert!(doomed(b"Zm 9", false) && doomed(b"Z=", false) && doomed(b"Zg==A", false));
    assert!(!doomed(b"Zm9", true) && !doomed(b"Zg=", true));
}
