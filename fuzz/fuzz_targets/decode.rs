//! Client frame decoder: any bytes, split at points chosen by the input, in both modes
//! and with the three buffer layouts the glue can use. Checks the decode() contract
//! (produced <= consumed <= end, consumed == end when no event, bytes outside
//! [out, consumed) untouched, splitting changes nothing), then that events and output
//! are a lawful reading of the stream by the RFC 6455 reference in fuzz/src/rfc6455.rs,
//! written from the RFC and not from src/codec.rs.
//!
//! Input: flags, split count k, k little-endian u16 split points, then the stream.
//! flags bit 0: base64 mode; bits 1-2: buffer layout (0 fresh buffer per read,
//! 1 undelivered output kept in front (out == inp), 2 a gap of junk between out and inp);
//! bit 3: the stream is a list of frame recipes (see `build`) rather than raw bytes, so
//! the fuzzer reaches deep states without having to get masking right.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ngx_http_websockify_module::protocol::codec::{Decoder, Event, Mode, ProtocolError};
use ngx_websockify_fuzz::rfc6455::{reference, Ev};

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
        let key = [
            ctrl ^ 0x5a,
            ctrl.rotate_left(3),
            !ctrl,
            ctrl.wrapping_mul(31),
        ];
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
        buf.extend(std::iter::repeat_n(0xee, gap));
        let i0 = buf.len();
        buf.extend_from_slice(chunk);
        let end = buf.len();
        buf.extend_from_slice(b"CANARY");
        let (mut o, mut i) = (o0, i0);
        loop {
            let before = buf.clone();
            let p = dec.decode(&mut buf, o, i, end);
            assert!(p.produced >= o && p.consumed >= i, "went backwards");
            assert!(
                p.produced <= p.consumed,
                "produced {} > consumed {}",
                p.produced,
                p.consumed
            );
            assert!(p.consumed <= end);
            assert_eq!(buf[..o], before[..o], "bytes before `out` clobbered");
            // After an error the decoder is dead and `consumed` may lag behind what base64
            // decoding already overwrote: only check when the stream goes on.
            if !matches!(p.event, Some(Event::Error(_))) {
                assert_eq!(
                    buf[p.consumed..],
                    before[p.consumed..],
                    "unconsumed input touched"
                );
            }
            (o, i) = (p.produced, p.consumed);
            match p.event {
                None => {
                    assert_eq!(i, end, "no event but input left");
                    break;
                }
                Some(e) => {
                    let e = ev(&e);
                    events.push(e.clone());
                    match e {
                        Ev::Error(_) => {
                            // Dead decoder: the same error again, nothing consumed or produced.
                            let p = dec.decode(&mut buf, o, i, end);
                            assert_eq!((p.produced, p.consumed), (o, i));
                            assert_eq!(p.event.as_ref().map(ev), Some(e));
                        }
                        // The glue reads nothing after a close.
                        Ev::Close(_) => {}
                        _ => continue,
                    }
                    out.extend_from_slice(&buf[o0..o]);
                    return (out, events);
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

fuzz_target!(|data: &[u8]| {
    ngx_websockify_fuzz::self_check();
    let [flags, k, rest @ ..] = data else { return };
    let mode = if flags & 1 != 0 {
        Mode::Base64
    } else {
        Mode::Binary
    };
    let layout = ((flags >> 1) & 3) % 3;
    let k = usize::from(*k % 16);
    if rest.len() < 2 * k {
        return;
    }
    let (splits, body) = rest.split_at(2 * k);
    let stream = if flags & 8 != 0 {
        build(body)
    } else {
        body.to_vec()
    };
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
    if events.last() != Some(&Ev::Error(ProtocolError::BadBase64)) {
        // (Bytes decoded from a bad base64 message in the call that finds the bad char
        // are dropped, those of earlier reads kept: both are lawful prefixes.)
        assert_eq!(out, whole.0, "split changed the output");
    }

    // Non-zero base64 pad bits may be accepted or refused (RFC 4648 3.5), consistently.
    let strict = reference(mode, &stream, true);
    let lenient = reference(mode, &stream, false);
    if let (Err(why), Err(_)) = (
        strict.admits(mode, &events, &out),
        lenient.admits(mode, &events, &out),
    ) {
        panic!(
            "decoder and RFC 6455 reference disagree: {why}\n  mode {mode:?}, stream {}\n  decoder:   \
             events {events:?}, output {}\n  reference: events {:?}, output {}, then any prefix of {}, \
             errors {:?} (required: {})",
            hex(&stream),
            hex(&out),
            strict.events,
            hex(&strict.out),
            hex(&strict.pending),
            strict.failures,
            strict.required
        );
    }
});

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
