//! The recording reader over arbitrary files, and the writer's records read back. Checks:
//! no input makes the reader fail other than by saying so, a file cut anywhere reads as
//! a prefix of the whole, and what the Recorder wrote reads back exactly, with at most
//! one session info record (when the script's bytes happen to be an RFB handshake).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ngx_http_websockify_module::protocol::recording::{self, Header, Recorder};

fuzz_target!(|data: &[u8]| {
    // Arbitrary bytes: read, and every cut of a readable file reads as a prefix.
    if let Ok(whole) = recording::read(data) {
        let cut = data.len() / 2;
        if let Ok(part) = recording::read(&data[..cut]) {
            assert!(part.records.len() <= whole.records.len());
            assert!(part.records.iter().zip(&whole.records).all(|(a, b)| a == b));
        }
    }
    // The bytes as a script for the writer: runs of (direction bit, delay, length).
    let mut file = Header {
        session: "s",
        target: "t",
        location: "/",
        start_ms: 0,
        input: true,
    }
    .encode();
    let mut rec = Recorder::new(0, true);
    let mut want = Vec::new();
    let (mut now, mut rest) = (0u64, data);
    while let [op, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (bytes, after) = tail.split_at(n);
        now += u64::from(op >> 1);
        rec.at(now);
        if op & 1 == 0 {
            rec.to_client(bytes);
        } else {
            rec.from_client(bytes);
        }
        // Nothing to record is no record.
        if !bytes.is_empty() {
            want.push((op & 1, now as u32, bytes));
        }
        rest = after;
    }
    file.extend(rec.take());
    let got = recording::read(&file).expect("the writer's file reads");
    assert!(got.complete);
    let (info, got): (Vec<_>, Vec<_>) = got
        .records
        .iter()
        .map(|r| (r.dir, r.ms, r.data))
        .partition(|r| r.0 == recording::SESSION_INFO);
    assert_eq!(got, want);
    assert!(info.len() <= 1, "more than one session info record");
    if let Some((_, _, json)) = info.first() {
        let json = std::str::from_utf8(json).expect("session info is UTF-8");
        assert!(json.starts_with("{\"rfb_version\":\"RFB ") && json.ends_with('}'));
    }
});
