//! RFC 6455 framing for the relay: client frames are decoded in place inside the
//! connection buffer, target bytes are framed in place. No allocation, no panics:
//! this runs inside an nginx worker, where a panic would end every session.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use core::fmt;
use core::ops::Range;

/// Largest server->client frame header (FIN/opcode, 127, 64-bit length).
pub const MAX_HEADER: usize = 10;

pub const OP_CONT: u8 = 0;
pub const OP_TEXT: u8 = 1;
pub const OP_BINARY: u8 = 2;
pub const OP_CLOSE: u8 = 8;
pub const OP_PING: u8 = 9;
pub const OP_PONG: u8 = 10;

/// Payload encoding negotiated by the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Raw bytes. Text frames are passed through like binary ones: the target speaks a
    /// byte stream, so rejecting them (as Python websockify does with 1003) gains nothing.
    Binary,
    /// Legacy `base64` subprotocol: text frames carry base64, each message padded on its own.
    Base64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    Unmasked,
    ReservedBits,
    UnknownOpcode(u8),
    FragmentedControl,
    ControlTooLong,
    UnexpectedContinuation,
    ExpectedContinuation,
    /// 64-bit payload length with the most significant bit set.
    BadLength,
    /// Close body of one byte, or a code that may not be sent on the wire.
    BadClosePayload,
    /// Close reason that is not UTF-8.
    BadCloseReason,
    BadBase64,
    BinaryInBase64,
}

impl ProtocolError {
    /// Status code for the close frame sent before dropping the client.
    pub fn close_code(self) -> u16 {
        match self {
            Self::BadBase64 | Self::BadCloseReason => 1007,
            Self::BinaryInBase64 => 1003,
            _ => 1002,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unmasked => f.write_str("client frame is not masked"),
            Self::ReservedBits => f.write_str("client frame has reserved bits set"),
            Self::UnknownOpcode(op) => write!(f, "client frame has unknown opcode {op}"),
            Self::FragmentedControl => f.write_str("client sent a fragmented control frame"),
            Self::ControlTooLong => f.write_str("client control frame is longer than 125 bytes"),
            Self::UnexpectedContinuation => {
                f.write_str("client continuation frame without a message")
            }
            Self::ExpectedContinuation => {
                f.write_str("client started a message inside a fragmented one")
            }
            Self::BadLength => f.write_str("client frame length has the most significant bit set"),
            Self::BadClosePayload => f.write_str("client close frame has an invalid status code"),
            Self::BadCloseReason => f.write_str("client close reason is not valid UTF-8"),
            Self::BadBase64 => f.write_str("client sent invalid base64"),
            Self::BinaryInBase64 => f.write_str("client sent a binary frame in base64 mode"),
        }
    }
}

/// Payload of a control frame (at most 125 bytes), kept out of the data stream.
#[derive(Clone, Copy)]
pub struct Control {
    len: u8,
    data: [u8; 125],
}

impl Control {
    pub fn payload(&self) -> &[u8] {
        self.data.get(..usize::from(self.len)).unwrap_or_default()
    }
}

// Bytes past `len` are stale leftovers of earlier frames: compare and show the payload only.
impl PartialEq for Control {
    fn eq(&self, other: &Self) -> bool {
        self.payload() == other.payload()
    }
}

impl Eq for Control {}

impl fmt::Debug for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Control").field(&self.payload()).finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Reply with a pong carrying the same payload.
    Ping(Control),
    Pong,
    /// Client's close code (None for an empty close body); the reply echoes it.
    Close(Option<u16>),
    /// The decoder is dead after this.
    Error(ProtocolError),
}

pub struct Progress {
    pub consumed: usize,
    pub produced: usize,
    pub event: Option<Event>,
}

/// Base64 decoder state that survives frame and read boundaries. Bytes are emitted as
/// soon as their bits are known, so each input char yields at most one output byte and
/// in-place output can never overtake input.
#[derive(Default)]
struct Base64State {
    acc: u32,
    /// Chars of the current quantum seen, '=' included.
    n: u8,
    /// Padding seen: only '=' may complete the quantum, then the message must end.
    pad: bool,
}

impl Base64State {
    fn push(&mut self, c: u8) -> Result<Option<u8>, ProtocolError> {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' if self.n >= 2 => {
                self.pad = true;
                self.n = (self.n + 1) % 4;
                return Ok(None);
            }
            _ => return Err(ProtocolError::BadBase64),
        };
        if self.pad {
            return Err(ProtocolError::BadBase64);
        }
        self.acc = self.acc << 6 | u32::from(v);
        self.n += 1;
        let left = (6 * self.n) % 8; // bits still pending after this char
        let byte = (self.n >= 2).then_some((self.acc >> left) as u8);
        self.acc &= (1 << left) - 1;
        self.n %= 4;
        Ok(byte)
    }

    /// End of a text message: it must end on a quantum boundary (padded), like Python's b64decode.
    fn finish(&mut self) -> Result<(), ProtocolError> {
        let complete = self.n == 0;
        *self = Self::default();
        if complete {
            Ok(())
        } else {
            Err(ProtocolError::BadBase64)
        }
    }
}

/// Client frame decoder (masked frames in, unmasked payload out, in place).
pub struct Decoder {
    mode: Mode,
    /// Header bytes gathered so far (a header may be split across reads).
    hdr: [u8; 14],
    hdr_len: usize,
    in_payload: bool,
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    /// Offset into the mask of the next payload byte.
    phase: usize,
    remaining: u64,
    /// A fragmented data message is open: only continuation frames may follow.
    open: bool,
    ctrl: Control,
    b64: Base64State,
    dead: Option<ProtocolError>,
    /// Frames whose header was accepted.
    frames: u64,
}

impl Decoder {
    /// Frames (data and control) whose header was accepted so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            hdr: [0; 14],
            hdr_len: 0,
            in_payload: false,
            fin: false,
            opcode: 0,
            mask: [0; 4],
            phase: 0,
            remaining: 0,
            open: false,
            ctrl: Control {
                len: 0,
                data: [0; 125],
            },
            b64: Base64State::default(),
            dead: None,
            frames: 0,
        }
    }

    /// Decodes masked client frames from buf[inp..end]. Data payload (binary, text and
    /// continuation frames) is unmasked and written contiguously from buf[out] (out <= inp):
    /// decoding happens in place and header bytes are squeezed out. `consumed` is the index
    /// up to which input was used, `produced` the new end of output. A partial header at the
    /// end of input is buffered here, so when `event` is None, consumed == end. Control
    /// payloads are collected here, never written to the output. Decoding stops right after
    /// the first complete control frame or the first error, returned as `event`; call again
    /// with inp = consumed, out = produced. Out-of-range arguments are clamped, not trusted.
    pub fn decode(&mut self, buf: &mut [u8], out: usize, inp: usize, end: usize) -> Progress {
        let end = end.min(buf.len());
        let mut i = inp.min(end);
        let mut o = out.min(i);
        let event = match self.dead {
            Some(e) => Some(Event::Error(e)),
            None => self.run(buf, &mut o, &mut i, end).unwrap_or_else(|e| {
                self.dead = Some(e);
                Some(Event::Error(e))
            }),
        };
        Progress {
            consumed: i,
            produced: o,
            event,
        }
    }

    /// Invariant o <= i <= end: every consumed byte yields at most one output byte.
    fn run(
        &mut self,
        buf: &mut [u8],
        o: &mut usize,
        i: &mut usize,
        end: usize,
    ) -> Result<Option<Event>, ProtocolError> {
        loop {
            if !self.in_payload && !self.header(buf, i, end)? {
                return Ok(None);
            }
            if self.remaining > 0 {
                let n = self.remaining.min(end.saturating_sub(*i) as u64) as usize;
                if self.opcode & 8 != 0 {
                    self.collect(buf, *i, n);
                } else if self.mode == Mode::Base64 {
                    *o = self.base64(buf, *o, *i, n)?;
                } else {
                    unmask_move(buf, *o, *i, n, rotated(self.mask, self.phase));
                    *o += n;
                }
                *i += n;
                self.remaining -= n as u64;
                self.phase = (self.phase + n) % 4;
                if self.remaining > 0 {
                    return Ok(None);
                }
            }
            self.in_payload = false;
            match self.opcode {
                OP_PING => return Ok(Some(Event::Ping(self.ctrl))),
                OP_PONG => return Ok(Some(Event::Pong)),
                OP_CLOSE => return close_event(self.ctrl.payload()).map(Some),
                _ if self.fin && self.mode == Mode::Base64 => self.b64.finish()?,
                _ => {}
            }
        }
    }

    /// Gathers and validates a frame header; true once the frame is set up.
    fn header(&mut self, buf: &[u8], i: &mut usize, end: usize) -> Result<bool, ProtocolError> {
        if !self.fill(buf, i, end, 2) {
            return Ok(false);
        }
        let [b0, b1, ..] = self.hdr;
        // Validated as soon as possible so a bad stream fails without waiting for more bytes.
        let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0f);
        let len7 = b1 & 0x7f;
        if b0 & 0x70 != 0 {
            return Err(ProtocolError::ReservedBits);
        }
        match opcode {
            OP_CLOSE | OP_PING | OP_PONG if !fin => return Err(ProtocolError::FragmentedControl),
            OP_CLOSE | OP_PING | OP_PONG if len7 > 125 => {
                return Err(ProtocolError::ControlTooLong)
            }
            OP_CLOSE | OP_PING | OP_PONG => {}
            OP_CONT if !self.open => return Err(ProtocolError::UnexpectedContinuation),
            OP_TEXT | OP_BINARY if self.open => return Err(ProtocolError::ExpectedContinuation),
            OP_BINARY if self.mode == Mode::Base64 => return Err(ProtocolError::BinaryInBase64),
            OP_CONT | OP_TEXT | OP_BINARY => {}
            _ => return Err(ProtocolError::UnknownOpcode(opcode)),
        }
        if b1 & 0x80 == 0 {
            return Err(ProtocolError::Unmasked);
        }
        let ext = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        if !self.fill(buf, i, end, 2 + ext + 4) {
            return Ok(false);
        }
        let h = self.hdr;
        let (len, mask) = match len7 {
            126 => (
                u64::from(u16::from_be_bytes([h[2], h[3]])),
                [h[4], h[5], h[6], h[7]],
            ),
            127 => (
                u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
                [h[10], h[11], h[12], h[13]],
            ),
            _ => (u64::from(len7), [h[2], h[3], h[4], h[5]]),
        };
        if len >> 63 != 0 {
            return Err(ProtocolError::BadLength);
        }
        if opcode & 8 == 0 {
            self.open = !fin;
        } else {
            self.ctrl.len = 0;
        }
        self.hdr_len = 0;
        self.frames += 1;
        self.in_payload = true;
        self.fin = fin;
        self.opcode = opcode;
        self.mask = mask;
        self.phase = 0;
        self.remaining = len;
        Ok(true)
    }

    /// Moves input into `hdr` until it holds `want` bytes; false if input ran out first.
    fn fill(&mut self, buf: &[u8], i: &mut usize, end: usize, want: usize) -> bool {
        let have = self.hdr_len;
        let take = want.saturating_sub(have).min(end.saturating_sub(*i));
        if let (Some(dst), Some(src)) =
            (self.hdr.get_mut(have..have + take), buf.get(*i..*i + take))
        {
            dst.copy_from_slice(src);
            self.hdr_len += take;
            *i += take;
        }
        self.hdr_len >= want
    }

    /// Unmasks control payload into `ctrl` (the header check bounds it to 125 bytes).
    fn collect(&mut self, buf: &[u8], i: usize, n: usize) {
        let at = usize::from(self.ctrl.len);
        let key = rotated(self.mask, self.phase);
        if let (Some(dst), Some(src)) = (self.ctrl.data.get_mut(at..at + n), buf.get(i..i + n)) {
            for ((d, s), k) in dst.iter_mut().zip(src).zip(key.iter().cycle()) {
                *d = s ^ k;
            }
            self.ctrl.len += n as u8;
        }
    }

    /// Unmasks and base64-decodes buf[i..i + n] into buf[o..] in one pass; returns the new o.
    fn base64(
        &mut self,
        buf: &mut [u8],
        mut o: usize,
        i: usize,
        n: usize,
    ) -> Result<usize, ProtocolError> {
        let key = rotated(self.mask, self.phase);
        for (at, k) in (i..i + n).zip(key.iter().cycle()) {
            let Some(&c) = buf.get(at) else { break };
            if let (Some(byte), Some(slot)) = (self.b64.push(c ^ k)?, buf.get_mut(o)) {
                *slot = byte;
                o += 1;
            }
        }
        Ok(o)
    }
}

fn close_event(body: &[u8]) -> Result<Event, ProtocolError> {
    match body {
        [] => Ok(Event::Close(None)),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            // The codes IANA registers for endpoints to send, and the private ranges.
            if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
                Err(ProtocolError::BadClosePayload)
            } else if core::str::from_utf8(reason).is_err() {
                Err(ProtocolError::BadCloseReason)
            } else {
                Ok(Event::Close(Some(code)))
            }
        }
        [_] => Err(ProtocolError::BadClosePayload),
    }
}

/// The mask as seen from payload offset `phase`.
fn rotated(mask: [u8; 4], phase: usize) -> [u8; 4] {
    let mut m = mask;
    m.rotate_left(phase % 4);
    m
}

/// Moves buf[src..src + n] down to buf[dst..] (dst <= src) and unmasks it. Works in
/// 4 KiB blocks so the XOR pass hits data the move just brought into L1; a block's
/// destination never reaches input that has not been moved yet, since dst <= src.
fn unmask_move(buf: &mut [u8], dst: usize, src: usize, n: usize, key: [u8; 4]) {
    const BLOCK: usize = 4096; // a multiple of 4: every block starts at the same mask phase
    let (Some(shift), Some(region)) = (src.checked_sub(dst), buf.get_mut(dst..src + n)) else {
        return;
    };
    let mut done = 0;
    while done < n {
        let len = (n - done).min(BLOCK);
        if shift > 0 {
            region.copy_within(shift + done..shift + done + len, done);
        }
        if let Some(block) = region.get_mut(done..done + len) {
            xor_words(block, key);
        }
        done += len;
    }
}

/// XORs `data` with the repeating mask `key`, eight bytes at a time.
fn xor_words(data: &mut [u8], key: [u8; 4]) {
    let key8 = [
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ];
    let word = u64::from_ne_bytes(key8);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        if let Ok(w) = <[u8; 8]>::try_from(&*chunk) {
            chunk.copy_from_slice(&(u64::from_ne_bytes(w) ^ word).to_ne_bytes());
        }
    }
    for (b, k) in chunks.into_remainder().iter_mut().zip(key8) {
        *b ^= k;
    }
}

/// Length of the minimal server frame header for `payload` bytes: 2, 4 or 10.
pub fn header_len(payload: usize) -> usize {
    match payload {
        0..=125 => 2,
        126..=0xffff => 4,
        _ => 10,
    }
}

/// Writes a FIN, unmasked header for `payload` bytes into buf[end - header_len(payload)..end]
/// and returns that start. If it does not fit there, nothing is written and `end` is returned
/// (a header is never empty, so start == end means failure).
pub fn put_header(buf: &mut [u8], end: usize, opcode: u8, payload: usize) -> usize {
    let len = header_len(payload);
    let mut h = [0u8; MAX_HEADER];
    h[0] = 0x80 | (opcode & 0x0f);
    match len {
        2 => h[1] = payload as u8,
        4 => {
            h[1] = 126;
            h[2..4].copy_from_slice(&(payload as u16).to_be_bytes());
        }
        _ => {
            h[1] = 127;
            h[2..10].copy_from_slice(&(payload as u64).to_be_bytes());
        }
    }
    let Some(start) = end.checked_sub(len) else {
        return end;
    };
    match (buf.get_mut(start..end), h.get(..len)) {
        (Some(dst), Some(src)) => {
            dst.copy_from_slice(src);
            start
        }
        _ => end,
    }
}

/// A complete server control frame (header + up to 125 bytes).
pub struct ControlFrame {
    len: usize,
    data: [u8; 127],
}

impl ControlFrame {
    pub fn bytes(&self) -> &[u8] {
        self.data.get(..self.len).unwrap_or_default()
    }

    fn new(opcode: u8, payload: &[u8]) -> Self {
        // Control payloads are capped at 125 bytes; the decoder never yields more.
        let payload = payload.get(..125).unwrap_or(payload);
        let mut data = [0u8; 127];
        data[0] = 0x80 | opcode;
        data[1] = payload.len() as u8;
        if let Some(dst) = data.get_mut(2..2 + payload.len()) {
            dst.copy_from_slice(payload);
        }
        Self {
            len: 2 + payload.len(),
            data,
        }
    }
}

/// Pong answering a ping with `payload` (truncated to 125 bytes).
pub fn pong(payload: &[u8]) -> ControlFrame {
    ControlFrame::new(OP_PONG, payload)
}

/// Heartbeat ping; a live browser answers with a pong on its own.
pub fn ping() -> ControlFrame {
    ControlFrame::new(OP_PING, b"websockify")
}

/// Close frame with `code` and a short UTF-8 `reason` (at most 123 bytes kept), or an
/// empty body for None.
pub fn close(code: Option<u16>, reason: &str) -> ControlFrame {
    let Some(code) = code else {
        return ControlFrame::new(OP_CLOSE, &[]);
    };
    let mut body = [0u8; 125];
    body[..2].copy_from_slice(&code.to_be_bytes());
    let reason = reason.as_bytes().get(..123).unwrap_or(reason.as_bytes());
    body[2..2 + reason.len()].copy_from_slice(reason);
    ControlFrame::new(OP_CLOSE, &body[..2 + reason.len()])
}

/// Target->client framing inside one buffer.
pub struct Framer {
    mode: Mode,
}

impl Framer {
    pub fn new(mode: Mode) -> Self {
        Self { mode }
    }

    /// Where target bytes should be read so the frame can then be built in place.
    /// Binary: after room for the largest header. Base64: a tail window small enough that
    /// header + base64 text (4/3 larger) fit in front of it without overlap.
    pub fn read_window(&self, cap: usize) -> Range<usize> {
        match self.mode {
            Mode::Binary => MAX_HEADER.min(cap)..cap,
            Mode::Base64 => {
                // m a multiple of 3 with MAX_HEADER + 4m/3 + m <= cap.
                let m = cap.saturating_sub(MAX_HEADER) / 7 * 3;
                cap - m..cap
            }
        }
    }

    /// Frames `n` bytes just read at the start of read_window(buf.len()); returns the range
    /// of buf holding the complete frame (empty if `n` does not fit the window).
    pub fn frame(&self, buf: &mut [u8], n: usize) -> Range<usize> {
        let window = self.read_window(buf.len());
        if n > window.len() || buf.len() < MAX_HEADER {
            return 0..0;
        }
        let (opcode, payload) = match self.mode {
            Mode::Binary => (OP_BINARY, n),
            Mode::Base64 => {
                let (front, back) = buf.split_at_mut(window.start);
                let encoded = match (front.get_mut(MAX_HEADER..), back.get(..n)) {
                    (Some(dst), Some(src)) => STANDARD.encode_slice(src, dst),
                    _ => return 0..0,
                };
                match encoded {
                    Ok(len) => (OP_TEXT, len),
                    Err(_) => return 0..0,
                }
            }
        };
        let start = put_header(buf, MAX_HEADER, opcode, payload);
        start..MAX_HEADER + payload
    }

    /// Where more target bytes can be read behind frames that end at `last` and still
    /// wait for the client, so both sockets stay busy (binary mode; None without room).
    /// At most 65535 bytes, so that the header is 2 or 4 bytes and 4 are reserved.
    pub fn tail_window(&self, last: usize, cap: usize) -> Option<Range<usize>> {
        if self.mode != Mode::Binary {
            return None;
        }
        let start = last.checked_add(TAIL_HEADER)?;
        let end = cap.min(start.saturating_add(usize::from(u16::MAX)));
        (end >= start.saturating_add(TAIL_MIN)).then_some(start..end)
    }

    /// Frames `n` bytes read at `tail_window(last, ..)`; returns the new end of the frames
    /// (`last` itself if they do not fit). A short payload gets a 2-byte header and moves
    /// down by 2 bytes (at most 125 bytes copied) so that frames stay contiguous.
    pub fn frame_tail(&self, buf: &mut [u8], last: usize, n: usize) -> usize {
        let start = last.saturating_add(TAIL_HEADER);
        let fits = n <= usize::from(u16::MAX) && start.saturating_add(n) <= buf.len();
        if self.mode != Mode::Binary || !fits {
            return last;
        }
        let h = header_len(n);
        if h < TAIL_HEADER {
            buf.copy_within(start..start + n, last + h);
        }
        put_header(buf, last + h, OP_BINARY, n);
        last + h + n
    }
}

/// Header room reserved by `tail_window`, and the smallest read worth a tail.
const TAIL_HEADER: usize = 4;
const TAIL_MIN: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_ping_is_a_control_frame() {
        let p = super::ping();
        assert_eq!(p.bytes()[0], 0x80 | OP_PING);
        assert_eq!(usize::from(p.bytes()[1]), p.bytes().len() - 2);
        assert!(p.bytes().len() <= 127);
    }

    #[test]
    fn frames_appended_behind_pending_ones_stay_contiguous() {
        let f = Framer::new(Mode::Binary);
        let mut buf = vec![0u8; 70_000];
        let first = f.read_window(buf.len());
        let n1 = 3000;
        buf[first.start..first.start + n1].fill(1);
        let r = f.frame(&mut buf, n1);
        let mut last = r.end;
        let mut expect = vec![(OP_BINARY, vec![1u8; n1])];
        for (fill, n) in [(2u8, 100usize), (3, 5000), (4, 125), (5, 126)] {
            let w = f.tail_window(last, buf.len()).expect("room");
            buf[w.start..w.start + n].fill(fill);
            last = f.frame_tail(&mut buf, last, n);
            expect.push((OP_BINARY, vec![fill; n]));
        }
        let mut at = r.start;
        for (op, payload) in expect {
            let b1 = buf[at + 1] as usize;
            let (len, h) = match b1 {
                126 => (u16::from_be_bytes([buf[at + 2], buf[at + 3]]) as usize, 4),
                n => (n, 2),
            };
            assert_eq!(buf[at] & 0x0f, op);
            assert_eq!(buf[at] & 0x80, 0x80);
            assert_eq!(&buf[at + h..at + h + len], &payload[..]);
            at += h + len;
        }
        assert_eq!(at, last);
        assert_eq!(
            f.tail_window(buf.len() - 500, buf.len()),
            None,
            "too little room"
        );
        assert_eq!(Framer::new(Mode::Base64).tail_window(0, 70_000), None);
        assert_eq!(f.frame_tail(&mut buf, last, 70_000), last, "does not fit");
    }

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A masked client frame with minimal length encoding.
    fn client(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n @ 0..=125 => f.push(0x80 | n as u8),
            n @ 126..=0xffff => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, k)| b ^ k));
        f
    }

    fn bin(payload: &[u8]) -> Vec<u8> {
        client(true, OP_BINARY, payload, MASK)
    }

    /// Feeds `chunks` as successive reads, each into a fresh buffer, like the glue does;
    /// returns the output and the events (stopping at an error).
    fn feed(dec: &mut Decoder, chunks: &[&[u8]]) -> (Vec<u8>, Vec<Event>) {
        let (mut out, mut events) = (Vec::new(), Vec::new());
        for chunk in chunks {
            let mut buf = chunk.to_vec();
            let (mut o, mut i) = (0, 0);
            loop {
                let end = buf.len();
                let p = dec.decode(&mut buf, o, i, end);
                assert!(p.produced <= p.consumed && p.consumed <= buf.len());
                (o, i) = (p.produced, p.consumed);
                match p.event {
                    None => {
                        assert_eq!(i, buf.len());
                        break;
                    }
                    Some(e @ Event::Error(_)) => {
                        out.extend_from_slice(&buf[..o]);
                        events.push(e);
                        return (out, events);
                    }
                    Some(e) => events.push(e),
                }
            }
            out.extend_from_slice(&buf[..o]);
        }
        (out, events)
    }

    fn decode_all(mode: Mode, input: &[u8]) -> (Vec<u8>, Vec<Event>) {
        feed(&mut Decoder::new(mode), &[input])
    }

    fn error_of(mode: Mode, input: &[u8]) -> ProtocolError {
        match decode_all(mode, input).1.last() {
            Some(Event::Error(e)) => *e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn ping(p: &[u8]) -> Event {
        let mut c = Control {
            len: p.len() as u8,
            data: [0; 125],
        };
        c.data[..p.len()].copy_from_slice(p);
        Event::Ping(c)
    }

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn length_encodings() {
        for (len, hdr) in [
            (0, 2),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
            (70000, 10),
        ] {
            let payload = pattern(len);
            let frame = bin(&payload);
            assert_eq!(frame.len(), hdr + 4 + len);
            assert_eq!(decode_all(Mode::Binary, &frame), (payload, vec![]));
            assert_eq!(header_len(len), hdr);
        }
    }

    #[test]
    fn server_headers() {
        let mut buf = [0u8; 12];
        assert_eq!(put_header(&mut buf, 12, OP_BINARY, 125), 10);
        assert_eq!(buf[10..], [0x82, 125]);
        assert_eq!(put_header(&mut buf, 12, OP_TEXT, 126), 8);
        assert_eq!(buf[8..], [0x81, 126, 0, 126]);
        assert_eq!(put_header(&mut buf, 12, OP_BINARY, 65535), 8);
        assert_eq!(buf[8..], [0x82, 126, 0xff, 0xff]);
        assert_eq!(put_header(&mut buf, 12, OP_BINARY, 65536), 2);
        assert_eq!(buf[2..], [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
        // No room: nothing written, `end` returned.
        assert_eq!(put_header(&mut buf, 9, OP_BINARY, 65536), 9);
        assert_eq!(put_header(&mut buf, 20, OP_BINARY, 1), 20);
    }

    #[test]
    fn control_frames() {
        assert_eq!(pong(b"hi").bytes(), [0x8a, 2, b'h', b'i']);
        assert_eq!(pong(&[7; 200]).bytes().len(), 127);
        assert_eq!(close(None, "").bytes(), [0x88, 0]);
        assert_eq!(close(Some(1001), "").bytes(), [0x88, 2, 0x03, 0xe9]);
        assert_eq!(
            close(Some(4000), "revoked").bytes(),
            b"\x88\x09\x0f\xa0revoked"
        );
        let long = close(Some(1000), &"x".repeat(200));
        assert_eq!(long.bytes().len(), 127, "the body is capped at 125 bytes");
        assert_eq!(long.bytes()[1], 125);
    }

    #[test]
    fn ping_echoed() {
        let payload = pattern(125);
        let (out, ev) = decode_all(Mode::Binary, &client(true, OP_PING, &payload, MASK));
        assert!(out.is_empty());
        let [Event::Ping(c)] = &ev[..] else {
            panic!("{ev:?}")
        };
        assert_eq!(c.payload(), payload);
        let reply = pong(c.payload());
        assert_eq!(reply.bytes()[..2], [0x8a, 125]);
        assert_eq!(reply.bytes()[2..], payload);
    }

    #[test]
    fn many_frames_in_one_call() {
        let mut input = Vec::new();
        let mut want = Vec::new();
        for n in 0..50 {
            let p = pattern(n * 13);
            input.extend(client(
                true,
                if n % 2 == 0 { OP_BINARY } else { OP_TEXT },
                &p,
                MASK,
            ));
            want.extend(p);
        }
        input.extend(client(true, OP_PONG, b"x", MASK));
        input.extend(bin(b"tail"));
        want.extend_from_slice(b"tail");
        assert_eq!(decode_all(Mode::Binary, &input), (want, vec![Event::Pong]));
    }

    fn mixed_stream() -> (Vec<u8>, Vec<u8>, Vec<Event>) {
        let mut input = bin(&pattern(300));
        input.extend(client(false, OP_TEXT, b"frag-", [1, 2, 3, 4]));
        input.extend(client(true, OP_PING, b"ping!", [9, 8, 7, 6]));
        input.extend(client(false, OP_CONT, &pattern(130), [5, 6, 7, 8]));
        input.extend(client(true, OP_CONT, b"-end", [0xff; 4]));
        input.extend(client(true, OP_BINARY, b"", MASK));
        input.extend(client(true, OP_CLOSE, b"\x03\xe8bye", MASK));
        let mut want = pattern(300);
        want.extend_from_slice(b"frag-");
        want.extend(pattern(130));
        want.extend_from_slice(b"-end");
        (input, want, vec![ping(b"ping!"), Event::Close(Some(1000))])
    }

    #[test]
    fn fragmented_with_interleaved_control() {
        let (input, want, events) = mixed_stream();
        assert_eq!(decode_all(Mode::Binary, &input), (want, events));
    }

    #[test]
    fn split_at_every_byte() {
        let (input, want, events) = mixed_stream();
        for at in 0..=input.len() {
            let got = feed(
                &mut Decoder::new(Mode::Binary),
                &[&input[..at], &input[at..]],
            );
            assert_eq!(got, (want.clone(), events.clone()), "split at {at}");
        }
        // One byte per read: the mask phase carries across partial payload reads.
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(
            feed(&mut Decoder::new(Mode::Binary), &bytes),
            (want, events)
        );
    }

    #[test]
    fn mask_phase_across_reads() {
        let payload = pattern(1000);
        let frame = client(true, OP_BINARY, &payload, [0xde, 0xad, 0xbe, 0xef]);
        for step in [3, 5, 7, 9, 17, 333] {
            let chunks: Vec<&[u8]> = frame.chunks(step).collect();
            assert_eq!(feed(&mut Decoder::new(Mode::Binary), &chunks).0, payload);
        }
    }

    #[test]
    fn output_kept_in_buffer() {
        // The glue may keep undelivered output at the front and read behind it (out == inp).
        let frame = bin(&pattern(5000));
        let mut buf = vec![0u8; 6000];
        let mut dec = Decoder::new(Mode::Binary);
        let (mut o, mut end) = (0, 0);
        for chunk in frame.chunks(777) {
            buf[end..end + chunk.len()].copy_from_slice(chunk);
            let p = dec.decode(&mut buf, o, o, end + chunk.len());
            assert!(p.event.is_none());
            o = p.produced;
            end = o;
        }
        assert_eq!(buf[..o], pattern(5000));
    }

    #[test]
    fn sixteen_mib_through_64k() {
        const LEN: usize = 16 << 20;
        let payload = pattern(LEN);
        let frame = bin(&payload);
        let mut buf = vec![0u8; 64 << 10];
        let mut dec = Decoder::new(Mode::Binary);
        let (mut pos, mut got) = (0, 0);
        while pos < frame.len() {
            let n = buf.len().min(frame.len() - pos);
            buf[..n].copy_from_slice(&frame[pos..pos + n]);
            pos += n;
            let p = dec.decode(&mut buf, 0, 0, n);
            assert!(p.event.is_none() && p.consumed == n);
            assert!(buf[..p.produced] == payload[got..got + p.produced]);
            got += p.produced;
        }
        assert_eq!(got, LEN);
    }

    #[test]
    fn errors() {
        use ProtocolError::*;
        let b = Mode::Binary;
        let mut unmasked = bin(b"abc");
        unmasked[1] &= 0x7f;
        assert_eq!(error_of(b, &unmasked), Unmasked);
        for rsv in [0x40, 0x20, 0x10] {
            let mut f = bin(b"abc");
            f[0] |= rsv;
            assert_eq!(error_of(b, &f), ReservedBits);
        }
        for op in [3, 4, 5, 6, 7, 11, 12, 13, 14, 15] {
            assert_eq!(error_of(b, &client(true, op, b"", MASK)), UnknownOpcode(op));
        }
        for op in [OP_PING, OP_PONG, OP_CLOSE] {
            assert_eq!(
                error_of(b, &client(false, op, b"", MASK)),
                FragmentedControl
            );
            assert_eq!(
                error_of(b, &client(true, op, &[0; 126], MASK)),
                ControlTooLong
            );
        }
        assert_eq!(
            error_of(b, &client(true, OP_CONT, b"x", MASK)),
            UnexpectedContinuation
        );
        let mut f = client(false, OP_BINARY, b"x", MASK);
        f.extend(client(true, OP_TEXT, b"y", MASK));
        assert_eq!(error_of(b, &f), ExpectedContinuation);
        let mut f = vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0];
        f.extend_from_slice(&MASK);
        assert_eq!(error_of(b, &f), BadLength);
        let close_err = |body: &[u8]| error_of(b, &client(true, OP_CLOSE, body, MASK));
        assert_eq!(close_err(b"\x03"), BadClosePayload);
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            assert_eq!(close_err(&code.to_be_bytes()), BadClosePayload, "{code}");
        }
        assert_eq!(close_err(b"\x03\xe8\xff\xfe"), BadCloseReason);
        for code in [1000u16, 1003, 1007, 1011, 3000, 4999] {
            let ev = decode_all(b, &client(true, OP_CLOSE, &code.to_be_bytes(), MASK)).1;
            assert_eq!(ev, [Event::Close(Some(code))]);
        }
        let ev = decode_all(b, &client(true, OP_CLOSE, b"", MASK)).1;
        assert_eq!(ev, [Event::Close(None)]);
        let z = Mode::Base64;
        assert_eq!(error_of(z, &bin(b"QUJD")), BinaryInBase64);
        assert_eq!(
            error_of(z, &client(true, OP_TEXT, b"QU!D", MASK)),
            BadBase64
        );
        assert_eq!(
            error_of(z, &client(true, OP_TEXT, b"QUJDR", MASK)),
            BadBase64
        );
        assert_eq!(
            error_of(z, &client(true, OP_TEXT, b"QQ==QQ==", MASK)),
            BadBase64
        );
        assert_eq!(
            error_of(z, &client(true, OP_TEXT, b"Q===", MASK)),
            BadBase64
        );
        let codes =
            [Unmasked, BadBase64, BadCloseReason, BinaryInBase64].map(ProtocolError::close_code);
        assert_eq!(codes, [1002, 1007, 1007, 1003]);
        assert_eq!(
            UnknownOpcode(3).to_string(),
            "client frame has unknown opcode 3"
        );
    }

    /// Every code IANA registers for an endpoint to send is accepted and echoed,
    /// including the late additions 1012 (service restart), 1013 (try again later) and
    /// 1014 (bad gateway).
    #[test]
    fn registered_close_codes_are_valid() {
        for code in (1000u16..=1003)
            .chain(1007..=1014)
            .chain([3000, 3999, 4000, 4999])
        {
            let (_, ev) = decode_all(
                Mode::Binary,
                &client(true, OP_CLOSE, &code.to_be_bytes(), MASK),
            );
            assert_eq!(ev, [Event::Close(Some(code))], "close code {code}");
        }
    }

    #[test]
    fn dead_after_error() {
        let mut dec = Decoder::new(Mode::Binary);
        let mut f = client(true, 3, b"", MASK);
        let p = dec.decode(&mut f, 0, 0, 6);
        assert_eq!(p.event, Some(Event::Error(ProtocolError::UnknownOpcode(3))));
        let mut good = bin(b"abc");
        let p = dec.decode(&mut good, 0, 0, 9);
        assert_eq!(p.event, Some(Event::Error(ProtocolError::UnknownOpcode(3))));
        // Bogus indices are clamped, not trusted.
        let p = Decoder::new(Mode::Binary).decode(&mut good, 50, 40, 100);
        assert_eq!((p.consumed, p.produced, p.event), (9, 9, None));
    }

    #[test]
    fn base64_messages() {
        // "QUJD" "REVG" split inside quanta across fragments, and padding.
        let mut input = client(false, OP_TEXT, b"QU", MASK);
        input.extend(client(true, OP_PING, b"", MASK));
        input.extend(client(false, OP_CONT, b"JDR", [1, 2, 3, 4]));
        input.extend(client(true, OP_CONT, b"EVGSA==", [4, 3, 2, 1]));
        input.extend(client(true, OP_TEXT, b"SGk=", MASK));
        input.extend(client(true, OP_TEXT, b"", MASK));
        let want = (b"ABCDEFHHi".to_vec(), vec![ping(b"")]);
        assert_eq!(decode_all(Mode::Base64, &input), want);
        for at in 0..=input.len() {
            let got = feed(
                &mut Decoder::new(Mode::Base64),
                &[&input[..at], &input[at..]],
            );
            assert_eq!(got, want, "split at {at}");
        }
        // RFC 4648 3.3: no character outside the alphabet, whitespace included.
        let wrapped = client(true, OP_TEXT, b"QUJD\r\nREVG", MASK);
        assert_eq!(
            decode_all(Mode::Base64, &wrapped).1,
            vec![Event::Error(ProtocolError::BadBase64)]
        );
        // In binary mode the same text frames pass through untouched.
        assert_eq!(
            decode_all(Mode::Binary, &client(true, OP_TEXT, b"SGk=", MASK)).0,
            b"SGk="
        );
    }

    #[test]
    fn framer_binary() {
        let f = Framer::new(Mode::Binary);
        for n in [0, 1, 125, 126, 65535, 65536] {
            let mut buf = vec![0u8; MAX_HEADER + 65536];
            let w = f.read_window(buf.len());
            assert_eq!(w, MAX_HEADER..buf.len());
            buf[w.start..w.start + n].copy_from_slice(&pattern(n));
            let r = f.frame(&mut buf, n);
            assert_eq!(r.end, MAX_HEADER + n);
            let frame = &buf[r];
            assert_eq!(frame[0], 0x82);
            assert_eq!(frame.len(), header_len(n) + n);
            assert_eq!(frame[header_len(n)..], pattern(n));
        }
        assert_eq!(f.frame(&mut [0u8; 20], 11), 0..0);
        assert_eq!(f.read_window(4), 4..4);
        assert_eq!(f.frame(&mut [0u8; 4], 0), 0..0);
    }

    #[test]
    fn framer_base64_round_trip() {
        let f = Framer::new(Mode::Base64);
        for cap in [10, 17, 100, 4096, 65536] {
            let w = f.read_window(cap);
            assert!(MAX_HEADER + w.len().div_ceil(3) * 4 <= w.start, "{cap}");
            for n in [0, 1, 2, 3, w.len().saturating_sub(1), w.len()].map(|n| n.min(w.len())) {
                let mut buf = vec![0xaa; cap];
                buf[w.start..w.start + n].copy_from_slice(&pattern(n));
                let r = f.frame(&mut buf, n);
                let text = STANDARD.encode(pattern(n));
                let frame = &buf[r];
                assert_eq!(frame[0], 0x81);
                assert_eq!(frame[header_len(text.len())..], *text.as_bytes());
                // And back through the decoder as a client would send it.
                let (out, ev) =
                    decode_all(Mode::Base64, &client(true, OP_TEXT, text.as_bytes(), MASK));
                assert_eq!((out, ev), (pattern(n), vec![]));
            }
        }
    }

    /// Random streams of fragmented messages with pings interleaved, split at random.
    fn random_streams(mode: Mode, seed: u64) {
        let mut rng = XorShift(seed);
        for round in 0..200 {
            let (mut input, mut want, mut pings) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..rng.below(8) + 1 {
                let len = match rng.below(10) {
                    0 => rng.below(200_000),
                    1..=3 => rng.below(300),
                    _ => rng.below(20),
                };
                let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                let wire = match mode {
                    Mode::Binary => data.clone(),
                    Mode::Base64 => STANDARD.encode(&data).into_bytes(),
                };
                want.extend(data);
                let mut rest = &wire[..];
                let mut opcode = if mode == Mode::Base64 || rng.below(2) == 0 {
                    OP_TEXT
                } else {
                    OP_BINARY
                };
                loop {
                    let take = rng.below(rest.len() + 1);
                    let fin = take == rest.len() && rng.below(3) != 0;
                    let mask = (rng.next() as u32).to_ne_bytes();
                    input.extend(client(fin, opcode, &rest[..take], mask));
                    rest = &rest[take..];
                    opcode = OP_CONT;
                    if rng.below(4) == 0 {
                        let p: Vec<u8> = (0..rng.below(126)).map(|_| rng.next() as u8).collect();
                        input.extend(client(true, OP_PING, &p, mask));
                        pings.push(ping(&p));
                    }
                    if fin {
                        break;
                    }
                }
            }
            let mut chunks = Vec::new();
            let mut rest = &input[..];
            while !rest.is_empty() {
                let max = if rng.below(2) == 0 { 20 } else { 70_000 };
                let n = 1 + rng.below(rest.len().min(max));
                chunks.push(&rest[..n]);
                rest = &rest[n..];
            }
            let (out, events) = feed(&mut Decoder::new(mode), &chunks);
            let diff = out.iter().zip(&want).position(|(a, b)| a != b);
            assert_eq!((out.len(), diff), (want.len(), None), "round {round}");
            assert_eq!(events, pings, "round {round}");
        }
    }

    #[test]
    fn randomized_binary() {
        random_streams(Mode::Binary, 0x9e37_79b9_7f4a_7c15);
    }

    #[test]
    fn randomized_base64() {
        random_streams(Mode::Base64, 0xdead_beef_cafe_f00d);
    }
}
