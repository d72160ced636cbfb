//! Handshake check over arbitrary header lists. Input: flags (bit 0 GET, bit 1 HTTP/1.1),
//! then lines "name:value" separated by '\n'. The verdict must be one the RFC 6455
//! reference in fuzz/src/rfc6455.rs allows (written from sections 4.2.1 and 4.2.2, with its
//! own base64 and SHA-1, not from src/handshake.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ngx_http_websockify_module::protocol::handshake::{accept_key, check};
use ngx_websockify_fuzz::rfc4648;
use ngx_websockify_fuzz::rfc6455::{accept_of, handshake, Verdict};

fuzz_target!(|data: &[u8]| {
    ngx_websockify_fuzz::self_check();
    let [flags, rest @ ..] = data else { return };
    let (is_get, http11) = (flags & 1 != 0, flags & 2 != 0);
    let headers: Vec<(&[u8], &[u8])> = rest
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            Some((&line[..colon], &line[colon + 1..]))
        })
        .collect();
    // nginx ends a header line at CR and refuses NUL: such values never reach the module.
    if headers
        .iter()
        .any(|(_, v)| v.iter().any(|&b| b == b'\r' || b == 0))
    {
        return;
    }
    let verdict = match check(is_get, http11, headers.iter().copied()) {
        Ok(a) => Verdict::Accept {
            accept: a.accept.to_vec(),
            protocol: a.protocol,
            mode: a.mode,
        },
        Err(rej) => {
            assert!(!rej.reason.is_empty());
            Verdict::Status(rej.status)
        }
    };
    let lawful = handshake(is_get, http11, &headers);
    assert!(
        lawful.contains(&verdict),
        "handshake and RFC 6455 reference disagree:\n  input {}\n  request {} {}, headers {:?}\n  module:    {:?}\n  reference: any of {:?}",
        data.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        if is_get { "GET" } else { "not GET" },
        if http11 { "HTTP/1.1" } else { "HTTP/1.0" },
        headers.iter().map(|(n, v)| (String::from_utf8_lossy(n), String::from_utf8_lossy(v))).collect::<Vec<_>>(),
        show(&verdict),
        lawful.iter().map(show).collect::<Vec<_>>()
    );
    // accept_key of any bytes is base64 of their SHA-1 with the GUID.
    assert_eq!(accept_key(rest).as_slice(), accept_of(rest));
    assert!(
        matches!(rfc4648::decode(&accept_key(rest)), rfc4648::Decoded::Canonical(d) if d.len() == 20)
    );
});

fn show(v: &Verdict) -> String {
    match v {
        Verdict::Accept {
            accept,
            protocol,
            mode,
        } => {
            format!(
                "101 accept {} protocol {protocol:?} mode {mode:?}",
                String::from_utf8_lossy(accept)
            )
        }
        Verdict::Status(s) => s.to_string(),
    }
}
