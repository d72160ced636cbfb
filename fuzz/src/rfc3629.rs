//! UTF-8 well-formedness by the syntax of RFC 3629 section 4.

fn tail(b: Option<&u8>) -> bool {
    b.is_some_and(|&b| (0x80..=0xbf).contains(&b))
}

pub fn valid(s: &[u8]) -> bool {
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        // The ranges allowed for the second byte, then how many UTF8-tail follow it.
        let (second, tails) = match b {
            0x00..=0x7f => {
                i += 1;
                continue;
            }
            0xc2..=0xdf => (0x80..=0xbf, 0),
            0xe0 => (0xa0..=0xbf, 1),
            0xe1..=0xec | 0xee..=0xef => (0x80..=0xbf, 1),
            0xed => (0x80..=0x9f, 1),
            0xf0 => (0x90..=0xbf, 2),
            0xf1..=0xf3 => (0x80..=0xbf, 2),
            0xf4 => (0x80..=0x8f, 2),
            _ => return false,
        };
        if !s.get(i + 1).is_some_and(|b| second.contains(b)) {
            return false;
        }
        if !(0..tails).all(|k| tail(s.get(i + 2 + k))) {
            return false;
        }
        i += 2 + tails;
    }
    true
}

pub(crate) fn self_check() {
    // Section 7's examples, and the forms section 3 excludes.
    for ok in [
        &b"\x41\xe2\x89\xa2\xce\x91\x2e"[..],
        b"\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4",
        b"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
        b"\xef\xbb\xbf\xf0\xa3\x8e\xb4",
        b"",
    ] {
        assert!(valid(ok), "{ok:?}");
    }
    for bad in [
        &b"\xc0\x80"[..],        // overlong
        b"\xe0\x80\x80",         // overlong
        b"\xed\xa0\x80",         // surrogate
        b"\xf4\x90\x80\x80",     // above U+10FFFF
        b"\xe2\x89",             // truncated
        b"\x80",                 // lone tail
        b"\xf8\x88\x80\x80\x80", // five bytes
    ] {
        assert!(!valid(bad), "{bad:?}");
    }
}
