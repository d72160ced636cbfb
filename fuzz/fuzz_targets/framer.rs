//! Target->client framing: read_window/frame for any capacity and byte count in both
//! modes, checked by parsing the produced frame; then the frame, masked as a client
//! would send it, must decode back to the original bytes. Then the rest of the input is
//! appended in pieces with tail_window/frame_tail and every frame must parse back, in
//! order. Also put_header, pong, close.
//!
//! Input: flags (bit 0 base64), capacity (u16 LE), then the target's bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ngx_http_websockify_module::protocol::codec::{
    self, header_len, put_header, Decoder, Event, Framer, Mode, MAX_HEADER,
};

/// Parses one unmasked server frame covering all of `f`: (fin, opcode, payload).
fn parse(f: &[u8]) -> (bool, u8, &[u8]) {
    assert!(f.len() >= 2);
    assert_eq!(f[1] & 0x80, 0, "server frames are not masked");
    let (len, hdr) = match f[1] & 0x7f {
        126 => (usize::from(u16::from_be_bytes([f[2], f[3]])), 4),
        127 => (
            u64::from_be_bytes(f[2..10].try_into().unwrap()) as usize,
            10,
        ),
        n => (usize::from(n), 2),
    };
    // Minimal length encoding.
    assert_eq!(hdr, header_len(len), "length {len} not minimally encoded");
    assert_eq!(f.len(), hdr + len, "frame length");
    (f[0] & 0x80 != 0, f[0] & 0x0f, &f[hdr..])
}

fn mask(frame: &[u8], key: [u8; 4]) -> Vec<u8> {
    let (_, _, payload) = parse(frame);
    let h = header_len(payload.len());
    let mut out = frame[..h].to_vec();
    out[1] |= 0x80;
    out.extend_from_slice(&key);
    out.extend(payload.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
    out
}

/// Appends `rest` behind the frame in `buf[r]` with tail frames of sizes taken from the
/// data, then parses every frame back.
fn tails(f: &Framer, buf: &mut [u8], r: std::ops::Range<usize>, rest: &[u8]) {
    let mut last = r.end;
    let mut pieces = vec![buf[r.clone()].to_vec()];
    let mut left = rest;
    while let Some(w) = f.tail_window(last, buf.len()) {
        assert!(w.start >= last && w.end <= buf.len() && w.len() <= 65535);
        if left.is_empty() {
            break;
        }
        let n = (usize::from(left[0]) * 37 + 1).min(left.len()).min(w.len());
        buf[w.start..w.start + n].copy_from_slice(&left[..n]);
        let end = f.frame_tail(buf, last, n);
        assert!(end > last);
        pieces.push(left[..n].to_vec());
        left = &left[n..];
        last = end;
    }
    let mut at = r.start;
    for (i, want) in pieces.iter().enumerate() {
        let b1 = usize::from(buf[at + 1]);
        let (len, h) = match b1 {
            126 => (
                usize::from(u16::from_be_bytes([buf[at + 2], buf[at + 3]])),
                4,
            ),
            127 => (
                u64::from_be_bytes(buf[at + 2..at + 10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n, 2),
        };
        let (_, op, payload) = parse(&buf[at..at + h + len]);
        assert_eq!(op, codec::OP_BINARY);
        if i > 0 {
            assert_eq!(payload, &want[..]);
        }
        at += h + len;
    }
    assert_eq!(at, last);
}

fuzz_target!(|data: &[u8]| {
    ngx_websockify_fuzz::self_check();
    let [flags, c0, c1, input @ ..] = data else {
        return;
    };
    let mode = if flags & 1 != 0 {
        Mode::Base64
    } else {
        Mode::Binary
    };
    let cap = usize::from(u16::from_le_bytes([*c0, *c1]));
    let f = Framer::new(mode);
    let w = f.read_window(cap);
    assert!(
        w.start <= w.end && w.end <= cap,
        "window {w:?} outside {cap}"
    );
    let n = input.len().min(w.len());
    let mut buf = vec![0xa5u8; cap];
    buf[w.start..w.start + n].copy_from_slice(&input[..n]);
    let r = f.frame(&mut buf, n);
    assert!(r.start <= r.end && r.end <= cap);
    if cap < MAX_HEADER + if mode == Mode::Base64 { 7 } else { 1 } && r.is_empty() {
        // Too small a buffer to frame anything (the glue never uses one).
        assert_eq!(
            w.len(),
            if mode == Mode::Binary {
                cap.saturating_sub(MAX_HEADER)
            } else {
                0
            }
        );
        return;
    }
    assert!(!r.is_empty(), "frame failed: cap {cap} n {n} window {w:?}");
    let frame = buf[r.clone()].to_vec();
    let (fin, op, payload) = parse(&frame);
    assert!(fin);
    let original = &input[..n];
    match mode {
        Mode::Binary => {
            assert_eq!(op, codec::OP_BINARY);
            assert_eq!(payload, original);
        }
        Mode::Base64 => {
            assert_eq!(op, codec::OP_TEXT);
            assert_eq!(payload, ngx_websockify_fuzz::rfc4648::encode(original));
        }
    }
    if mode == Mode::Binary {
        tails(&f, &mut buf.clone(), r.clone(), &input[n..]);
    } else {
        assert!(f.tail_window(r.end, cap).is_none());
    }
    // A window one byte larger than read_window must not be framable in place.
    assert!(f.frame(&mut buf.clone(), w.len() + 1).is_empty());

    // Back through the decoder, as the client would send it.
    let key = [*flags, *c0, *c1, 0x5c];
    let mut wire = mask(&frame, key);
    let end = wire.len();
    let p = Decoder::new(mode).decode(&mut wire, 0, 0, end);
    assert!(p.event.is_none(), "{:?}", p.event.map(|e| format!("{e:?}")));
    assert_eq!(p.consumed, end);
    assert_eq!(&wire[..p.produced], original);

    // Headers in isolation and control frames.
    let len = input.len() * 977;
    let mut hb = [0u8; 16];
    let s = put_header(&mut hb, 16, flags & 0x0f, len);
    assert_eq!(16 - s, header_len(len));
    let (_, op, _) = (hb[s] & 0x80 != 0, hb[s] & 0x0f, ());
    assert_eq!(op, flags & 0x0f);
    assert_eq!(
        put_header(&mut hb, header_len(len) - 1, 2, len),
        header_len(len) - 1
    );
    let pong = codec::pong(input);
    let (_, op, body) = parse(pong.bytes());
    assert_eq!(op, codec::OP_PONG);
    assert_eq!(body, &input[..input.len().min(125)]);
    let code = u16::from_le_bytes([*c0, *c1]);
    let close = codec::close(Some(code), "");
    assert_eq!(parse(close.bytes()).2, code.to_be_bytes());
    assert_eq!(codec::close(None, "").bytes(), [0x88, 0]);
    let _ = Event::Pong;
});
