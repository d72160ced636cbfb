//! Client frame decoder: any bytes, split at points chosen by the input, in both modes
//! and with the three buffer layouts the glue can use. Checks the decode() contract
//! (produced <= consumed <= end, consumed == end when no event, bytes outside
//! [out, consumed) untouched) and compares output and events with a straightforward
//! whole-stream reference decoder written here.
//!
//! Input: flags, split count k, k little-endian u16 split points, then the stream.
//! flags bit 0: base64 mode; bits 1-2: buffer layout (0 fresh buffer per read,
//! 1 undelivered output kept in front (out == inp), 2 a gap of junk between out and inp);
//! bit 3: the stream is a list of frame recipes (see `build`) rather than raw bytes, so
//! the fuzzer reaches deep states without having to get masking right.
#![no_main]

use base64::alphabet::STANDARD as ALPHABET;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use ngx_http_websockify_module::codec::{Decoder, Event, Mode, ProtocolError};

#[derive(Debug, PartialEq)]
enum Ev {
    Ping(Vec<u8>),
    Pong,
    Close(Option<u16>),
    Error(ProtocolError),
}

fn ev(e: &Event) -> Ev {
    match e {
        Event::Ping(c) => Ev::Ping(c.payload().to_vec()),
        Event::Pong => Ev::Pong,
        Event::Close(c) => Ev::Close(*c),
        Event::Error(e) => Ev::Error(*e),
    }
}

/// Builds masked frames from recipes: [ctrl, b0, len, payload...]. ctrl bits 0-1:
/// length encoding (minimal, forced 16-bit, forced 64-bit, unmasked); bits 2-7 seed the key.
fn build(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let [ctrl, b0, len, rest @ ..] = data {
        let len = usize::from(*len).min(rest.len());
        let (payload, tail) = rest.split_at(len);
        data = tail;
        let mask_bit = if ctrl & 3 == 3 { 0 } else { 0x80 };
        out.push(*b0);
        match ctrl & 3 {
            1 => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            2 => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
            _ => out.push(mask_bit | len as u8),
        }
        let key = [ctrl ^ 0x5a, ctrl.rotate_left(3), !ctrl, ctrl.wrapping_mul(31)];
        if mask_bit != 0 {
            out.extend_from_slice(&key);
            out.extend(payload.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
        } else {
            out.extend_from_slice(payload);
        }
    }
    out
}

/// Feeds `chunks` through the decoder the way the glue would; returns output and events.
fn run_decoder(mode: Mode, layout: u8, chunks: &[&[u8]]) -> (Vec<u8>, Vec<Ev>) {
    let mut dec = Decoder::new(mode);
    let (mut out, mut events) = (Vec::new(), Vec::new());
    // Undelivered output that layout 1 and 2 keep at the front of the buffer.
    let mut kept: Vec<u8> = Vec::new();
    for (n, chunk) in chunks.iter().enumerate() {
        let gap = if layout == 2 { n % 7 } else { 0 };
        let mut buf = kept.clone();
        let o0 = buf.len();
        buf.extend(std::iter::repeat(0xee).take(gap));
        let i0 = buf.len();
        buf.extend_from_slice(chunk);
        let end = buf.len();
        buf.extend_from_slice(b"CANARY");
        let (mut o, mut i) = (o0, i0);
        loop {
            let before = buf.clone();
            let p = dec.decode(&mut buf, o, i, end);
            assert!(p.produced >= o && p.consumed >= i, "went backwards");
            assert!(p.produced <= p.consumed, "produced {} > consumed {}", p.produced, p.consumed);
            assert!(p.consumed <= end);
            assert_eq!(buf[..o], before[..o], "bytes before `out` clobbered");
            // After an error the decoder is dead and `consumed` may lag behind what base64
            // decoding already overwrote: only check when the stream goes on.
            if !matches!(p.event, Some(Event::Error(_))) {
                assert_eq!(buf[p.consumed..], before[p.consumed..], "unconsumed input touched");
            }
            (o, i) = (p.produced, p.consumed);
            match p.event {
                None => {
                    assert_eq!(i, end, "no event but input left");
                    break;
                }
                Some(e) => {
                    let e = ev(&e);
                    let stop = matches!(e, Ev::Error(_));
                    events.push(e);
                    if stop {
                        // Dead decoder: the same error again, nothing consumed or produced.
                        let p = dec.decode(&mut buf, o, i, end);
                        assert_eq!((p.produced, p.consumed), (o, i));
                        assert_eq!(p.event.as_ref().map(ev), events.last().map(|e| match e {
                            Ev::Error(x) => Ev::Error(*x),
                            _ => unreachable!(),
                        }));
                        out.extend_from_slice(&buf[o0..o]);
                        return (out, events);
                    }
                }
            }
        }
        out.extend_from_slice(&buf[o0..o]);
        if layout != 0 {
            // Half of this read's output stays undelivered in front of the next read.
            kept = buf[o0 + (o - o0) / 2..o].to_vec();
        }
    }
    (out, events)
}

#[derive(PartialEq)]
enum B64 {
    Ok,
    /// Valid so far, but not a complete message.
    Prefix,
    Bad,
}

/// Independent statement of the base64 rules: alphabet, whitespace skipped, '=' only to
/// complete the last quantum, nothing after it.
fn b64_state(text: &[u8]) -> B64 {
    let s: Vec<u8> = text.iter().copied().filter(|c| !b" \t\r\n".contains(c)).collect();
    let alpha = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    let p = s.iter().position(|&c| c == b'=').unwrap_or(s.len());
    if !s[..p].iter().all(alpha) {
        return B64::Bad;
    }
    if p < s.len() {
        let quantum_end = (p / 4 + 1) * 4;
        if p % 4 < 2 || !s[p..].iter().all(|&c| c == b'=') || s.len() > quantum_end {
            return B64::Bad;
        }
    }
    if s.len() % 4 == 0 {
        B64::Ok
    } else {
        B64::Prefix
    }
}

fn b64_decode(text: &[u8]) -> Vec<u8> {
    let s: Vec<u8> = text.iter().copied().filter(|c| !b" \t\r\n".contains(c)).collect();
    let engine = GeneralPurpose::new(
        &ALPHABET,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    engine.decode(&s).expect("reference base64 rejected what b64_state accepted")
}

struct Reference {
    out: Vec<u8>,
    events: Vec<Ev>,
    /// Base64: text of the open message; its output is known only once it completes.
    text: Vec<u8>,
    /// Base64 mode and the stream ended inside a message: output is only a prefix check.
    partial: bool,
}

/// Whole-stream reference: frame by frame, stopping at the first error.
fn reference(mode: Mode, s: &[u8]) -> Reference {
    let mut r = Reference { out: vec![], events: vec![], text: vec![], partial: false };
    let mut open = false;
    let mut at = 0;
    loop {
        let Some(&[b0, b1]) = s.get(at..at + 2).map(|h| <&[u8; 2]>::try_from(h).unwrap()) else {
            break;
        };
        let (fin, op, len7) = (b0 & 0x80 != 0, b0 & 0x0f, b1 & 0x7f);
        let control = op >= 8;
        if b0 & 0x70 != 0 {
            return r.fail(ProtocolError::ReservedBits);
        }
        let e = match op {
            8 | 9 | 10 if !fin => Some(ProtocolError::FragmentedControl),
            8 | 9 | 10 if len7 > 125 => Some(ProtocolError::ControlTooLong),
            8 | 9 | 10 => None,
            0 if !open => Some(ProtocolError::UnexpectedContinuation),
            1 | 2 if open => Some(ProtocolError::ExpectedContinuation),
            2 if mode == Mode::Base64 => Some(ProtocolError::BinaryInBase64),
            0 | 1 | 2 => None,
            _ => Some(ProtocolError::UnknownOpcode(op)),
        };
        if let Some(e) = e {
            return r.fail(e);
        }
        if b1 & 0x80 == 0 {
            return r.fail(ProtocolError::Unmasked);
        }
        let ext = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let Some(h) = s.get(at..at + 2 + ext + 4) else { break };
        let len = match len7 {
            126 => u64::from(u16::from_be_bytes([h[2], h[3]])),
            127 => u64::from_be_bytes(h[2..10].try_into().unwrap()),
            n => u64::from(n),
        };
        if len >> 63 != 0 {
            return r.fail(ProtocolError::BadLength);
        }
        let key = &h[2 + ext..];
        at += h.len();
        let avail = (s.len() - at) as u64;
        let take = len.min(avail) as usize;
        let payload: Vec<u8> =
            s[at..at + take].iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k).collect();
        at += take;
        let complete = take as u64 == len;
        if !control {
            open = !fin;
            match mode {
                Mode::Binary => r.out.extend_from_slice(&payload),
                Mode::Base64 => {
                    r.text.extend_from_slice(&payload);
                    let st = b64_state(&r.text);
                    if st == B64::Bad || (complete && fin && st != B64::Ok) {
                        r.partial = true;
                        return r.fail(ProtocolError::BadBase64);
                    }
                    if complete && fin {
                        let bytes = b64_decode(&r.text);
                        r.out.extend(bytes);
                        r.text.clear();
                    }
                }
            }
        }
        if !complete {
            break;
        }
        match op {
            9 => r.events.push(Ev::Ping(payload)),
            10 => r.events.push(Ev::Pong),
            8 => match payload.as_slice() {
                [] => r.events.push(Ev::Close(None)),
                [_] => return r.fail(ProtocolError::BadClosePayload),
                [hi, lo, reason @ ..] => {
                    let code = u16::from_be_bytes([*hi, *lo]);
                    let ok = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
                    if !ok {
                        return r.fail(ProtocolError::BadClosePayload);
                    }
                    if std::str::from_utf8(reason).is_err() {
                        return r.fail(ProtocolError::BadCloseReason);
                    }
                    r.events.push(Ev::Close(Some(code)));
                }
            },
            _ => {}
        }
    }
    if !r.text.is_empty() || open {
        r.partial = mode == Mode::Base64;
    }
    r
}

impl Reference {
    fn fail(mut self, e: ProtocolError) -> Self {
        self.events.push(Ev::Error(e));
        // Base64 bytes of the open message may already have been produced.
        self.partial |= !self.text.is_empty();
        self
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, k, rest @ ..] = data else { return };
    let mode = if flags & 1 != 0 { Mode::Base64 } else { Mode::Binary };
    let layout = ((flags >> 1) & 3) % 3;
    let k = usize::from(*k % 16);
    if rest.len() < 2 * k {
        return;
    }
    let (splits, body) = rest.split_at(2 * k);
    let stream = if flags & 8 != 0 { build(body) } else { body.to_vec() };
    let mut points: Vec<usize> = splits
        .chunks_exact(2)
        .map(|p| usize::from(u16::from_le_bytes([p[0], p[1]])) % (stream.len() + 1))
        .collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut from = 0;
    for p in points.into_iter().chain([stream.len()]) {
        chunks.push(&stream[from..p]);
        from = p;
    }

    let (out, events) = run_decoder(mode, layout, &chunks);
    // Splitting must not matter.
    let whole = run_decoder(mode, 0, &[&stream]);
    assert_eq!(events, whole.1, "split changed the events");
    if events.last() == Some(&Ev::Error(ProtocolError::BadBase64)) {
        // Bytes decoded from the bad message before the bad char are dropped when they
        // were decoded in the same call, kept when an earlier read produced them. Either
        // is fine (the session ends with 1007); both extend the completed messages' output.
    } else {
        assert_eq!(out, whole.0, "split changed the output");
    }

    let r = reference(mode, &stream);
    assert_eq!(events, r.events, "events differ from the reference");
    if r.partial {
        // Base64 output is produced per quantum, ahead of the message's end.
        assert!(out.starts_with(&r.out), "output does not extend the reference's");
        assert!(out.len() - r.out.len() <= r.text.len() * 3 / 4 + 3);
    } else {
        assert_eq!(out, r.out, "output differs from the reference");
    }
});
