//! RFC 6455 from its text: what a server must make of a client's byte stream, and of a
//! client's opening handshake. Where the RFC leaves a choice (which of two violations of
//! one frame to name, how early a message that can no longer be valid is failed, whether
//! non-zero base64 pad bits are rejected), every lawful answer is accepted.
//!
//! The module's documented choices that the RFC leaves open, taken from README.md:
//! - text frames are relayed like binary ones, never interpreted, so their UTF-8 is not
//!   checked (RFC 6455 section 8.1 applies to an endpoint that interprets the bytes);
//! - the `base64` subprotocol: each text message is base64 of the bytes for the target,
//!   a binary frame is refused with 1003;
//! - of the subprotocols offered it picks `binary`, else `base64`, else none.
//!
//! The error and mode names are the module's (`ProtocolError`, `Mode`): a vocabulary only.

use crate::{rfc3174, rfc3629, rfc4648};
use ngx_http_websockify_module::protocol::codec::{Mode, ProtocolError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    Ping(Vec<u8>),
    Pong,
    Close(Option<u16>),
    Error(ProtocolError),
}

/// An error the decoder may report as event number `from..=to` (the events before it
/// being the reference's).
#[derive(Clone, Debug)]
pub struct Failure {
    pub error: ProtocolError,
    pub from: usize,
    pub to: usize,
}

#[derive(Debug, Default)]
pub struct Reference {
    /// Events up to the end of the stream, the first close, or the point of failure.
    pub events: Vec<Ev>,
    /// Binary mode: every data payload byte before that point. Base64 mode: the decoded
    /// complete messages.
    pub out: Vec<u8>,
    /// Base64 mode: the bytes the open (or failing) message's text determines so far; a
    /// streaming decoder may have produced any prefix of them.
    pub pending: Vec<u8>,
    /// Lawful errors; with `required` the stream must end in one of them.
    pub failures: Vec<Failure>,
    pub required: bool,
}

/// Section 7.4.1 and the IANA "WebSocket Close Code Number" registry: the codes an
/// endpoint may put in a close frame. 1004 is reserved, 1005, 1006 and 1015 must never be
/// sent, 1016-2999 are unassigned, below 1000 is unused (7.4.2); 3000-3999 are for
/// registered libraries and 4000-4999 private use.
pub fn close_code_valid(code: u16) -> bool {
    const REGISTERED: [u16; 12] = [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
    ];
    REGISTERED.contains(&code) || (3000..=4999).contains(&code)
}

/// Section 5.2's rules for the header bytes present (`hdr` may be cut short).
fn header_violations(hdr: &[u8], open: bool, mode: Mode) -> Vec<ProtocolError> {
    use ProtocolError::*;
    let mut v = Vec::new();
    let Some(&b0) = hdr.first() else { return v };
    let (fin, op) = (b0 & 0x80 != 0, b0 & 0x0f);
    // RSV1-3 without a negotiated extension (none is offered).
    if b0 & 0x70 != 0 {
        v.push(ReservedBits);
    }
    match op {
        0x3..=0x7 | 0xb..=0xf => v.push(UnknownOpcode(op)),
        // 5.5: control frames are never fragmented.
        0x8..=0xa if !fin => v.push(FragmentedControl),
        // 5.4: a continuation only inside a fragmented message, a new message only
        // outside one.
        0x0 if !open => v.push(UnexpectedContinuation),
        0x1 | 0x2 if open => v.push(ExpectedContinuation),
        _ => {}
    }
    if op == 0x2 && mode == Mode::Base64 {
        v.push(BinaryInBase64);
    }
    let Some(&b1) = hdr.get(1) else { return v };
    // 5.1: a server fails a connection on an unmasked client frame.
    if b1 & 0x80 == 0 {
        v.push(Unmasked);
    }
    let len7 = b1 & 0x7f;
    if op >= 0x8 && len7 > 125 {
        v.push(ControlTooLong);
    }
    // 5.2: the most significant bit of a 64-bit length must be 0.
    if len7 == 127 && hdr.get(2).is_some_and(|b| b & 0x80 != 0) {
        v.push(BadLength);
    }
    v
}

/// Section 5.5.1: an empty body, or a 2-byte code that may be sent (7.4) and a UTF-8
/// reason (8.1). Both violations of one body are lawful answers.
fn close_body(body: &[u8]) -> Result<Option<u16>, Vec<ProtocolError>> {
    use ProtocolError::*;
    match body {
        [] => Ok(None),
        [_] => Err(vec![BadClosePayload]),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            let mut e = Vec::new();
            if !close_code_valid(code) {
                e.push(BadClosePayload);
            }
            if !rfc3629::valid(reason) {
                e.push(BadCloseReason);
            }
            if e.is_empty() {
                Ok(Some(code))
            } else {
                Err(e)
            }
        }
    }
}

impl Reference {
    fn fail(&mut self, errors: Vec<ProtocolError>, required: bool) {
        let at = self.events.len();
        self.failures
            .extend(errors.into_iter().map(|error| Failure {
                error,
                from: at,
                to: at,
            }));
        self.required |= required;
    }
}

/// Decodes a client's whole byte stream. `strict_pad`: reject base64 with non-zero pad
/// bits (RFC 4648 3.5 allows either; run both).
pub fn reference(mode: Mode, s: &[u8], strict_pad: bool) -> Reference {
    let mut r = Reference::default();
    let mut open = false;
    // Base64 mode: the open message's text, and the event index from which it can no
    // longer be valid.
    let (mut text, mut doomed_at): (Vec<u8>, Option<usize>) = (Vec::new(), None);
    let mut at = 0;
    loop {
        let rest = &s[at..];
        let len7 = rest.get(1).map(|b| b & 0x7f);
        let ext = match len7 {
            Some(126) => 2,
            Some(127) => 8,
            _ => 0,
        };
        let hlen = 2 + ext + 4;
        let complete = rest.len() >= hlen;
        let v = header_violations(&rest[..rest.len().min(hlen)], open, mode);
        if !v.is_empty() || !complete {
            // A header cut short by the end of the stream may already show a violation; a
            // decoder may report it now or wait for the rest of the header.
            r.fail(v, complete);
            break;
        }
        let (b0, h) = (rest[0], &rest[..hlen]);
        let (fin, op) = (b0 & 0x80 != 0, b0 & 0x0f);
        let len = match ext {
            2 => u64::from(u16::from_be_bytes([h[2], h[3]])),
            8 => u64::from_be_bytes(h[2..10].try_into().unwrap()),
            _ => u64::from(len7.unwrap_or(0)),
        };
        let key = &h[2 + ext..];
        at += hlen;
        let take = len.min((s.len() - at) as u64) as usize;
        let payload: Vec<u8> = s[at..at + take]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        at += take;
        let whole = take as u64 == len;
        if op >= 0x8 {
            if !whole {
                break;
            }
            match op {
                0x9 => r.events.push(Ev::Ping(payload)),
                0xa => r.events.push(Ev::Pong),
                _ => {
                    match close_body(&payload) {
                        Ok(code) => r.events.push(Ev::Close(code)),
                        Err(e) => r.fail(e, true),
                    }
                    break; // nothing after a close is read
                }
            }
            continue;
        }
        open = !fin;
        if mode == Mode::Binary {
            r.out.extend_from_slice(&payload);
        } else {
            text.extend_from_slice(&payload);
            if doomed_at.is_none() && rfc4648::doomed(&text, strict_pad) {
                doomed_at = Some(r.events.len());
            }
            if whole && fin {
                let ok = match rfc4648::decode(&text) {
                    rfc4648::Decoded::Canonical(b) => Some(b),
                    rfc4648::Decoded::NonCanonical(b) if !strict_pad => Some(b),
                    _ => None,
                };
                match ok {
                    Some(b) => r.out.extend(b),
                    None => {
                        r.pending = rfc4648::determined(&text);
                        let from = doomed_at.unwrap_or(r.events.len());
                        r.failures.push(Failure {
                            error: ProtocolError::BadBase64,
                            from,
                            to: r.events.len(),
                        });
                        r.required = true;
                        return r;
                    }
                }
                text.clear();
            }
        }
        if !whole {
            break;
        }
    }
    if mode == Mode::Base64 {
        r.pending = rfc4648::determined(&text);
        // The open message can no longer be valid: failing it now is lawful, and so is
        // waiting for its end.
        if let Some(from) = doomed_at {
            let to = r.events.len();
            r.failures.push(Failure {
                error: ProtocolError::BadBase64,
                from,
                to,
            });
        }
    }
    r
}

impl Reference {
    /// Whether a decoder's events and output are a lawful reading of the stream.
    pub fn admits(&self, mode: Mode, events: &[Ev], out: &[u8]) -> Result<(), String> {
        match events.last() {
            Some(Ev::Error(e)) => {
                let k = events.len() - 1;
                if !self
                    .failures
                    .iter()
                    .any(|f| f.error == *e && f.from <= k && k <= f.to)
                {
                    return Err(format!(
                        "error {e:?} as event {k}: the reference allows {:?}",
                        self.failures
                    ));
                }
                if self.events.get(..k) != Some(&events[..k]) {
                    return Err("events before the error differ".into());
                }
            }
            _ if self.required => {
                return Err(format!(
                    "no error: the reference requires one of {:?}",
                    self.failures
                ))
            }
            _ if events != self.events => return Err("events differ".into()),
            _ => {}
        }
        match mode {
            Mode::Binary if out != self.out => Err("output differs".into()),
            Mode::Base64
                if !out.starts_with(&self.out)
                    || !self.pending.starts_with(&out[self.out.len()..]) =>
            {
                Err("output is not the decoded messages plus a prefix of the open one".into())
            }
            _ => Ok(()),
        }
    }
}

/// What the server may answer to an opening handshake.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Status(u16),
    Accept {
        accept: Vec<u8>,
        protocol: Option<&'static str>,
        mode: Mode,
    },
}

pub const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Section 4.2.2 /key/: base64 of the SHA-1 of the key and the GUID.
pub fn accept_of(key: &[u8]) -> Vec<u8> {
    let mut m = key.to_vec();
    m.extend_from_slice(GUID);
    rfc4648::encode(&rfc3174::sha1(&m))
}

/// A field value without its leading and trailing optional whitespace (RFC 7230 3.2:
/// OWS is SP and HTAB only).
fn ows_trim(v: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = v.iter().position(|b| !is_ows(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !is_ows(b)).map_or(start, |e| e + 1);
    &v[start..end]
}

/// The elements of a list-valued field given in one or more header lines (RFC 7230 7
/// and 3.2.2), in order, empty elements dropped.
fn elements<'a>(values: &[&'a [u8]]) -> Vec<&'a [u8]> {
    values
        .iter()
        .flat_map(|v| v.split(|&b| b == b','))
        .map(ows_trim)
        .filter(|e| !e.is_empty())
        .collect()
}

/// Every lawful answer of a server to a request (sections 4.2.1 and 4.2.2). `Host` is not
/// judged: nginx refuses an HTTP/1.1 request without it before any module runs.
pub fn handshake(is_get: bool, http11: bool, headers: &[(&[u8], &[u8])]) -> Vec<Verdict> {
    let field = |name: &str| -> Vec<&[u8]> {
        headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| *v)
            .collect()
    };
    // 4.2.1 items 1, 3, 4: a GET of HTTP/1.1 (or later), "Upgrade" listing "websocket"
    // and "Connection" listing "Upgrade", both ASCII case-insensitive.
    let upgrade = elements(&field("upgrade"))
        .iter()
        .any(|e| e.eq_ignore_ascii_case(b"websocket"));
    let connection = elements(&field("connection"))
        .iter()
        .any(|e| e.eq_ignore_ascii_case(b"upgrade"));
    // Item 5: one key (11.3.1: never more than one) that is base64 of 16 bytes.
    let keys = field("sec-websocket-key");
    let key = keys.first().map(|k| ows_trim(k)).unwrap_or_default();
    let decoded = rfc4648::decode(key);
    let sixteen = |b: &Vec<u8>| b.len() == 16;
    let (key_ok, key_maybe) = match &decoded {
        _ if keys.len() != 1 => (false, false),
        rfc4648::Decoded::Canonical(b) => (sixteen(b), false),
        rfc4648::Decoded::NonCanonical(b) => (false, sixteen(b)),
        rfc4648::Decoded::Invalid => (false, false),
    };
    // Item 6: version 13. The request's field holds one version (4.1's ABNF): repeated
    // fields are a malformed request, so a 400 is as lawful as reading them.
    let versions: Vec<&[u8]> = field("sec-websocket-version")
        .into_iter()
        .map(ows_trim)
        .collect();
    let all_13 = !versions.is_empty() && versions.iter().all(|v| *v == b"13");
    let repeated = versions.len() > 1;

    let mut other_bad = !is_get || !http11 || !upgrade || !connection || !(key_ok || key_maybe);
    let mut answers = Vec::new();
    if key_maybe || (repeated && all_13) {
        // RFC 4648 3.5 lets a decoder refuse non-zero pad bits; see above for repeats.
        answers.push(Verdict::Status(400));
    }
    if versions.is_empty() {
        other_bad = true;
    } else if !all_13 {
        // 4.2.2: a version the server does not speak gets 426 with the versions it does;
        // with another defect, 400 is as appropriate.
        answers.push(Verdict::Status(426));
        if other_bad || repeated {
            answers.push(Verdict::Status(400));
        }
        return answers;
    }
    if other_bad {
        return vec![Verdict::Status(400)];
    }
    // 4.2.2 /subprotocol/: one of the values the client offered, echoed as offered;
    // subprotocol names are tokens compared exactly (a client fails a connection whose
    // answer names a subprotocol it did not offer, 4.1).
    let offered = elements(&field("sec-websocket-protocol"));
    let (protocol, mode) = if offered.contains(&&b"binary"[..]) {
        (Some("binary"), Mode::Binary)
    } else if offered.contains(&&b"base64"[..]) {
        (Some("base64"), Mode::Base64)
    } else {
        (None, Mode::Binary)
    };
    answers.push(Verdict::Accept {
        accept: accept_of(key),
        protocol,
        mode,
    });
    answers
}

pub(crate) fn self_check() {
    // Section 1.3's example.
    assert_eq!(
        accept_of(b"dGhlIHNhbXBsZSBub25jZQ=="),
        b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    let h: [(&[u8], &[u8]); 5] = [
        (b"Host", b"server.example.com"),
        (b"Upgrade", b"websocket"),
        (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
        (b"Sec-WebSocket-Version", b"13"),
    ];
    let accept = |protocol, mode| Verdict::Accept {
        accept: b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".to_vec(),
        protocol,
        mode,
    };
    assert_eq!(handshake(true, true, &h), vec![accept(None, Mode::Binary)]);
    let mut p = h.to_vec();
    p.push((b"Sec-WebSocket-Protocol", b"chat, BINARY, base64"));
    assert_eq!(
        handshake(true, true, &p),
        vec![accept(Some("base64"), Mode::Base64)]
    );
    let mut v = h.to_vec();
    v[4].1 = b"8";
    assert_eq!(handshake(true, true, &v), vec![Verdict::Status(426)]);
    assert_eq!(handshake(false, true, &h), vec![Verdict::Status(400)]);
    for code in [999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
        assert!(!close_code_valid(code), "{code}");
    }
    for code in [1000, 1003, 1007, 1011, 1012, 1014, 3000, 4999] {
        assert!(close_code_valid(code), "{code}");
    }
    // Section 5.7's examples, as a client would mask them.
    let hello = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
    let r = reference(Mode::Binary, hello, true);
    assert!(r.admits(Mode::Binary, &[], b"Hello").is_ok() && r.failures.is_empty());
    let unmasked = b"\x81\x05\x48\x65\x6c\x6c\x6f";
    let r = reference(Mode::Binary, unmasked, true);
    assert!(
        r.required
            && r.admits(Mode::Binary, &[Ev::Error(ProtocolError::Unmasked)], b"")
                .is_ok()
    );
}
