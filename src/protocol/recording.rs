//! The session recording format (`websockify_record`), written by the relay and read by
//! `scripts/record-info` and the player:
//!
//! ```text
//! "NGXWSREC" | version u8 (1) | header length u32 BE | header (JSON, UTF-8)
//! then records: direction u8 (0: to the client, 1: from the client, 2: session info)
//!               | milliseconds since the start u32 BE | length u32 BE | bytes
//! ```
//!
//! The header names the session (`session`, `target`, `location`, `start` in Unix
//! milliseconds, `input`: whether client bytes are recorded). Records hold the payload
//! as the client received it (for an RFB session the gateway logged in for, its
//! handshake with security None first) and, with input recorded, the payload the client
//! sent, as it sent it (a view-only session's dropped input included: what was tried).
//! The header is written at the 101, before the VNC server has said anything, so what its
//! handshake showed the client comes in one session info record (JSON) right after the
//! ServerInit's: the versions, the security type, the framebuffer size and the desktop
//! name (none when the handshake was not one to follow). A file cut off anywhere reads up
//! to its last complete record.

use std::fmt::Write;

use super::json::quote as json_str;
use super::rfb::observe::{Info, Observer};

pub const MAGIC: &[u8; 8] = b"NGXWSREC";
pub const VERSION: u8 = 1;
/// Direction bytes.
pub const TO_CLIENT: u8 = 0;
pub const FROM_CLIENT: u8 = 1;
pub const SESSION_INFO: u8 = 2;
const RECORD_HEAD: usize = 9;
/// A record's bytes at most: longer runs are split.
const MAX_RECORD: usize = 1 << 20;

/// What the header says.
pub struct Header<'a> {
    pub session: &'a str,
    pub target: &'a str,
    pub location: &'a str,
    pub start_ms: u64,
    pub input: bool,
}

impl Header<'_> {
    pub fn encode(&self) -> Vec<u8> {
        let mut json = String::new();
        let _ = write!(
            json,
            "{{\"session\":{},\"target\":{},\"location\":{},\"start\":{},\"input\":{}}}",
            json_str(self.session),
            json_str(self.target),
            json_str(self.location),
            self.start_ms,
            self.input
        );
        let mut out = Vec::with_capacity(13 + json.len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&(json.len() as u32).to_be_bytes());
        out.extend_from_slice(json.as_bytes());
        out
    }
}

/// Records waiting for the file, appended in the format above.
pub struct Recorder {
    out: Vec<u8>,
    input: bool,
    start: u64,
    now: u64,
    /// Until the session info record is written (or there is none to write).
    observer: Option<Observer>,
}

impl Recorder {
    /// `start`: the session's start on the relay's clock.
    pub fn new(start: u64, input: bool) -> Recorder {
        Recorder {
            out: Vec::new(),
            input,
            start,
            now: start,
            observer: Some(Observer::new()),
        }
    }

    /// The relay's clock moved on: later records carry this time.
    pub fn at(&mut self, now: u64) {
        self.now = self.now.max(now);
    }

    pub fn to_client(&mut self, data: &[u8]) {
        self.push(TO_CLIENT, data);
        self.observe(data, true);
    }

    pub fn from_client(&mut self, data: &[u8]) {
        if self.input {
            self.push(FROM_CLIENT, data);
        }
        self.observe(data, false);
    }

    fn observe(&mut self, data: &[u8], down: bool) {
        let Some(o) = self.observer.as_mut() else {
            return;
        };
        let seen = if down { o.down(data) } else { o.up(data) };
        if o.is_over() {
            self.observer = None;
        }
        if let Some(info) = seen {
            self.push(SESSION_INFO, info_json(&info).as_bytes());
        }
    }

    fn push(&mut self, dir: u8, data: &[u8]) {
        let ms = u32::try_from(self.now.saturating_sub(self.start)).unwrap_or(u32::MAX);
        for part in data.chunks(MAX_RECORD) {
            self.out.push(dir);
            self.out.extend_from_slice(&ms.to_be_bytes());
            self.out
                .extend_from_slice(&(part.len() as u32).to_be_bytes());
            self.out.extend_from_slice(part);
        }
    }

    /// Bytes not yet written.
    pub fn pending(&self) -> usize {
        self.out.len()
    }

    /// The bytes to write; the caller writes them all or gives up on the file.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

fn info_json(i: &Info) -> String {
    format!(
        "{{\"rfb_version\":{},\"client_version\":{},\"security\":{},\"width\":{},\"height\":{},\"desktop\":{}}}",
        json_str(&i.server_version),
        json_str(&i.client_version),
        json_str(&i.security),
        i.width,
        i.height,
        json_str(&i.desktop)
    )
}

/// A record read back.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub dir: u8,
    pub ms: u32,
    pub data: &'a [u8],
}

#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// Not a recording, or a version this reader does not know.
    NotRecording,
    /// The header is cut off or not UTF-8.
    Header,
}

/// A recording: its header's JSON and its complete records (a cut-off tail is left out;
/// `complete` says whether there was one).
#[derive(Debug)]
pub struct Recording<'a> {
    pub header: &'a str,
    pub records: Vec<Record<'a>>,
    pub complete: bool,
}

pub fn read(file: &[u8]) -> Result<Recording<'_>, ReadError> {
    let (magic, rest) = file.split_at_checked(8).ok_or(ReadError::NotRecording)?;
    if magic != MAGIC || rest.first() != Some(&VERSION) {
        return Err(ReadError::NotRecording);
    }
    let len = rest.get(1..5).ok_or(ReadError::Header)?;
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let header = rest.get(5..5 + len).ok_or(ReadError::Header)?;
    let header = std::str::from_utf8(header).map_err(|_| ReadError::Header)?;
    let mut body = &rest[5 + len..];
    let mut records = Vec::new();
    while body.len() >= RECORD_HEAD {
        let n = u32::from_be_bytes([body[5], body[6], body[7], body[8]]) as usize;
        let Some(data) = body.get(RECORD_HEAD..RECORD_HEAD + n) else {
            break;
        };
        if body[0] > SESSION_INFO {
            break;
        }
        records.push(Record {
            dir: body[0],
            ms: u32::from_be_bytes([body[1], body[2], body[3], body[4]]),
            data,
        });
        body = &body[RECORD_HEAD + n..];
    }
    Ok(Recording {
        header,
        records,
        complete: body.is_empty(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut file = Header {
            session: "42-7",
            target: "127.0.0.1:5901",
            location: "/w\"s",
            start_ms: 1_700_000_000_000,
            input: true,
        }
        .encode();
        let mut r = Recorder::new(1000, true);
        r.to_client(b"RFB 003.008\n");
        r.at(1250);
        r.from_client(b"RFB 003.008\n");
        r.at(900); // a clock never goes back in the file
        r.to_client(&[1, 1]);
        file.extend(r.take());
        file
    }

    #[test]
    fn a_recording_reads_back() {
        let file = sample();
        let rec = read(&file).unwrap();
        assert_eq!(
            rec.header,
            r#"{"session":"42-7","target":"127.0.0.1:5901","location":"/w\"s","start":1700000000000,"input":true}"#
        );
        assert!(rec.complete);
        assert_eq!(
            rec.records,
            vec![
                Record {
                    dir: TO_CLIENT,
                    ms: 0,
                    data: b"RFB 003.008\n"
                },
                Record {
                    dir: FROM_CLIENT,
                    ms: 250,
                    data: b"RFB 003.008\n"
                },
                Record {
                    dir: TO_CLIENT,
                    ms: 250,
                    data: &[1, 1]
                },
            ]
        );
    }

    #[test]
    fn a_cut_file_reads_up_to_its_last_complete_record() {
        let file = sample();
        let whole = read(&file).unwrap().records.len();
        let mut seen = 0;
        for cut in 0..file.len() {
            match read(&file[..cut]) {
                Ok(rec) => {
                    assert!(!rec.complete || rec.records.len() < whole || cut == file.len());
                    assert!(rec.records.len() >= seen, "fewer records with more bytes");
                    seen = rec.records.len();
                }
                Err(e) => assert!(seen == 0, "{e:?} after records at {cut}"),
            }
        }
        assert_eq!(seen, whole - 1);
    }

    #[test]
    fn the_session_info_follows_the_server_init_input_recorded_or_not() {
        let mut init = vec![0x01, 0x40, 0x00, 0xc8];
        init.extend_from_slice(&[32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
        init.extend_from_slice(b"\0\0\0\x06a \"b\"\n");
        let mut r = Recorder::new(0, false);
        r.to_client(b"RFB 003.008\n\x01\x01");
        r.from_client(b"RFB 003.008\n\x01");
        r.to_client(b"\0\0\0\0");
        r.from_client(b"\x01");
        r.at(30);
        r.to_client(&init);
        r.to_client(b"\0\0\0\x01");
        let mut file = sample();
        file.extend(r.take());
        let rec = read(&file).unwrap();
        assert!(rec.complete);
        let kinds: Vec<u8> = rec.records.iter().skip(3).map(|r| r.dir).collect();
        assert_eq!(
            kinds,
            [TO_CLIENT, TO_CLIENT, TO_CLIENT, SESSION_INFO, TO_CLIENT]
        );
        let info = &rec.records[6];
        assert_eq!(info.ms, 30);
        assert_eq!(
            std::str::from_utf8(info.data).unwrap(),
            r#"{"rfb_version":"RFB 003.008","client_version":"RFB 003.008","security":"none","width":320,"height":200,"desktop":"a \"b\"\u000a"}"#
        );
    }

    #[test]
    fn input_is_left_out_unless_asked_for() {
        let mut r = Recorder::new(0, false);
        r.from_client(b"keys");
        assert_eq!(r.pending(), 0);
        assert_eq!(
            read(b"NGXWSREC\x02\0\0\0\0").unwrap_err(),
            ReadError::NotRecording
        );
    }
}
