//! Validation of the client's opening handshake (RFC 6455 section 4.2.1) and the
//! subprotocol choice. Plain Rust so it is unit-tested without nginx.

use crate::protocol::codec::Mode;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::{Digest, Sha1};

#[derive(Debug, PartialEq, Eq)]
pub struct Reject {
    /// 400, or 426 for an unsupported version (the glue adds `Sec-WebSocket-Version: 13`).
    pub status: u16,
    /// For error_log.
    pub reason: &'static str,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Accept {
    /// Sec-WebSocket-Accept value.
    pub accept: [u8; 28],
    /// Sec-WebSocket-Protocol to answer: "binary", "base64" or none.
    pub protocol: Option<&'static str>,
    pub mode: Mode,
}

fn reject(status: u16, reason: &'static str) -> Result<Accept, Reject> {
    Err(Reject { status, reason })
}

/// `b` without the optional white space (space, tab) HTTP allows around values and list
/// elements (RFC 9110 5.6.3); anything else, a form feed say, stays and fails the check.
fn trim_ows(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t'))
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !matches!(c, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    b.get(start..end).unwrap_or_default()
}

/// True if the comma-separated list `value` holds `token` (case-insensitive).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| trim_ows(t).eq_ignore_ascii_case(token))
}

/// True if the Sec-WebSocket-Protocol list `value` offers `name`. Subprotocol names
/// match case-sensitively (RFC 6455 4.1, 4.2.2; RFC 7936): the client fails the
/// connection unless the answer is one of the values it sent, byte for byte.
fn offers(value: &[u8], name: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|t| trim_ows(t) == name)
}

/// is_get: method is GET; http11: request is HTTP/1.1; headers: every request header
/// (name, value) in order, names case-insensitive, possibly repeated.
pub fn check<'a, I>(is_get: bool, http11: bool, headers: I) -> Result<Accept, Reject>
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    if !is_get {
        return reject(400, "method is not GET");
    }
    if !http11 {
        return reject(400, "WebSocket needs HTTP/1.1");
    }
    let (mut upgrade, mut connection, mut binary, mut base64) = (false, false, false, false);
    let (mut key, mut keys) = (&[][..], 0);
    let mut version = None;
    for (name, value) in headers {
        let value = trim_ows(value);
        if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade |= has_token(value, b"websocket");
        } else if name.eq_ignore_ascii_case(b"connection") {
            connection |= has_token(value, b"upgrade");
        } else if name.eq_ignore_ascii_case(b"sec-websocket-key") {
            key = value;
            keys += 1;
        } else if name.eq_ignore_ascii_case(b"sec-websocket-version") {
            // Repeated headers must all say 13.
            version = Some(version.unwrap_or(true) && value == b"13");
        } else if name.eq_ignore_ascii_case(b"sec-websocket-protocol") {
            binary |= offers(value, b"binary");
            base64 |= offers(value, b"base64");
        }
    }
    if !upgrade {
        return reject(400, "missing \"Upgrade: websocket\"");
    }
    if !connection {
        return reject(400, "missing \"Connection: upgrade\"");
    }
    if keys != 1 {
        return reject(400, "missing or repeated Sec-WebSocket-Key");
    }
    // Room for 18 bytes so a longer key is seen as such rather than as a buffer error.
    let mut nonce = [0u8; 18];
    if STANDARD.decode_slice(key, &mut nonce) != Ok(16) {
        return reject(400, "Sec-WebSocket-Key is not 16 bytes of base64");
    }
    match version {
        None => return reject(400, "missing Sec-WebSocket-Version"),
        Some(false) => return reject(426, "unsupported Sec-WebSocket-Version"),
        Some(true) => {}
    }
    // noVNC since 2019 offers no subprotocol (or only unknown ones): plain binary.
    let (protocol, mode) = if binary {
        (Some("binary"), Mode::Binary)
    } else if base64 {
        (Some("base64"), Mode::Base64)
    } else {
        (None, Mode::Binary)
    };
    Ok(Accept {
        accept: accept_key(key),
        protocol,
        mode,
    })
}

/// Sec-WebSocket-Accept for `key`: base64(sha1(key + GUID)).
pub fn accept_key(key: &[u8]) -> [u8; 28] {
    const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let digest = Sha1::new().chain_update(key).chain_update(GUID).finalize();
    let mut out = [0u8; 28];
    // 20 bytes always encode to exactly 28 chars.
    let _ = STANDARD.encode_slice(digest, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"dGhlIHNhbXBsZSBub25jZQ==";

    fn novnc() -> Vec<(&'static [u8], &'static [u8])> {
        vec![
            (b"Host", b"example.com"),
            (b"Connection", b"Upgrade"),
            (b"Upgrade", b"websocket"),
            (b"Sec-WebSocket-Version", b"13"),
            (b"Sec-WebSocket-Key", KEY),
        ]
    }

    fn with(extra: &[(&'static [u8], &'static [u8])]) -> Result<Accept, Reject> {
        let mut h = novnc();
        h.extend_from_slice(extra);
        check(true, true, h)
    }

    fn without(name: &[u8]) -> Result<Accept, Reject> {
        check(true, true, novnc().into_iter().filter(|(n, _)| *n != name))
    }

    fn status(r: Result<Accept, Reject>) -> u16 {
        r.err().map_or(101, |r| r.status)
    }

    #[test]
    fn rfc_example_key() {
        assert_eq!(&accept_key(KEY), b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn only_spaces_and_tabs_are_trimmed() {
        let key = |k: &'static [u8]| {
            let h = novnc()
                .into_iter()
                .map(|(n, v)| (n, if n == b"Sec-WebSocket-Key" { k } else { v }));
            status(check(true, true, h))
        };
        assert_eq!(key(b" \tdGhlIHNhbXBsZSBub25jZQ==\t "), 101);
        assert_eq!(
            key(b"dGhlIHNhbXBsZSBub25jZQ==\x0c"),
            400,
            "a form feed is no white space"
        );
        assert_eq!(key(b"\x0bdGhlIHNhbXBsZSBub25jZQ=="), 400);
        assert_eq!(trim_ows(b" \t "), b"");
    }

    #[test]
    fn novnc_without_protocol() {
        let a = check(true, true, novnc()).unwrap();
        assert_eq!(&a.accept, b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!((a.protocol, a.mode), (None, Mode::Binary));
    }

    #[test]
    fn subprotocol_choice() {
        let pick = |v: &'static [u8]| {
            let a = with(&[(b"Sec-WebSocket-Protocol", v)]).unwrap();
            (a.protocol, a.mode)
        };
        assert_eq!(pick(b"binary"), (Some("binary"), Mode::Binary));
        assert_eq!(pick(b"base64, binary"), (Some("binary"), Mode::Binary));
        assert_eq!(pick(b" base64 "), (Some("base64"), Mode::Base64));
        assert_eq!(pick(b"chat,superchat"), (None, Mode::Binary));
        let a = with(&[
            (b"sec-websocket-protocol", b"base64"),
            (b"SEC-WEBSOCKET-PROTOCOL", b"foo, binary"),
        ])
        .unwrap();
        assert_eq!(a.protocol, Some("binary"));
    }

    #[test]
    fn subprotocols_match_case_sensitively() {
        let pick = |v: &'static [u8]| {
            let a = with(&[(b"Sec-WebSocket-Protocol", v)]).unwrap();
            (a.protocol, a.mode)
        };
        // Not offered, so never answered: a browser fails a connection whose answer is
        // not one of its own values byte for byte.
        assert_eq!(pick(b"BINARY"), (None, Mode::Binary));
        assert_eq!(pick(b"Binary"), (None, Mode::Binary));
        assert_eq!(pick(b"BASE64"), (None, Mode::Binary));
        assert_eq!(pick(b"Base64, BINARY"), (None, Mode::Binary));
        assert_eq!(pick(b"BINARY, base64"), (Some("base64"), Mode::Base64));
        assert_eq!(pick(b"BASE64, binary"), (Some("binary"), Mode::Binary));
    }

    #[test]
    fn token_lists_and_case() {
        let h: Vec<(&[u8], &[u8])> = vec![
            (b"UPGRADE", b"h2c, WebSocket"),
            (b"connection", b"keep-alive"),
            (b"CONNECTION", b"keep-alive,  UPGRADE "),
            (b"sec-websocket-key", b" dGhlIHNhbXBsZSBub25jZQ== "),
            (b"sec-websocket-version", b"13"),
        ];
        assert!(check(true, true, h).is_ok());
        // "upgraded" is not the token "upgrade".
        let h: Vec<(&[u8], &[u8])> = vec![
            (b"Upgrade", b"websocket"),
            (b"Connection", b"upgraded"),
            (b"Sec-WebSocket-Key", KEY),
            (b"Sec-WebSocket-Version", b"13"),
        ];
        assert_eq!(status(check(true, true, h)), 400);
    }

    /// A repeated version header counts in full: a client that also sends 8 is refused
    /// even when its last header says 13, whichever order they come in.
    #[test]
    fn every_repeated_version_must_be_13() {
        let versions = |vs: &[&'static [u8]]| {
            let mut h = novnc();
            h.retain(|(n, _)| *n != b"Sec-WebSocket-Version");
            h.extend(vs.iter().map(|v| (&b"Sec-WebSocket-Version"[..], *v)));
            check(true, true, h)
        };
        assert_eq!(
            versions(&[b"8", b"13"]),
            Err(Reject {
                status: 426,
                reason: "unsupported Sec-WebSocket-Version"
            })
        );
        assert_eq!(status(versions(&[b"13", b"8"])), 426);
        assert_eq!(status(versions(&[b"13", b"8", b"13"])), 426);
        assert_eq!(status(versions(&[b"13", b"13"])), 101);
    }

    #[test]
    fn rejections() {
        assert_eq!(status(check(false, true, novnc())), 400);
        assert_eq!(status(check(true, false, novnc())), 400);
        assert_eq!(status(without(b"Upgrade")), 400);
        assert_eq!(status(without(b"Connection")), 400);
        assert_eq!(status(without(b"Sec-WebSocket-Key")), 400);
        assert_eq!(status(without(b"Sec-WebSocket-Version")), 400);
        assert_eq!(status(with(&[(b"Sec-WebSocket-Key", KEY)])), 400);
        assert_eq!(status(with(&[(b"Sec-WebSocket-Version", b"8")])), 426);
        let key = |k: &'static [u8]| {
            let mut h = novnc();
            h.retain(|(n, _)| *n != b"Sec-WebSocket-Key");
            h.push((b"Sec-WebSocket-Key", k));
            status(check(true, true, h))
        };
        assert_eq!(key(b"AAAAAAAAAAAAAAAAAAAAAA=="), 101);
        assert_eq!(key(b"AAAAAAAAAAAAAAAAAAAAAAAA"), 400); // 18 bytes
        assert_eq!(key(b"AAAAAAAAAAAAAAAAAAAA"), 400); // 15 bytes
        assert_eq!(key(b"not base64 at all!!!!!=="), 400);
        assert_eq!(key(b""), 400);
        let r = with(&[(b"Upgrade", b"h2c")]);
        assert!(r.is_ok(), "another Upgrade header does not hide websocket");
        let h: Vec<(&[u8], &[u8])> = vec![
            (b"Upgrade", b"h2c"),
            (b"Connection", b"upgrade"),
            (b"Sec-WebSocket-Key", KEY),
            (b"Sec-WebSocket-Version", b"13"),
        ];
        assert_eq!(
            check(true, true, h),
            Err(Reject {
                status: 400,
                reason: "missing \"Upgrade: websocket\""
            })
        );
    }
}
