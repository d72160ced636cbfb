//! WebSocket pieces shared by the load client and the WebSocket target: SHA-1/base64 for
//! the handshake, a frame reader that unmasks word-wise in its own buffer, and framing.

use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;

pub const OP_BINARY: u8 = 2;
pub const OP_CLOSE: u8 = 8;
pub const OP_PING: u8 = 9;
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

pub fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([
                block[4 * i],
                block[4 * i + 1],
                block[4 * i + 2],
                block[4 * i + 3],
            ]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

pub fn base64(data: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

pub fn accept_key(key: &str) -> String {
    let mut v = key.as_bytes().to_vec();
    v.extend_from_slice(GUID);
    base64(&sha1(&v))
}

/// XORs `buf` with `mask` starting at mask byte `phase`, eight bytes at a time.
pub fn xor_mask(buf: &mut [u8], mask: [u8; 4], phase: usize) {
    let m = [
        mask[phase & 3],
        mask[(phase + 1) & 3],
        mask[(phase + 2) & 3],
        mask[(phase + 3) & 3],
    ];
    let m32 = u32::from_ne_bytes(m) as u64;
    let m64 = m32 | m32 << 32;
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes(c.try_into().unwrap()) ^ m64;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= m[i & 3];
    }
}

/// Writes a frame header (no mask) into `out`, returns its length.
pub fn header(out: &mut [u8; 14], opcode: u8, len: usize, mask: Option<[u8; 4]>) -> usize {
    out[0] = 0x80 | opcode;
    let mbit = if mask.is_some() { 0x80 } else { 0 };
    let mut n = if len < 126 {
        out[1] = mbit | len as u8;
        2
    } else if len < 65536 {
        out[1] = mbit | 126;
        out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        out[1] = mbit | 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    if let Some(m) = mask {
        out[n..n + 4].copy_from_slice(&m);
        n += 4;
    }
    n
}

/// A byte source the target logic reads from: raw TCP or the payload of WebSocket frames.
/// `f` sees the bytes in place (no copy beyond the socket read).
pub trait ByteIn: Send {
    fn read_with(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<usize>;

    fn read_exact_into(&mut self, out: &mut [u8]) -> io::Result<()> {
        let mut got = 0;
        while got < out.len() {
            let want = out.len() - got;
            let n = self.read_with(want, &mut |d| {
                out[got..got + d.len()].copy_from_slice(d);
                Ok(())
            })?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "eof"));
            }
            got += n;
        }
        Ok(())
    }
}

/// A byte sink: raw TCP or one WebSocket frame per call.
pub trait ByteOut: Send {
    fn send(&mut self, data: &[u8]) -> io::Result<()>;
}

pub struct RawIn {
    pub s: TcpStream,
    buf: Vec<u8>,
}

impl RawIn {
    pub fn new(s: TcpStream) -> Self {
        RawIn {
            s,
            buf: vec![0; 128 * 1024],
        }
    }
}

impl ByteIn for RawIn {
    fn read_with(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<usize> {
        let m = max.min(self.buf.len());
        let n = loop {
            match self.s.read(&mut self.buf[..m]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r?,
            }
        };
        if n > 0 {
            f(&self.buf[..n])?;
        }
        Ok(n)
    }
}

pub struct RawOut(pub TcpStream);

impl ByteOut for RawOut {
    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.write_all(data)
    }
}

/// Reads frames from a socket; payload is unmasked in the buffer (word-wise) and handed
/// out as a byte stream. Close ends the stream; pings are ignored (no peer here sends any
/// during a measurement).
pub struct FrameReader {
    s: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Payload bytes left in the current frame and its mask state.
    left: u64,
    mask: Option<[u8; 4]>,
    phase: usize,
    control: bool,
    closed: bool,
}

impl FrameReader {
    pub fn new(s: TcpStream, leftover: &[u8]) -> Self {
        let mut buf = vec![0; 256 * 1024];
        buf[..leftover.len()].copy_from_slice(leftover);
        FrameReader {
            s,
            buf,
            start: 0,
            end: leftover.len(),
            left: 0,
            mask: None,
            phase: 0,
            control: false,
            closed: false,
        }
    }

    fn fill(&mut self) -> io::Result<bool> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            match self.s.read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Parses a frame header from the buffer: None when it is not all there yet,
    /// Some(false) on a close frame.
    fn try_header(&mut self) -> io::Result<Option<bool>> {
        let avail = &self.buf[self.start..self.end];
        if avail.len() < 2 {
            return Ok(None);
        }
        let b0 = avail[0];
        let b1 = avail[1];
        let l7 = (b1 & 0x7f) as usize;
        let need = 2
            + if b1 & 0x80 != 0 { 4 } else { 0 }
            + match l7 {
                126 => 2,
                127 => 8,
                _ => 0,
            };
        if avail.len() < need {
            return Ok(None);
        }
        let (len, mut off) = match l7 {
            126 => (u16::from_be_bytes([avail[2], avail[3]]) as u64, 4),
            127 => (u64::from_be_bytes(avail[2..10].try_into().unwrap()), 10),
            n => (n as u64, 2),
        };
        self.mask = if b1 & 0x80 != 0 {
            let m = [avail[off], avail[off + 1], avail[off + 2], avail[off + 3]];
            off += 4;
            Some(m)
        } else {
            None
        };
        let op = b0 & 0x0f;
        self.start += off;
        self.left = len;
        self.phase = 0;
        self.control = op >= 8;
        if op == OP_CLOSE {
            self.closed = true;
            return Ok(Some(false));
        }
        if !(op <= OP_BINARY || op == OP_PING || op == 10) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad opcode {op}"),
            ));
        }
        Ok(Some(true))
    }
}

impl ByteIn for FrameReader {
    /// Hands out the payload of every frame already buffered in one slice: payloads are
    /// unmasked and moved down over the headers in place (as a server relay would), so
    /// small frames cost no call each.
    fn read_with(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<usize> {
        loop {
            if self.closed {
                return Ok(0);
            }
            let o0 = self.start;
            let mut o = o0;
            while o - o0 < max {
                if self.left == 0 {
                    match self.try_header()? {
                        Some(true) => {}
                        _ => break,
                    }
                    if self.left == 0 {
                        continue;
                    }
                }
                let avail = self.end - self.start;
                if avail == 0 {
                    break;
                }
                let k = (self.left.min(avail as u64) as usize).min(max - (o - o0));
                let (a, b) = (self.start, self.start + k);
                if let Some(m) = self.mask {
                    xor_mask(&mut self.buf[a..b], m, self.phase);
                    self.phase = (self.phase + k) & 3;
                }
                self.start = b;
                self.left -= k as u64;
                if self.control {
                    continue; // ping/pong payload: not data
                }
                if o != a {
                    self.buf.copy_within(a..b, o);
                }
                o += k;
            }
            if o > o0 {
                f(&self.buf[o0..o])?;
                return Ok(o - o0);
            }
            if self.closed || !self.fill()? {
                return Ok(0);
            }
        }
    }
}

/// Server side of the WebSocket target: each send is one unmasked binary frame.
pub struct FrameWriter(pub TcpStream);

impl ByteOut for FrameWriter {
    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        let mut h = [0u8; 14];
        let hl = header(&mut h, OP_BINARY, data.len(), None);
        write_all2(&mut self.0, &h[..hl], data)
    }
}

fn write_all2(s: &mut TcpStream, a: &[u8], b: &[u8]) -> io::Result<()> {
    let (mut a, mut b) = (a, b);
    while !a.is_empty() {
        let n = match s.write_vectored(&[IoSlice::new(a), IoSlice::new(b)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n >= a.len() {
            b = &b[n - a.len()..];
            a = &[];
        } else {
            a = &a[n..];
        }
    }
    s.write_all(b)
}

/// Client side: masked binary frames with a fresh random mask each, like a browser.
pub struct MaskedWriter {
    pub s: TcpStream,
    rng: u64,
    buf: Vec<u8>,
}

impl MaskedWriter {
    pub fn new(s: TcpStream, seed: u64) -> Self {
        MaskedWriter {
            s,
            rng: seed | 1,
            buf: Vec::with_capacity(70 * 1024),
        }
    }

    fn mask(&mut self) -> [u8; 4] {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng as u32).to_ne_bytes()
    }

    pub fn frame(&mut self, opcode: u8, data: &[u8]) -> io::Result<()> {
        let m = self.mask();
        let mut h = [0u8; 14];
        let hl = header(&mut h, opcode, data.len(), Some(m));
        self.buf.clear();
        self.buf.extend_from_slice(&h[..hl]);
        self.buf.extend_from_slice(data);
        xor_mask(&mut self.buf[hl..], m, 0);
        self.s.write_all(&self.buf)
    }

    pub fn close(&mut self) {
        let _ = self.frame(OP_CLOSE, &1000u16.to_be_bytes());
    }
}

impl ByteOut for MaskedWriter {
    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.frame(OP_BINARY, data)
    }
}

/// Reads an HTTP head (up to the blank line); returns it and any bytes read past it.
pub fn read_head(s: &mut TcpStream) -> io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut tmp = [0u8; 4096];
    loop {
        let n = s.read(&mut tmp)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "eof in HTTP head",
            ));
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..p]).into_owned();
            return Ok((head, buf[p + 4..].to_vec()));
        }
        if buf.len() > 64 * 1024 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "HTTP head too long",
            ));
        }
    }
}

pub fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}
