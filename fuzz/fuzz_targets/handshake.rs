//! Handshake check over arbitrary header lists. Input: flags (bit 0 GET, bit 1 HTTP/1.1),
//! then lines "name:value" separated by '\n'. The verdict is compared with a reference
//! written from RFC 6455 4.2.1 independently of the module's code.
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use ngx_http_websockify_module::codec::Mode;
use ngx_http_websockify_module::handshake::{accept_key, check};
use sha1::{Digest, Sha1};

fn trim(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

fn tokens(v: &[u8]) -> Vec<Vec<u8>> {
    v.split(|&b| b == b',').map(|t| trim(t).to_ascii_lowercase()).collect()
}

fuzz_target!(|data: &[u8]| {
    let [flags, rest @ ..] = data else { return };
    let (is_get, http11) = (flags & 1 != 0, flags & 2 != 0);
    let headers: Vec<(&[u8], &[u8])> = rest
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            Some((&line[..colon], &line[colon + 1..]))
        })
        .collect();
    let verdict = check(is_get, http11, headers.iter().copied());

    // Reference.
    let named = |n: &str| -> Vec<&[u8]> {
        headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(n.as_bytes())).map(|(_, v)| *v).collect()
    };
    let has = |n: &str, tok: &str| named(n).iter().any(|v| tokens(v).iter().any(|t| t == tok.as_bytes()));
    // Subprotocol names are case-sensitive (RFC 6455 4.1: the answer must be one of the
    // offered values).
    let offers = |tok: &str| {
        named("sec-websocket-protocol").iter().any(|v| v.split(|&b| b == b',').any(|t| trim(t) == tok.as_bytes()))
    };
    let keys = named("sec-websocket-key");
    let versions = named("sec-websocket-version");
    let key_ok = keys.len() == 1
        && STANDARD.decode(trim(keys[0])).map_or(false, |k| k.len() == 16);
    let expect = if !is_get || !http11 || !has("upgrade", "websocket") || !has("connection", "upgrade") || !key_ok
        || versions.is_empty()
    {
        400
    } else if !versions.iter().all(|v| trim(v) == b"13") {
        426
    } else {
        101
    };
    match &verdict {
        Ok(a) => {
            assert_eq!(expect, 101, "accepted, reference says {expect}: {headers:?}");
            let key = trim(keys[0]);
            let mut h = Sha1::new();
            h.update(key);
            h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
            assert_eq!(a.accept.as_slice(), STANDARD.encode(h.finalize()).as_bytes());
            assert_eq!(a.accept, accept_key(key));
            let want = if offers("binary") {
                (Some("binary"), Mode::Binary)
            } else if offers("base64") {
                (Some("base64"), Mode::Base64)
            } else {
                (None, Mode::Binary)
            };
            assert_eq!((a.protocol, a.mode), want);
        }
        Err(rej) => {
            assert_eq!(rej.status, expect, "{}: {headers:?}", rej.reason);
            assert!(!rej.reason.is_empty());
        }
    }
    // accept_key never panics and is always 28 base64 chars.
    let k = accept_key(rest);
    assert_eq!(STANDARD.decode(k).map(|d| d.len()), Ok(20));
});
