//! wsbench: the load client and the target programs of `scripts/bench`.
//!
//!   wsbench target --raw ADDR --ws ADDR     raw TCP targets and a WebSocket target
//!   wsbench run [options]                   starts the peers and the target, measures,
//!                                           prints the table, writes JSON
//!
//! Every connection begins with a 40-byte request (sent through the peer like any other
//! payload) telling the target what to do: sink (verify N bytes, then ack), source (send
//! N bytes), echo, hold (echo once, then keep the connection parked), release (drop parked
//! connections). Data is a seeded pseudo-random stream, checked byte for byte.

mod ws;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};
use std::{env, fs, thread};

use ws::{ByteIn, ByteOut, FrameReader, FrameWriter, MaskedWriter, RawIn, RawOut};

// ---------------------------------------------------------------- data pattern

const PERIOD: usize = 1_048_573; // prime: never lines up with message sizes
const EXTRA: usize = 256 * 1024; // longest slice handed out at once

struct Pattern(Vec<u8>);

impl Pattern {
    fn new(seed: u64) -> Self {
        let mut x = seed | 1;
        let mut d = Vec::with_capacity(PERIOD + EXTRA + 8);
        while d.len() < PERIOD {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            d.extend_from_slice(&x.wrapping_mul(0x2545F4914F6CDD1D).to_le_bytes());
        }
        d.truncate(PERIOD);
        d.extend_from_within(..EXTRA);
        Pattern(d)
    }

    fn at(&self, pos: u64, n: usize) -> &[u8] {
        let o = (pos % PERIOD as u64) as usize;
        &self.0[o..o + n]
    }
}

fn pattern(seed: u64) -> Arc<Pattern> {
    static CACHE: OnceLock<Mutex<HashMap<u64, Arc<Pattern>>>> = OnceLock::new();
    let mut c = CACHE.get_or_init(Default::default).lock().unwrap();
    c.entry(seed)
        .or_insert_with(|| Arc::new(Pattern::new(seed)))
        .clone()
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Checks a stream of slices against the pattern.
struct Verifier {
    p: Arc<Pattern>,
    pos: u64,
}

impl Verifier {
    fn check(&mut self, d: &[u8]) -> io::Result<()> {
        if d != self.p.at(self.pos, d.len()) {
            let i = d
                .iter()
                .zip(self.p.at(self.pos, d.len()))
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Err(bad(format!(
                "data mismatch at byte {}",
                self.pos + i as u64
            )));
        }
        self.pos += d.len() as u64;
        Ok(())
    }
}

// ---------------------------------------------------------------- request header

const MAGIC: u32 = 0x5753_4231; // "WSB1"
const SINK: u32 = 1;
const SOURCE: u32 = 2;
const ECHO: u32 = 3;
const HOLD: u32 = 4;
const RELEASE: u32 = 5;
const REQ_LEN: usize = 40;

#[derive(Clone, Copy)]
struct Req {
    mode: u32,
    seed: u64,
    offset: u64,
    total: u64,
    chunk: u32,
}

impl Req {
    fn encode(&self) -> [u8; REQ_LEN] {
        let mut b = [0u8; REQ_LEN];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&self.mode.to_le_bytes());
        b[8..16].copy_from_slice(&self.seed.to_le_bytes());
        b[16..24].copy_from_slice(&self.offset.to_le_bytes());
        b[24..32].copy_from_slice(&self.total.to_le_bytes());
        b[32..36].copy_from_slice(&self.chunk.to_le_bytes());
        b
    }

    fn decode(b: &[u8; REQ_LEN]) -> io::Result<Req> {
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
        if u32_at(0) != MAGIC {
            return Err(bad("bad request magic"));
        }
        Ok(Req {
            mode: u32_at(4),
            seed: u64_at(8),
            offset: u64_at(16),
            total: u64_at(24),
            chunk: u32_at(32),
        })
    }
}

// ---------------------------------------------------------------- targets

static PARKED: Mutex<Vec<TcpStream>> = Mutex::new(Vec::new());

/// What a target listener speaks before the bench's request.
#[derive(Clone, Copy)]
enum Speaks {
    Raw,
    Ws,
    /// A VNC server's handshake with security None (the module logs in, then relays).
    Rfb,
}

fn target_main(raw: &str, wsaddr: &str, rfb: &str) -> io::Result<()> {
    let lr = TcpListener::bind(raw)?;
    let lw = TcpListener::bind(wsaddr)?;
    let lf = TcpListener::bind(rfb)?;
    let t = thread::spawn(move || accept_loop(lw, Speaks::Ws));
    let f = thread::spawn(move || accept_loop(lf, Speaks::Rfb));
    accept_loop(lr, Speaks::Raw);
    let _ = t.join();
    let _ = f.join();
    Ok(())
}

fn accept_loop(l: TcpListener, speaks: Speaks) {
    for s in l.incoming() {
        let Ok(s) = s else { continue };
        let _ = thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || {
                if let Err(e) = handle(s, speaks) {
                    if e.kind() != io::ErrorKind::ConnectionReset
                        && e.kind() != io::ErrorKind::BrokenPipe
                    {
                        eprintln!("target: {e}");
                    }
                }
            });
    }
}

fn handle(mut s: TcpStream, speaks: Speaks) -> io::Result<()> {
    s.set_nodelay(true)?;
    let keep = s.try_clone()?;
    if let Speaks::Rfb = speaks {
        // RFC 6143: version, security None, SecurityResult, ClientInit, ServerInit.
        s.write_all(b"RFB 003.008\n\x01\x01")?;
        let mut b = [0u8; 12];
        s.read_exact(&mut b)?;
        s.read_exact(&mut b[..1])?;
        s.write_all(&[0, 0, 0, 0])?;
        s.read_exact(&mut b[..1])?;
        let mut init = vec![0u8; 24];
        init[..4].copy_from_slice(&[4, 0, 3, 0]);
        init[20..24].copy_from_slice(&5u32.to_be_bytes());
        init.extend_from_slice(b"bench");
        s.write_all(&init)?;
    }
    if let Speaks::Ws = speaks {
        let (head, left) = ws::read_head(&mut s)?;
        let key = ws::header_value(&head, "Sec-WebSocket-Key").ok_or_else(|| bad("no key"))?;
        let resp = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            ws::accept_key(key)
        );
        s.write_all(resp.as_bytes())?;
        serve(
            FrameReader::new(s.try_clone()?, &left),
            FrameWriter(s),
            keep,
        )
    } else {
        serve(RawIn::new(s.try_clone()?), RawOut(s), keep)
    }
}

fn serve(mut inp: impl ByteIn, mut out: impl ByteOut, keep: TcpStream) -> io::Result<()> {
    let mut hb = [0u8; REQ_LEN];
    inp.read_exact_into(&mut hb)?;
    let req = Req::decode(&hb)?;
    match req.mode {
        SINK => {
            let mut v = Verifier {
                p: pattern(req.seed),
                pos: req.offset,
            };
            let mut left = req.total;
            let mut ok = true;
            while left > 0 {
                let n = inp.read_with(left.min(1 << 20) as usize, &mut |d| {
                    if ok && v.check(d).is_err() {
                        ok = false;
                    }
                    Ok(())
                })?;
                if n == 0 {
                    return Err(bad("sink: early end of stream"));
                }
                left -= n as u64;
            }
            out.send(if ok { b"SINK-OK!" } else { b"SINK-BAD" })?;
            drain(&mut inp)
        }
        SOURCE => {
            let p = pattern(req.seed);
            let (mut pos, end) = (req.offset, req.offset + req.total);
            let chunk = (req.chunk as u64).clamp(1, EXTRA as u64);
            while pos < end {
                let n = chunk.min(end - pos) as usize;
                out.send(p.at(pos, n))?;
                pos += n as u64;
            }
            drain(&mut inp)
        }
        ECHO => loop {
            if inp.read_with(usize::MAX, &mut |d| out.send(d))? == 0 {
                return Ok(());
            }
        },
        HOLD => {
            let mut left = req.total;
            while left > 0 {
                let n = inp.read_with(left as usize, &mut |d| out.send(d))?;
                if n == 0 {
                    return Ok(());
                }
                left -= n as u64;
            }
            PARKED.lock().unwrap().push(keep);
            Ok(())
        }
        RELEASE => {
            let n = std::mem::take(&mut *PARKED.lock().unwrap()).len();
            out.send(&(n as u64).to_le_bytes())
        }
        m => Err(bad(format!("unknown mode {m}"))),
    }
}

fn drain(inp: &mut impl ByteIn) -> io::Result<()> {
    while inp.read_with(usize::MAX, &mut |_| Ok(()))? > 0 {}
    Ok(())
}

// ---------------------------------------------------------------- client

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
}

static RNG: Mutex<Rng> = Mutex::new(Rng(0));

fn rand() -> u64 {
    RNG.lock().unwrap().next()
}

#[derive(Clone)]
struct Endpoint {
    port: u16,
    path: &'static str,
    /// The module logs in to the target: the client speaks the browser's RFB half first.
    rfb: bool,
}

struct Conn {
    rd: FrameReader,
    wr: MaskedWriter,
}

const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The upgraded connection, and what the server sent right behind its 101 (the gateway's
/// RFB greeting may come in the same segment).
fn open(ep: &Endpoint) -> io::Result<(TcpStream, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", ep.port))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    let key = ws::base64(&[rand().to_le_bytes(), rand().to_le_bytes()].concat());
    // What a browser (noVNC) sends: no subprotocol.
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1\r\n\r\n",
        ep.path, ep.port
    );
    s.write_all(req.as_bytes())?;
    let (head, left) = ws::read_head(&mut s)?;
    let status = head.lines().next().unwrap_or("");
    if !status.contains(" 101") {
        return Err(bad(format!("handshake: {status}")));
    }
    if ws::header_value(&head, "Sec-WebSocket-Accept") != Some(ws::accept_key(&key).as_str()) {
        return Err(bad("handshake: wrong Sec-WebSocket-Accept"));
    }
    if !left.is_empty() && !ep.rfb {
        return Err(bad("handshake: data before the request"));
    }
    Ok((s, left))
}

fn connect(ep: &Endpoint) -> io::Result<Conn> {
    let (s, left) = open(ep)?;
    let mut c = Conn {
        rd: FrameReader::new(s.try_clone()?, &left),
        wr: MaskedWriter::new(s, rand()),
    };
    if ep.rfb {
        greet_gateway(&mut c)?;
    }
    Ok(c)
}

/// What noVNC does with the gateway: version, None, OK, ClientInit, ServerInit.
fn greet_gateway(c: &mut Conn) -> io::Result<()> {
    let mut b = [0u8; 12];
    c.rd.read_exact_into(&mut b)?;
    if &b != b"RFB 003.008\n" {
        return Err(bad("rfb: not the gateway's greeting"));
    }
    c.wr.send(b"RFB 003.008\n")?;
    c.rd.read_exact_into(&mut b[..2])?;
    if b[..2] != [1, 1] {
        return Err(bad("rfb: the gateway offers more than None"));
    }
    c.wr.send(&[1])?;
    c.rd.read_exact_into(&mut b[..4])?;
    c.wr.send(&[1])?;
    let mut init = [0u8; 29];
    c.rd.read_exact_into(&mut init)?;
    if &init[24..] != b"bench" {
        return Err(bad("rfb: no ServerInit"));
    }
    Ok(())
}

fn read_verified(rd: &mut FrameReader, v: &mut Verifier, total: u64) -> io::Result<()> {
    let mut left = total;
    while left > 0 {
        let n = rd
            .read_with(left.min(EXTRA as u64) as usize, &mut |d| v.check(d))
            .map_err(|e| {
                if e.kind() == io::ErrorKind::WouldBlock {
                    bad(format!(
                        "no data for {}s with {left} bytes to go",
                        IO_TIMEOUT.as_secs()
                    ))
                } else {
                    e
                }
            })?;
        if n == 0 {
            return Err(bad(format!("stream ended {left} bytes early")));
        }
        left -= n as u64;
    }
    Ok(())
}

fn send_pattern(
    wr: &mut MaskedWriter,
    p: &Pattern,
    offset: u64,
    total: u64,
    msg: usize,
) -> io::Result<()> {
    let mut pos = offset;
    let end = offset + total;
    while pos < end {
        let n = (msg as u64).min(end - pos) as usize;
        wr.send(p.at(pos, n))?;
        pos += n as u64;
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Dir {
    Up,
    Down,
    Echo,
}

/// One connection's share of a throughput test.
fn transfer(mut c: Conn, dir: Dir, total: u64, msg: usize, seed: u64) -> io::Result<()> {
    let p = pattern(seed);
    let offset = rand() % PERIOD as u64;
    let mode = match dir {
        Dir::Up => SINK,
        Dir::Down => SOURCE,
        Dir::Echo => ECHO,
    };
    c.wr.send(
        &Req {
            mode,
            seed,
            offset,
            total,
            chunk: msg as u32,
        }
        .encode(),
    )?;
    match dir {
        Dir::Up => {
            send_pattern(&mut c.wr, &p, offset, total, msg)?;
            let mut ack = [0u8; 8];
            c.rd.read_exact_into(&mut ack)?;
            if &ack != b"SINK-OK!" {
                return Err(bad("target saw wrong data"));
            }
        }
        Dir::Down => read_verified(&mut c.rd, &mut Verifier { p, pos: offset }, total)?,
        Dir::Echo => {
            let mut wr = c.wr;
            let p2 = p.clone();
            let w = thread::spawn(move || -> io::Result<MaskedWriter> {
                send_pattern(&mut wr, &p2, offset, total, msg)?;
                Ok(wr)
            });
            let r = read_verified(&mut c.rd, &mut Verifier { p, pos: offset }, total);
            c.wr = w.join().map_err(|_| bad("writer panicked"))??;
            r?;
        }
    }
    c.wr.close();
    Ok(())
}

/// Bytes in the module's recordings (deleted): a recorded row must leave files behind.
fn recorded_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name();
        if name.to_string_lossy().starts_with("rec-") {
            total += e.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = fs::remove_file(e.path());
        }
    }
    total
}

/// MiB/s over all connections, from a common start to the last finish.
fn throughput(ep: &Endpoint, dir: Dir, conns: usize, per_conn: u64, msg: usize) -> io::Result<f64> {
    let seed = rand();
    let cs = (0..conns)
        .map(|_| connect(ep))
        .collect::<io::Result<Vec<_>>>()?;
    let bar = Arc::new(Barrier::new(conns + 1));
    let hs: Vec<_> = cs
        .into_iter()
        .map(|c| {
            let bar = bar.clone();
            thread::spawn(move || {
                bar.wait();
                transfer(c, dir, per_conn, msg, seed).map(|_| Instant::now())
            })
        })
        .collect();
    bar.wait();
    let t0 = Instant::now();
    let mut end = t0;
    let mut err = None;
    for h in hs {
        match h
            .join()
            .map_err(|_| bad("client thread panicked"))
            .and_then(|r| r)
        {
            Ok(t) => end = end.max(t),
            Err(e) => err = Some(e),
        }
    }
    if let Some(e) = err {
        return Err(e);
    }
    let secs = (end - t0).as_secs_f64();
    Ok((per_conn * conns as u64) as f64 / (1024.0 * 1024.0) / secs)
}

/// 64-byte echo round trips; returns (p50, p99) in microseconds.
fn latency(ep: &Endpoint, n: usize) -> io::Result<(f64, f64)> {
    let mut c = connect(ep)?;
    let seed = rand();
    let p = pattern(seed);
    let offset = rand() % PERIOD as u64;
    c.wr.send(
        &Req {
            mode: ECHO,
            seed,
            offset,
            total: 0,
            chunk: 0,
        }
        .encode(),
    )?;
    let mut v = Verifier {
        p: p.clone(),
        pos: offset,
    };
    let mut pos = offset;
    let warm = n / 10 + 50;
    let mut rtts = Vec::with_capacity(n);
    for i in 0..warm + n {
        let t = Instant::now();
        c.wr.send(p.at(pos, 64))?;
        read_verified(&mut c.rd, &mut v, 64)?;
        if i >= warm {
            rtts.push(t.elapsed().as_secs_f64() * 1e6);
        }
        pos += 64;
    }
    c.wr.close();
    rtts.sort_by(|a, b| a.total_cmp(b));
    let q = |f: f64| rtts[((rtts.len() as f64 * f) as usize).min(rtts.len() - 1)];
    Ok((q(0.50), q(0.99)))
}

/// Opens idle sessions, each proven alive by one 64-byte echo, and measures the peer's
/// memory at each checkpoint. Returns (held, [KB per session at each checkpoint]).
fn hold(
    ep: &Endpoint,
    peer: &Running,
    points: &[usize],
) -> (usize, Vec<Option<f64>>, Option<String>) {
    let max = *points.iter().max().unwrap_or(&0);
    let mut held: Vec<TcpStream> = Vec::with_capacity(max);
    let mut base = 0.0;
    let mut out = vec![None; points.len()];
    let mut err = None;
    let seed = rand();
    let p = pattern(seed);
    for i in 1..=max {
        let r = (|| -> io::Result<TcpStream> {
            let mut c = connect(ep)?;
            let offset = rand() % PERIOD as u64;
            c.wr.send(
                &Req {
                    mode: HOLD,
                    seed,
                    offset,
                    total: 64,
                    chunk: 0,
                }
                .encode(),
            )?;
            c.wr.send(p.at(offset, 64))?;
            read_verified(
                &mut c.rd,
                &mut Verifier {
                    p: p.clone(),
                    pos: offset,
                },
                64,
            )?;
            Ok(c.wr.s)
        })();
        match r {
            Ok(s) => held.push(s),
            Err(e) => {
                err = Some(format!("session {i}: {e}"));
                break;
            }
        }
        if i == 1 {
            thread::sleep(Duration::from_millis(300));
            base = peer.memory_kb();
        }
        if let Some(k) = points.iter().position(|&pt| pt == i) {
            thread::sleep(Duration::from_millis(500));
            out[k] = Some((peer.memory_kb() - base) * 1.024 / (i - 1) as f64); // KiB -> kB
        }
    }
    (held.len(), out, err)
}

/// kB per idle session through the module's recorded server, its recordings then deleted.
fn hold_recorded(cfg: &Cfg, peer: &Running, points: &[usize]) -> io::Result<f64> {
    let ep = Endpoint {
        port: cfg.record_port(),
        path: "/websockify",
        rfb: false,
    };
    let t = Instant::now();
    let (held, per, err) = hold(&ep, peer, points);
    let files = recorded_bytes(&cfg.work.join(Kind::Module.name()).join("rec"));
    eprintln!(
        "  {:<34} {:<10} {held} held in {:.1}s, kB/session {}, {files} bytes in recordings",
        "idle recorded sessions",
        Kind::Module.name(),
        t.elapsed().as_secs_f64(),
        per.first()
            .copied()
            .flatten()
            .map(|x| format!("{x:.2}"))
            .unwrap_or("-".into())
    );
    if let Some(e) = err {
        return Err(bad(e));
    }
    per.first()
        .copied()
        .flatten()
        .ok_or_else(|| bad("no sessions held"))
}

fn release_target(port: u16) {
    let r = (|| -> io::Result<()> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.write_all(
            &Req {
                mode: RELEASE,
                seed: 0,
                offset: 0,
                total: 0,
                chunk: 0,
            }
            .encode(),
        )?;
        let mut b = [0u8; 8];
        s.read_exact(&mut b)
    })();
    if let Err(e) = r {
        eprintln!("release: {e}");
    }
}

// ---------------------------------------------------------------- peers

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Module,
    Ceiling,
    Websockify,
    Websocat,
    /// The module with a `websockify_zone` recording every session: the zone's cost.
    Zone,
    /// Not a peer: the TLS server in front of the targets for the "TLS to the target" row
    /// (nginx stream, `listen ... ssl`), shared by the module and the ceiling.
    TlsFront,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Module => "module",
            Kind::Ceiling => "ceiling",
            Kind::Websockify => "websockify",
            Kind::Websocat => "websocat",
            Kind::Zone => "zone",
            Kind::TlsFront => "tls-front",
        }
    }

    /// Peers that can reach the targets over TLS (websockify_ssl, proxy_ssl).
    fn tls(self) -> bool {
        matches!(self, Kind::Module | Kind::Ceiling)
    }
}

/// The TLS front's certificate and key, when the TLS row runs.
struct Tls {
    cert: PathBuf,
    key: PathBuf,
}

struct Cfg {
    nginx: String,
    module: String,
    stream_module: String,
    websockify: String,
    websocat: String,
    work: PathBuf,
    base: u16,
    buffer: usize,
    nofile: usize,
    tls: Option<Tls>,
}

impl Cfg {
    fn raw_port(&self) -> u16 {
        self.base
    }
    fn ws_port(&self) -> u16 {
        self.base + 1
    }
    /// The TLS front: TLS in, plain out to the raw and to the WebSocket target.
    fn front_raw_port(&self) -> u16 {
        self.base + 2
    }
    fn front_ws_port(&self) -> u16 {
        self.base + 3
    }
    fn port(&self, k: Kind) -> u16 {
        match k {
            Kind::TlsFront => self.front_raw_port(),
            _ => self.base + 10 + k as u16,
        }
    }
    /// The target's RFB listener, and the module's server that logs in to it.
    fn rfb_target_port(&self) -> u16 {
        self.base + 20
    }
    fn rfb_port(&self) -> u16 {
        self.base + 21
    }
    /// The module's server that records every session (`websockify_record`).
    fn record_port(&self) -> u16 {
        self.base + 22
    }
    /// Where a TLS-capable peer (module, ceiling) relays to the targets over TLS.
    fn tls_port(&self, k: Kind) -> u16 {
        self.base + 4 + k as u16
    }
}

struct Running {
    kind: Kind,
    child: Child,
}

fn sh_kill(sig: &str, target: &str) {
    let _ = Command::new("kill")
        .args([sig, "--", target])
        .stderr(Stdio::null())
        .status();
}

fn proc_table() -> Vec<(u32, u32)> {
    let mut v = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some(rest) = stat.rsplit_once(')').map(|x| x.1) else {
                continue;
            };
            if let Some(pp) = rest.split_whitespace().nth(1).and_then(|x| x.parse().ok()) {
                v.push((pid, pp));
            }
        }
    }
    v
}

fn status_kb(pid: u32, file: &str, key: &str) -> f64 {
    fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|x| x.parse().ok()))
        })
        .unwrap_or(0.0)
}

impl Running {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// RSS of the nginx worker(s), of websocat; PSS summed over websockify's process tree.
    fn memory_kb(&self) -> f64 {
        let pid = self.pid();
        match self.kind {
            Kind::Module | Kind::Zone | Kind::Ceiling | Kind::TlsFront => proc_table()
                .iter()
                .filter(|(_, pp)| *pp == pid)
                .map(|(p, _)| status_kb(*p, "status", "VmRSS:"))
                .sum(),
            Kind::Websocat => status_kb(pid, "status", "VmRSS:"),
            Kind::Websockify => {
                let t = proc_table();
                let mut tree = vec![pid];
                let mut i = 0;
                while i < tree.len() {
                    let p = tree[i];
                    tree.extend(t.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
                    i += 1;
                }
                tree.iter()
                    .map(|p| status_kb(*p, "smaps_rollup", "Pss:"))
                    .sum()
            }
        }
    }

    fn stop(mut self) {
        let pid = self.pid();
        let workers: Vec<u32> = proc_table()
            .iter()
            .filter(|(_, pp)| *pp == pid)
            .map(|(p, _)| *p)
            .collect();
        match self.kind {
            // Its own process group holds the per-connection children.
            Kind::Websockify => sh_kill("-TERM", &format!("-{pid}")),
            _ => sh_kill("-TERM", &pid.to_string()),
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        if let Ok(None) = self.child.try_wait() {
            sh_kill("-KILL", &pid.to_string());
            let _ = self.child.wait();
        }
        if self.kind == Kind::Websockify {
            sh_kill("-KILL", &format!("-{pid}"));
        }
        // A worker outliving its master would keep the port.
        let t = Instant::now();
        while workers
            .iter()
            .any(|w| Path::new(&format!("/proc/{w}")).exists())
        {
            if t.elapsed() > Duration::from_secs(5) {
                for w in &workers {
                    sh_kill("-KILL", &w.to_string());
                }
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

fn nginx_conf(cfg: &Cfg, k: Kind, dir: &Path) -> String {
    let d = dir.display();
    let wc = cfg.nofile;
    let common = format!(
        "worker_processes 1;\ndaemon off;\nmaster_process on;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         worker_rlimit_nofile {wc};\nevents {{ worker_connections {wc}; }}\n"
    );
    let b = cfg.buffer;
    // The same relay again, to the targets through the TLS front.
    let tls_server = match (k, &cfg.tls) {
        (Kind::Module, Some(_)) => format!(
            "  server {{\n    listen 127.0.0.1:{};\n    location /websockify {{\n      websockify_pass 127.0.0.1:{};\n      \
             websockify_ssl on;\n      websockify_buffer_size {b};\n    }}\n  }}\n",
            cfg.tls_port(k),
            cfg.front_raw_port()
        ),
        (Kind::Ceiling, Some(_)) => format!(
            "  server {{\n    listen 127.0.0.1:{};\n    proxy_pass 127.0.0.1:{};\n    proxy_ssl on;\n    proxy_buffer_size {b};\n  }}\n",
            cfg.tls_port(k),
            cfg.front_ws_port()
        ),
        _ => String::new(),
    };
    // The same relay again, the module logging in to an RFB target first, and again
    // recording each session to a file in the work directory.
    let (rfb_server, record_server) = if k == Kind::Module {
        let rec = format!(
            "websockify_record {d}/rec/rec-$websockify_session_id.rec;\n      websockify_record_input on;"
        );
        (
            module_server(
                cfg.rfb_port(),
                cfg.rfb_target_port(),
                "websockify_rfb_password \"\";",
                b,
            ),
            module_server(cfg.record_port(), cfg.raw_port(), &rec, b),
        )
    } else {
        (String::new(), String::new())
    };
    match k {
        Kind::Module | Kind::Zone => format!(
            "load_module {};\n{common}http {{\n  access_log off;\n{}  client_body_temp_path {d}/tmp;\n  proxy_temp_path {d}/tmp;\n  \
             fastcgi_temp_path {d}/tmp;\n  uwsgi_temp_path {d}/tmp;\n  scgi_temp_path {d}/tmp;\n  server {{\n    listen 127.0.0.1:{};\n    \
             location /websockify {{\n      websockify_pass 127.0.0.1:{};\n      websockify_buffer_size {b};\n    }}\n  }}\n{tls_server}{rfb_server}{record_server}}}\n",
            cfg.module,
            if k == Kind::Zone {
                "  websockify_zone bench 32m;\n"
            } else {
                ""
            },
            cfg.port(k),
            cfg.raw_port(),
        ),
        Kind::TlsFront => {
            let (cert, key) = cfg
                .tls
                .as_ref()
                .map(|t| (t.cert.display().to_string(), t.key.display().to_string()))
                .unwrap_or_default();
            format!(
                "load_module {};\n{common}stream {{\n  ssl_certificate {cert};\n  ssl_certificate_key {key};\n  \
                 server {{\n    listen 127.0.0.1:{} ssl;\n    proxy_pass 127.0.0.1:{};\n    proxy_buffer_size {b};\n  }}\n  \
                 server {{\n    listen 127.0.0.1:{} ssl;\n    proxy_pass 127.0.0.1:{};\n    proxy_buffer_size {b};\n  }}\n}}\n",
                cfg.stream_module,
                cfg.front_raw_port(),
                cfg.raw_port(),
                cfg.front_ws_port(),
                cfg.ws_port(),
            )
        }
        _ => format!(
            "load_module {};\n{common}stream {{\n  server {{\n    listen 127.0.0.1:{};\n    proxy_pass 127.0.0.1:{};\n    \
             proxy_buffer_size {b};\n  }}\n{tls_server}}}\n",
            cfg.stream_module,
            cfg.port(k),
            cfg.ws_port(),
        ),
    }
}

/// One more server of the module's nginx: a relay to `target` with `extra` directives.
fn module_server(port: u16, target: u16, extra: &str, buffer: usize) -> String {
    format!(
        "  server {{\n    listen 127.0.0.1:{port};\n    location /websockify {{\n      websockify_pass 127.0.0.1:{target};\n      \
         {extra}\n      websockify_buffer_size {buffer};\n    }}\n  }}\n"
    )
}

/// A throwaway certificate for the TLS front (the peers do not verify it), then the front.
fn tls_setup(cfg: &mut Cfg) -> io::Result<Running> {
    let dir = cfg.work.join("tls-front");
    fs::create_dir_all(&dir)?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if !st.success() {
        return Err(bad(format!("openssl req: {st}")));
    }
    cfg.tls = Some(Tls { cert, key });
    start(cfg, Kind::TlsFront).inspect_err(|_| cfg.tls = None)
}

fn wait_port(port: u16, child: &mut Child) -> io::Result<()> {
    let t = Instant::now();
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(st)) = child.try_wait() {
            return Err(bad(format!("exited: {st}")));
        }
        if t.elapsed() > Duration::from_secs(20) {
            return Err(bad(format!("port {port} not listening")));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn start(cfg: &Cfg, k: Kind) -> io::Result<Running> {
    let mut last = None;
    for _ in 0..3 {
        match start_once(cfg, k) {
            Ok(r) => return Ok(r),
            Err(e) => {
                last = Some(e);
                thread::sleep(Duration::from_secs(1));
            }
        }
    }
    Err(last.unwrap())
}

fn start_once(cfg: &Cfg, k: Kind) -> io::Result<Running> {
    let dir = cfg.work.join(k.name());
    fs::create_dir_all(dir.join("tmp"))?;
    // Recordings: written by the workers, which may run as another user than the master.
    let rec = dir.join("rec");
    fs::create_dir_all(&rec)?;
    fs::set_permissions(&rec, std::os::unix::fs::PermissionsExt::from_mode(0o777))?;
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("output.log"))?;
    let port = cfg.port(k);
    let mut cmd = match k {
        Kind::Module | Kind::Zone | Kind::Ceiling | Kind::TlsFront => {
            let conf = dir.join("nginx.conf");
            fs::write(&conf, nginx_conf(cfg, k, &dir))?;
            let mut c = Command::new(&cfg.nginx);
            c.arg("-p")
                .arg(&dir)
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-c")
                .arg(&conf);
            c
        }
        Kind::Websockify => {
            let mut c = Command::new(&cfg.websockify);
            c.arg(format!("127.0.0.1:{port}"))
                .arg(format!("127.0.0.1:{}", cfg.raw_port()));
            std::os::unix::process::CommandExt::process_group(&mut c, 0);
            c
        }
        Kind::Websocat => {
            let mut c = Command::new(&cfg.websocat);
            c.arg("--binary")
                .arg(format!("ws-l:127.0.0.1:{port}"))
                .arg(format!("tcp:127.0.0.1:{}", cfg.raw_port()));
            c
        }
    };
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let mut child = cmd.spawn().map_err(|e| bad(format!("{}: {e}", k.name())))?;
    if let Err(e) = wait_port(port, &mut child) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(bad(format!(
            "{}: {e} (see {})",
            k.name(),
            dir.join("output.log").display()
        )));
    }
    Ok(Running { kind: k, child })
}

// ---------------------------------------------------------------- measurements & report

struct Metric {
    key: String,
    label: String,
    unit: &'static str,
    lower_better: bool,
    ratio: bool,
    goal: &'static str,
}

/// A throughput test: direction, message size, connections and bytes per connection;
/// `tls`: the peer reaches the target over TLS.
struct Tp {
    key: String,
    label: String,
    dir: Dir,
    msg: usize,
    conns: usize,
    total: u64,
    goal: &'static str,
    tls: bool,
    /// The module logs in to an RFB target (`websockify_rfb_*`); the other peers run
    /// their plain path, so the ratio shows what the security proxy costs.
    rfb: bool,
    /// The module records the session (`websockify_record`, input too); the same.
    record: bool,
}

struct Sizes {
    big1: u64,
    small1: u64,
    big_n: u64,
    conns: usize,
    lat: usize,
    points: Vec<usize>,
    py_points: Vec<usize>,
}

fn stats(v: &[f64]) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let m = if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
    };
    Some((m, s[0], s[s.len() - 1]))
}

fn fmt_num(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn json_num(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v:.4}"),
        _ => "null".into(),
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn arg_val(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn date_utc() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86400) as i64;
    // civil from days (Howard Hinnant)
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let t = secs % 86400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        t / 3600,
        t / 60 % 60
    )
}

fn run_main(args: &[String]) -> io::Result<i32> {
    let quick = args.iter().any(|a| a == "--quick");
    let get = |n: &str, d: &str| arg_val(args, n).unwrap_or_else(|| d.to_string());
    let rounds: usize = get("--rounds", if quick { "2" } else { "3" })
        .parse()
        .map_err(|_| bad("--rounds"))?;
    let nofile: usize = get("--nofile", "1024")
        .parse()
        .map_err(|_| bad("--nofile"))?;
    let mut cfg = Cfg {
        nginx: get("--nginx", "/usr/sbin/nginx"),
        module: get("--module", ""),
        stream_module: get(
            "--stream-module",
            "/usr/lib/nginx/modules/ngx_stream_module.so",
        ),
        websockify: get("--websockify", ""),
        websocat: get("--websocat", ""),
        work: PathBuf::from(get("--workdir", "build/bench/run")),
        base: get("--port-base", "29100")
            .parse()
            .map_err(|_| bad("--port-base"))?,
        buffer: get("--buffer", "65543")
            .parse()
            .map_err(|_| bad("--buffer"))?,
        nofile,
        tls: None,
    };
    let json_path = get("--json", "build/bench/results.json");
    let command = get("--command", "wsbench run");
    // Two descriptors per session in a relay process, plus a few of its own.
    let fd_cap = nofile.saturating_sub(64) / 2;
    let want: usize = get("--sessions", if quick { "300" } else { "10000" })
        .parse()
        .map_err(|_| bad("--sessions"))?;
    let max_sessions = want.min(fd_cap);
    let first = if quick { 100 } else { 2000 }.min(max_sessions);
    let py_max: usize = get("--py-sessions", if quick { "100" } else { "2000" })
        .parse()
        .map_err(|_| bad("--py-sessions"))?;
    let mib = 1024 * 1024u64;
    let sz = if quick {
        Sizes {
            big1: 8 * mib,
            small1: mib,
            big_n: mib / 4,
            conns: 50,
            lat: 500,
            points: vec![first, max_sessions],
            py_points: vec![first.min(py_max), py_max.min(max_sessions)],
        }
    } else {
        // websockify 0.13 dies past ~500 sessions (select() on fds >= 1024): a checkpoint below.
        Sizes {
            big1: 256 * mib,
            small1: 64 * mib,
            big_n: 8 * mib,
            conns: 50,
            lat: 10000,
            points: vec![first, max_sessions],
            py_points: vec![400.min(py_max), py_max.min(max_sessions)],
        }
    };
    let scale: f64 = get("--scale", "1").parse().map_err(|_| bad("--scale"))?;
    let sc = |x: u64| ((x as f64 * scale) as u64).max(1024);
    let sz = Sizes {
        big1: sc(sz.big1),
        small1: sc(sz.small1),
        big_n: sc(sz.big_n),
        lat: ((sz.lat as f64 * scale) as usize).max(100),
        ..sz
    };
    let mut points = sz.points.clone();
    points.dedup();
    let mut py_points = sz.py_points.clone();
    py_points.dedup();

    let mut kinds = vec![Kind::Module, Kind::Zone, Kind::Ceiling];
    if !cfg.websockify.is_empty() {
        kinds.push(Kind::Websockify);
    }
    if !cfg.websocat.is_empty() {
        kinds.push(Kind::Websocat);
    }
    if let Some(only) = arg_val(args, "--peers") {
        kinds.retain(|k| only.split(',').any(|o| o == k.name()));
    }
    *RNG.lock().unwrap() = Rng(get(
        "--seed",
        &format!(
            "{}",
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        ),
    )
    .parse()
    .unwrap_or(1));

    fs::create_dir_all(&cfg.work)?;
    // The target: this same binary, a separate process (its own descriptors and CPU time).
    let exe = env::current_exe()?;
    let tlog = fs::File::create(cfg.work.join("target.log"))?;
    let mut target = Command::new(exe)
        .args([
            "target",
            "--raw",
            &format!("127.0.0.1:{}", cfg.raw_port()),
            "--ws",
            &format!("127.0.0.1:{}", cfg.ws_port()),
            "--rfb",
            &format!("127.0.0.1:{}", cfg.rfb_target_port()),
        ])
        .stdin(Stdio::null())
        .stdout(tlog.try_clone()?)
        .stderr(tlog)
        .spawn()?;
    wait_port(cfg.raw_port(), &mut target)?;
    wait_port(cfg.ws_port(), &mut target)?;
    wait_port(cfg.rfb_target_port(), &mut target)?;

    let tp: Vec<Tp> = {
        let mut v = Vec::new();
        for (msg, mlabel, conns, total) in [
            (65536, "64 KiB", 1, sz.big1),
            (1024, "1 KiB", 1, sz.small1),
            (65536, "64 KiB", sz.conns, sz.big_n),
        ] {
            for (dir, dl) in [(Dir::Up, "up"), (Dir::Down, "down"), (Dir::Echo, "echo")] {
                let goal = match (msg, conns, dir) {
                    (65536, 1, Dir::Down) => "≥ 0.95",
                    (65536, 1, _) => "≥ 0.90",
                    (1024, 1, Dir::Down) => "",
                    (1024, 1, _) => "≥ 0.85",
                    _ => "≥ 0.90",
                };
                let c = if conns == 1 {
                    "1 conn".to_string()
                } else {
                    format!("{conns} conns")
                };
                v.push(Tp {
                    key: format!("tp_{}_{}c_{dl}", msg, conns),
                    label: format!("{mlabel}, {c}: {dl} (MiB/s)"),
                    dir,
                    msg,
                    conns,
                    total,
                    goal,
                    tls: false,
                    rfb: false,
                    record: false,
                });
            }
        }
        // The peer speaks TLS to the target (through the TLS front): module with
        // websockify_ssl, ceiling with stream proxy_ssl.
        v.push(Tp {
            key: "tls_65536_1c_down".to_string(),
            label: "64 KiB, 1 conn: down, TLS to the target (MiB/s)".to_string(),
            dir: Dir::Down,
            msg: 65536,
            conns: 1,
            total: sz.big1,
            goal: "≥ 0.90",
            tls: true,
            rfb: false,
            record: false,
        });
        // After the gateway's RFB login: the relay with its gate, both ways.
        for (dir, dl) in [(Dir::Down, "down"), (Dir::Up, "up")] {
            v.push(Tp {
                key: format!("rfb_65536_1c_{dl}"),
                label: format!("64 KiB, 1 conn: {dl}, RFB login at the gateway (MiB/s)"),
                dir,
                msg: 65536,
                conns: 1,
                total: sz.big1,
                goal: "",
                tls: false,
                rfb: true,
                record: false,
            });
        }
        // Every byte both ways also written to a recording.
        for (dir, dl) in [(Dir::Down, "down"), (Dir::Echo, "echo")] {
            v.push(Tp {
                key: format!("rec_65536_1c_{dl}"),
                label: format!("64 KiB, 1 conn: {dl}, recorded (MiB/s)"),
                dir,
                msg: 65536,
                conns: 1,
                total: sz.big1,
                goal: "",
                tls: false,
                rfb: false,
                record: true,
            });
        }
        v
    };
    // --tests a,b: run only metrics whose key contains one of these (profiling aid).
    let only = arg_val(args, "--tests");
    let wanted = |key: &str| {
        only.as_ref()
            .is_none_or(|o| o.split(',').any(|w| key.contains(w)))
    };
    let run_lat = wanted("lat");
    let run_mem = wanted("mem");
    // The TLS front and its throwaway certificate, when the TLS row runs.
    let mut front = None;
    if tp.iter().any(|t| t.tls && wanted(&t.key)) {
        match tls_setup(&mut cfg) {
            Ok(r) => front = Some(r),
            Err(e) => eprintln!("bench: no TLS row: {e}"),
        }
    }
    let mut metrics: Vec<Metric> = tp
        .iter()
        .map(|t| Metric {
            key: t.key.clone(),
            label: t.label.clone(),
            unit: "MiB/s",
            lower_better: false,
            ratio: true,
            goal: t.goal,
        })
        .collect();
    metrics.push(Metric {
        key: "lat_p50".into(),
        label: "64 B echo p50 (µs)".into(),
        unit: "us",
        lower_better: true,
        ratio: true,
        goal: "≤ 1.05",
    });
    metrics.push(Metric {
        key: "lat_p99".into(),
        label: "64 B echo p99 (µs)".into(),
        unit: "us",
        lower_better: true,
        ratio: true,
        goal: "≤ 1.10",
    });
    let mem_label = |i: usize| {
        let at = |v: &Vec<usize>| v.get(i).or(v.last()).copied().unwrap_or(0);
        format!(
            "memory per idle session at {} sessions (websockify: {}) (kB)",
            at(&points),
            at(&py_points)
        )
    };
    let mem_first = metrics.len();
    metrics.push(Metric {
        key: "mem_a".into(),
        label: mem_label(0),
        unit: "kB",
        lower_better: true,
        ratio: false,
        goal: "≤ 12 kB",
    });
    metrics.push(Metric {
        key: "mem_b".into(),
        label: mem_label(1),
        unit: "kB",
        lower_better: true,
        ratio: false,
        goal: "≤ 12 kB",
    });
    // The module only: the same idle sessions, each recorded (its file and recorder).
    metrics.push(Metric {
        key: "mem_rec".into(),
        label: format!(
            "memory per idle recorded session at {} sessions (kB)",
            points.first().copied().unwrap_or(0)
        ),
        unit: "kB",
        lower_better: true,
        ratio: false,
        goal: "",
    });
    metrics.push(Metric {
        key: "held".into(),
        label: "idle sessions held, each echo-verified".into(),
        unit: "sessions",
        lower_better: false,
        ratio: false,
        goal: "",
    });

    // values[metric][peer][round]
    let mut values = vec![vec![vec![None::<f64>; rounds]; kinds.len()]; metrics.len()];
    let mut errors: Vec<String> = Vec::new();
    let mut module_failed = false;
    let t_all = Instant::now();

    for round in 0..rounds {
        eprintln!(
            "== round {}/{rounds} ({:.0}s)",
            round + 1,
            t_all.elapsed().as_secs_f64()
        );
        let mut running: Vec<Option<Running>> = Vec::new();
        for &k in &kinds {
            match start(&cfg, k) {
                Ok(r) => running.push(Some(r)),
                Err(e) => {
                    errors.push(format!("round {}: start {e}", round + 1));
                    if k == Kind::Module {
                        module_failed = true;
                    }
                    running.push(None)
                }
            }
        }
        let mut record = |mi: usize,
                          pi: usize,
                          r: io::Result<f64>,
                          what: &str,
                          values: &mut Vec<Vec<Vec<Option<f64>>>>| match r
        {
            Ok(x) => values[mi][pi][round] = Some(x),
            Err(e) => {
                errors.push(format!(
                    "round {}: {} {what}: {e}",
                    round + 1,
                    kinds[pi].name()
                ));
                if kinds[pi] == Kind::Module {
                    module_failed = true;
                }
            }
        };
        // Interleaved: every test runs on every peer before the next test.
        for (mi, t) in tp.iter().enumerate() {
            if !wanted(&t.key) {
                continue;
            }
            // The order rotates each round, so no peer always runs first or last.
            for j in 0..kinds.len() {
                let pi = (j + round) % kinds.len();
                let k = kinds[pi];
                if running[pi].is_none()
                    || (t.tls && (!k.tls() || front.is_none()))
                    || ((t.rfb || t.record) && !matches!(k, Kind::Module | Kind::Ceiling))
                {
                    continue;
                }
                let rfb = t.rfb && k == Kind::Module;
                let ep = Endpoint {
                    port: if t.tls {
                        cfg.tls_port(k)
                    } else if rfb {
                        cfg.rfb_port()
                    } else if t.record && k == Kind::Module {
                        cfg.record_port()
                    } else {
                        cfg.port(k)
                    },
                    path: "/websockify",
                    rfb,
                };
                let r = throughput(&ep, t.dir, t.conns, t.total, t.msg);
                if t.record && k == Kind::Module {
                    // Checked, then gone: full runs would fill gigabytes.
                    let r2 = recorded_bytes(&cfg.work.join(k.name()).join("rec"));
                    eprintln!("  {:<34} {:<10} {r2} bytes in recordings", "", "");
                }
                eprintln!(
                    "  {:<34} {:<10} {}",
                    t.label,
                    k.name(),
                    r.as_ref()
                        .map(|x| format!("{x:.1}"))
                        .unwrap_or_else(|e| format!("ERROR {e}"))
                );
                record(mi, pi, r, &t.label, &mut values);
            }
        }
        for j in 0..kinds.len() {
            let pi = (j + round) % kinds.len();
            let k = kinds[pi];
            if running[pi].is_none() || !run_lat {
                continue;
            }
            let ep = Endpoint {
                port: cfg.port(k),
                path: "/websockify",
                rfb: false,
            };
            let r = latency(&ep, sz.lat);
            eprintln!(
                "  {:<34} {:<10} {}",
                "64 B echo p50/p99 (µs)",
                k.name(),
                r.as_ref()
                    .map(|x| format!("{:.1} / {:.1}", x.0, x.1))
                    .unwrap_or_else(|e| format!("ERROR {e}"))
            );
            match r {
                Ok((a, b)) => {
                    record(tp.len(), pi, Ok(a), "latency", &mut values);
                    record(tp.len() + 1, pi, Ok(b), "latency", &mut values);
                }
                Err(e) => record(tp.len(), pi, Err(e), "latency", &mut values),
            }
        }
        for r in running.into_iter().flatten() {
            r.stop();
        }
        // Memory: each peer fresh, alone.
        for (pi, &k) in kinds.iter().enumerate() {
            if !run_mem {
                break;
            }
            // Forking websockify takes ~40 ms a session and its cost does not vary: once.
            if k == Kind::Websockify
                && round > 0
                && !args.iter().any(|a| a == "--py-mem-every-round")
            {
                continue;
            }
            let pts = if k == Kind::Websockify {
                &py_points
            } else {
                &points
            };
            let r = match start(&cfg, k) {
                Ok(r) => r,
                Err(e) => {
                    record(mem_first, pi, Err(e), "memory", &mut values);
                    continue;
                }
            };
            let ep = Endpoint {
                port: cfg.port(k),
                path: "/websockify",
                rfb: false,
            };
            let t = Instant::now();
            let (held, per, err) = hold(&ep, &r, pts);
            eprintln!(
                "  {:<34} {:<10} {held} held in {:.1}s, kB/session {}",
                "idle sessions",
                k.name(),
                t.elapsed().as_secs_f64(),
                pts.iter()
                    .zip(&per)
                    .map(|(p, v)| format!(
                        "@{p}: {}",
                        v.map(|x| format!("{x:.2}")).unwrap_or("-".into())
                    ))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            values[mem_first + 3][pi][round] = Some(held as f64);
            for (j, v) in per.iter().enumerate() {
                values[mem_first + j][pi][round] = *v;
            }
            if per.len() == 1 {
                values[mem_first + 1][pi][round] = per[0];
            }
            if let Some(e) = err {
                record(mem_first, pi, Err(bad(e)), "sessions", &mut values);
            }
            r.stop();
            release_target(cfg.raw_port());
            if k == Kind::Module {
                // Fresh again: memory freed by the sessions above would be reused.
                let rec = start(&cfg, k).and_then(|r| {
                    let kb = hold_recorded(&cfg, &r, &points[..1]);
                    r.stop();
                    kb
                });
                release_target(cfg.raw_port());
                record(mem_first + 2, pi, rec, "recorded sessions", &mut values);
            }
        }
    }
    if let Some(f) = front {
        f.stop();
    }
    let _ = target.kill();
    let _ = target.wait();
    let elapsed = t_all.elapsed().as_secs_f64();

    // Table.
    let ceil = kinds.iter().position(|&k| k == Kind::Ceiling);
    let mut lines = Vec::new();
    let cores = thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let sess_note = format!(
        "checkpoints: {} sessions ({} for websockify, which forks a process per connection; first round only); fd limit {nofile} ({fd_cap} sessions at 2 fds each)",
        points.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" and "),
        py_points.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" and ")
    );
    lines.push(format!(
        "{} · {cores} cores · Linux {kernel} · {rounds} rounds{} · {:.0}s",
        date_utc(),
        if quick { " (--quick)" } else { "" },
        elapsed
    ));
    lines.push(format!("command: {command}"));
    lines.push(format!("cells: median (min–max) over rounds; ×r = median of round-by-round ratios to the ceiling (nginx stream proxy_pass of pre-framed WebSocket); {sess_note}"));
    lines.push(String::new());
    let mut hdr = format!("| {} | goal (module) |", "metric");
    for k in &kinds {
        hdr.push_str(&format!(" {} |", k.name()));
    }
    lines.push(hdr);
    lines.push(format!("|---|---|{}", "---|".repeat(kinds.len())));
    let ratios = |mi: usize, pi: usize| -> Vec<f64> {
        let Some(c) = ceil else { return vec![] };
        (0..rounds)
            .filter_map(|r| Some(values[mi][pi][r]? / values[mi][c][r]?))
            .collect()
    };
    for (mi, m) in metrics.iter().enumerate() {
        let mut row = format!("| {} | {} |", m.label, m.goal);
        for (pi, &k) in kinds.iter().enumerate() {
            let vals: Vec<f64> = values[mi][pi].iter().flatten().copied().collect();
            let mut cell = match stats(&vals) {
                None => "–".to_string(),
                Some((med, lo, hi)) if m.key == "held" => {
                    if lo == hi {
                        format!("{med:.0}")
                    } else {
                        format!("{med:.0} ({lo:.0}–{hi:.0})")
                    }
                }
                Some((med, lo, hi)) => {
                    format!("{} ({}–{})", fmt_num(med), fmt_num(lo), fmt_num(hi))
                }
            };
            if m.ratio && k != Kind::Ceiling {
                if let Some((r, _, _)) = stats(&ratios(mi, pi)) {
                    cell.push_str(&format!(" ×{r:.2}"));
                }
            }
            row.push_str(&format!(" {cell} |"));
        }
        lines.push(row);
    }
    if !errors.is_empty() {
        lines.push(String::new());
        lines.push("errors:".into());
        for e in &errors {
            lines.push(format!("- {e}"));
        }
    }
    let table = lines.join("\n");
    println!("{table}");

    // JSON.
    let mut j = String::from("{\n");
    j.push_str(&format!(
        "  \"date\": {},\n  \"cores\": {cores},\n  \"kernel\": {},\n  \"command\": {},\n",
        json_str(&date_utc()),
        json_str(&kernel),
        json_str(&command)
    ));
    j.push_str(&format!("  \"quick\": {quick},\n  \"rounds\": {rounds},\n  \"seconds\": {elapsed:.1},\n  \"nofile\": {nofile},\n"));
    j.push_str(&format!(
        "  \"session_checkpoints\": {:?},\n  \"websockify_session_checkpoints\": {:?},\n",
        points, py_points
    ));
    j.push_str(&format!(
        "  \"peers\": [{}],\n",
        kinds
            .iter()
            .map(|k| json_str(k.name()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    j.push_str("  \"metrics\": [\n");
    for (mi, m) in metrics.iter().enumerate() {
        j.push_str(&format!(
            "    {{\"key\": {}, \"label\": {}, \"unit\": {}, \"lower_is_better\": {}, \"goal\": {}, \"peers\": {{",
            json_str(&m.key), json_str(&m.label), json_str(m.unit), m.lower_better, json_str(m.goal)
        ));
        let mut parts = Vec::new();
        for (pi, k) in kinds.iter().enumerate() {
            let vals: Vec<f64> = values[mi][pi].iter().flatten().copied().collect();
            let st = stats(&vals);
            let rs = if m.ratio && *k != Kind::Ceiling {
                ratios(mi, pi)
            } else {
                vec![]
            };
            let rst = stats(&rs);
            parts.push(format!(
                "{}: {{\"rounds\": [{}], \"median\": {}, \"min\": {}, \"max\": {}, \"ratio_rounds\": [{}], \"ratio_median\": {}}}",
                json_str(k.name()),
                values[mi][pi].iter().map(|v| json_num(*v)).collect::<Vec<_>>().join(", "),
                json_num(st.map(|s| s.0)),
                json_num(st.map(|s| s.1)),
                json_num(st.map(|s| s.2)),
                rs.iter().map(|v| json_num(Some(*v))).collect::<Vec<_>>().join(", "),
                json_num(rst.map(|s| s.0))
            ));
        }
        j.push_str(&parts.join(", "));
        j.push_str(if mi + 1 < metrics.len() {
            "}},\n"
        } else {
            "}}\n"
        });
    }
    j.push_str("  ],\n");
    j.push_str(&format!(
        "  \"errors\": [{}],\n",
        errors
            .iter()
            .map(|e| json_str(e))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    j.push_str(&format!("  \"table\": {}\n}}\n", json_str(&table)));
    if let Some(parent) = Path::new(&json_path).parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(&json_path, j)?;
    eprintln!("wrote {json_path}");
    // Slow numbers never fail; broken data or a module that cannot serve does.
    Ok(if module_failed { 1 } else { 0 })
}

fn main() {
    let args: Vec<String> = env::args().collect();
    let code = match args.get(1).map(String::as_str) {
        Some("target") => {
            let raw = arg_val(&args, "--raw").unwrap_or_else(|| "127.0.0.1:29100".into());
            let wsa = arg_val(&args, "--ws").unwrap_or_else(|| "127.0.0.1:29101".into());
            let rfb = arg_val(&args, "--rfb").unwrap_or_else(|| "127.0.0.1:29120".into());
            match target_main(&raw, &wsa, &rfb) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("target: {e}");
                    1
                }
            }
        }
        Some("run") => match run_main(&args[2..]) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("wsbench: {e}");
                2
            }
        },
        _ => {
            eprintln!("usage: wsbench run [--quick] [--rounds N] [--json PATH] [--module SO] [--websockify BIN] [--websocat BIN] ...\n       wsbench target --raw ADDR --ws ADDR --rfb ADDR");
            2
        }
    };
    std::process::exit(code);
}
