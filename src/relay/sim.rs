//! Deterministic simulation of the relay core, in the spirit of FoundationDB's and
//! TigerBeetle's: a seeded scheduler plays a WebSocket client, a TCP target, the kernel
//! buffers between them and the relay, and nginx's clock. It delivers partial reads and
//! writes of any size, would-blocks (also on sockets flagged ready), timers early and
//! late, EOF and errors on either side, pings, pongs and closes between data frames,
//! protocol violations, clients that stop reading and targets that never read, and
//! checks the relay's promises after every step:
//!
//! - bytes arrive exactly once and in order both ways, and completely when the session
//!   ends cleanly; the frame counter counts every frame header the relay read, control
//!   frames included;
//! - the client parses a clean frame stream: control frames never split a data frame,
//!   nothing follows our close frame, pongs echo the client's pings;
//! - buffers stay within their bound; the 101 goes out before any frame;
//! - a write retried after would-block starts at the same address, not shorter (TLS);
//! - a send timeout fires only after a full timeout without progress, the idle timeout
//!   only after a full period without data; with heartbeats on, the relay never sleeps
//!   past the next ping, so pings recur while the session is idle;
//! - every session ends, with the documented cause and close code.
//!
//! `run` takes its choices from a [`Source`]: a seed (`cargo test`; a failure prints its
//! seed, replay it with `SIM_SEED=n`) or fuzzer bytes (`fuzz/fuzz_targets/relay.rs`; `SIM_TRACE=1` logs every action).

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::fmt::Write as _;

use super::core::{
    Action, Cause, Close, Config, End, Io, Msec, Note, Ready, Relay, CLOSE_EXPIRED,
    CLOSE_GOING_AWAY, CLOSE_INTERNAL_ERROR, CLOSE_NORMAL, CLOSE_REVOKED,
};
use crate::protocol::codec::{Mode, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT};
use crate::protocol::recording::{self, Header, Recorder};

/// Where the schedule's choices come from.
pub trait Source {
    fn next(&mut self) -> u64;
}

/// splitmix64.
pub struct Seeded(pub u64);

impl Source for Seeded {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Fuzzer bytes, eight at a time; once they run out, a schedule seeded by what they were
/// (a run of zeros would never advance the clock).
pub struct Bytes<'a> {
    rest: &'a [u8],
    after: Seeded,
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        let seed = data
            .iter()
            .fold(data.len() as u64, |h, &b| h.rotate_left(5) ^ u64::from(b));
        Self {
            rest: data,
            after: Seeded(seed),
        }
    }
}

impl Source for Bytes<'_> {
    fn next(&mut self) -> u64 {
        if self.rest.is_empty() {
            return self.after.next();
        }
        let (head, rest) = self.rest.split_at(self.rest.len().min(8));
        self.rest = rest;
        let mut b = [0u8; 8];
        b[..head.len()].copy_from_slice(head);
        u64::from_le_bytes(b)
    }
}

struct Dice<'a>(&'a mut dyn Source);

impl Dice<'_> {
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.0.next() % n
        }
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.0.next() as u8).collect()
    }
    /// Up to `max` random bytes.
    fn blob(&mut self, max: u64) -> Vec<u8> {
        let n = self.range(0, max) as usize;
        self.bytes(n)
    }
}

/// What a finished schedule did, for the test's totals.
#[derive(Default, Debug)]
pub struct Report {
    pub steps: u64,
    pub up_bytes: usize,
    pub down_bytes: usize,
    pub cause: Option<Cause>,
}

/// How the client ends its side.
#[derive(Clone, Copy, Debug, PartialEq)]
enum ClientEnd {
    Close(Option<u16>),
    Eof,
    /// Connection reset: reads and writes fail from then on.
    Reset,
    Violation(Violation),
    /// Stays open; the drain phase ends it.
    Open,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Violation {
    Unmasked,
    Reserved,
    Opcode,
    LongPing,
    FragmentedPing,
    Continuation,
    CloseCode,
    CloseReason,
    BinaryInBase64,
    BadBase64,
}

impl Violation {
    fn code(self) -> u16 {
        match self {
            Self::CloseReason | Self::BadBase64 => 1007,
            Self::BinaryInBase64 => 1003,
            _ => 1002,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum TargetEnd {
    Eof,
    Reset,
    Open,
}

/// A socket buffer in one direction.
#[derive(Default)]
struct Pipe {
    data: VecDeque<u8>,
    cap: usize,
    eof: bool,
}

impl Pipe {
    fn space(&self) -> usize {
        self.cap.saturating_sub(self.data.len())
    }
}

struct Client {
    mode: Mode,
    /// Frames queued for the wire, and the script still to come.
    out: VecDeque<u8>,
    script: VecDeque<Step>,
    end: ClientEnd,
    ended: bool,
    reset: bool,
    reading: bool,
    answers_pings: bool,
    /// Heartbeat pings are on.
    heartbeat: bool,
    /// Payload the target must see, in order.
    expect_up: Vec<u8>,
    /// The RFB gate judges the payload: `expect_up` was written from the RFB script.
    rfb: bool,
    /// Every payload byte this client put in its messages, in order.
    sent: Vec<u8>,
    /// Server frames being parsed, and what they gave.
    inbox: Vec<u8>,
    got: Vec<u8>,
    got_close: Option<Option<u16>>,
    /// Server frames parsed, and frames this client wrote.
    frames: usize,
    frames_sent: u64,
    /// Bytes this client put on the wire, and where each frame's header ends in them,
    /// with whether the header is valid (a violation may be refused in its header).
    wire: u64,
    headers: Vec<(u64, bool)>,
    /// The close or violation frame: the relay decodes nothing behind it.
    end_frame: Option<usize>,
    pings_sent: Vec<Vec<u8>>,
    pongs_matched: usize,
    awaiting_pong: Option<Vec<u8>>,
}

enum Step {
    Data(Vec<u8>),
    Ping(Vec<u8>),
    PingAwait(Vec<u8>),
    Pong,
}

struct Target {
    stream: Vec<u8>,
    sent: usize,
    end: TargetEnd,
    ended: bool,
    reset: bool,
    reading: bool,
    got: Vec<u8>,
}

/// What the sim saw happen, for the timing promises.
#[derive(Default)]
struct Clock {
    now: Msec,
    /// Last byte the relay moved in or out (sends to the client aside: pings are not data).
    data_at: Msec,
    client_progress_at: Msec,
    target_progress_at: Msec,
    deadline: Option<Msec>,
}

/// A send that said would-block, which the next send on that side must repeat.
#[derive(Clone, Copy, Default)]
struct Retry(Option<(usize, usize)>);

impl Retry {
    fn check(&mut self, side: &str, bytes: &[u8]) -> Result<(), String> {
        if let Some((ptr, len)) = self.0 {
            if bytes.as_ptr() as usize != ptr || bytes.len() < len {
                return Err(format!(
                    "{side}: send after would-block changed buffer ({:#x}/{} after {ptr:#x}/{len})",
                    bytes.as_ptr() as usize,
                    bytes.len()
                ));
            }
        }
        Ok(())
    }
}

struct World<'a> {
    dice: Dice<'a>,
    cfg: Config,
    relay: Relay,
    c2r: Pipe,
    r2c: Pipe,
    t2r: Pipe,
    r2t: Pipe,
    client: Client,
    target: Target,
    clock: Clock,
    header: bool,
    client_retry: Retry,
    target_retry: Retry,
    bound: usize,
    /// When the server revokes the session, if it does.
    revoke_at: Option<Msec>,
    revoked: bool,
    /// When nginx ends the session itself (worker shutdown), if it does.
    shutdown_at: Option<Msec>,
    /// Every action goes to the log (SIM_TRACE=1 when replaying a seed).
    trace: bool,
    /// The relay gave up on the target (reset, or a send timeout).
    target_fault: bool,
    /// When the relay said the lifetime was over.
    expired_at: Option<Msec>,
    /// The relay speaks RFB's server half to the client (and is view-only when true).
    rfb: Option<bool>,
    /// The session is recorded (with input when true).
    recorded: Option<bool>,
    log: String,
    steps: u64,
    end: Option<End>,
    /// Bytes of the client's wire the relay has read (pipelined ones included).
    up_read: u64,
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// Plays one schedule to its end; Err describes the first broken promise.
pub fn run(src: &mut dyn Source) -> Result<Report, String> {
    let mut w = World::new(Dice(src));
    let result = w.play();
    result.map_err(|e| format!("{e}\n--- schedule:\n{}", w.log))
}

impl<'a> World<'a> {
    fn new(mut dice: Dice<'a>) -> Self {
        let mode = if dice.percent(20) {
            Mode::Base64
        } else {
            Mode::Binary
        };
        let cfg = Config {
            buffer_size: dice.pick(&[256, 300, 1024, 4096, 65543]),
            read_timeout: dice.range(1_000, 60_000),
            send_timeout: dice.range(500, 30_000),
            ping_interval: if dice.percent(50) {
                0
            } else {
                dice.range(200, 20_000)
            },
            lifetime: dice.percent(15).then(|| dice.range(1, 90_000)),
        };
        let header = dice.percent(50);
        let mut client = Client::new(&mut dice, mode, cfg.ping_interval > 0);
        let rfb = dice.percent(25).then(|| dice.percent(50));
        if let Some(view_only) = rfb {
            client.rfb_script(&mut dice, view_only);
        }
        let target = Target::new(&mut dice);
        let cap = |d: &mut Dice| d.pick(&[1, 7, 100, 1500, 8192, 65536, 300_000]) as usize;
        let pipe = |d: &mut Dice| Pipe {
            cap: cap(d),
            ..Pipe::default()
        };
        let (c2r, r2c, t2r, r2t) = (
            pipe(&mut dice),
            pipe(&mut dice),
            pipe(&mut dice),
            pipe(&mut dice),
        );
        let mut relay = Relay::new(cfg, mode, header, 0);
        if let Some(view_only) = rfb {
            relay.speak_rfb(view_only);
        }
        let recorded = dice.percent(30).then(|| dice.percent(50));
        if let Some(input) = recorded {
            relay.record(Recorder::new(0, input));
        }
        let mut log = String::new();
        let _ = writeln!(
            log,
            "{mode:?} {cfg:?} rfb={rfb:?} recorded={recorded:?} header={header} caps c2r={} r2c={} t2r={} r2t={} client end {:?} target end {:?} ({} bytes)",
            c2r.cap, r2c.cap, t2r.cap, r2t.cap, client.end, target.end, target.stream.len()
        );
        World {
            dice,
            cfg,
            relay,
            c2r,
            r2c,
            t2r,
            r2t,
            client,
            target,
            clock: Clock::default(),
            header,
            client_retry: Retry::default(),
            target_retry: Retry::default(),
            bound: 0,
            revoke_at: None,
            revoked: false,
            shutdown_at: None,
            trace: std::env::var_os("SIM_TRACE").is_some(),
            target_fault: false,
            expired_at: None,
            rfb,
            recorded,
            log,
            steps: 0,
            end: None,
            up_read: 0,
        }
    }

    fn play(&mut self) -> Result<Report, String> {
        // Pipelined frames: what the client wrote right behind its handshake.
        self.bound = self.cfg.buffer_size;
        if self.dice.percent(10) {
            self.revoke_at = Some(self.dice.range(0, 60_000));
        }
        if self.dice.percent(5) {
            self.shutdown_at = Some(self.dice.range(0, 60_000));
        }
        if self.dice.percent(20) {
            self.client.produce(&mut self.dice);
            let n = self.client.out.len().min(self.dice.range(0, 4000) as usize);
            let bytes: Vec<u8> = self.client.out.drain(..n).collect();
            self.bound = self.cfg.buffer_size.max(n);
            self.relay.pipelined(&bytes);
            self.up_read += n as u64;
            self.note(format_args!("pipelined {n}"));
        }
        self.run_relay()?;
        for _ in 0..4000 {
            if self.end.is_some() {
                break;
            }
            self.step(false)?;
        }
        // Drain: the peers read everything and answer nothing more; deadlines come.
        self.client.answers_pings = false;
        self.client.reading = !self.client.reset;
        self.target.reading = !self.target.reset;
        // Tiny socket buffers move a few bytes a step: give up only without progress.
        let mut idle_steps = 0;
        while self.end.is_none() && idle_steps < 4000 {
            let before = self.moved();
            self.step(true)?;
            idle_steps = if self.moved() == before {
                idle_steps + 1
            } else {
                0
            };
        }
        let Some(end) = self.end else {
            return Err("the session never ended".into());
        };
        self.finish(end)?;
        Ok(Report {
            steps: self.steps,
            up_bytes: self.target.got.len(),
            down_bytes: self.client.got.len(),
            cause: Some(end.cause),
        })
    }

    /// Bytes the peers have taken off their sockets.
    fn moved(&self) -> usize {
        self.target.got.len() + self.client.inbox.len() + self.client.got.len() + self.client.frames
    }

    fn note(&mut self, args: std::fmt::Arguments) {
        let _ = writeln!(self.log, "t={} {args}", self.clock.now);
    }

    fn step(&mut self, draining: bool) -> Result<(), String> {
        self.steps += 1;
        match self.dice.below(10) {
            0..=3 => self.client_acts(draining)?,
            4..=7 => self.target_acts(draining)?,
            8 if !draining => {
                let dt = self.dice.range(1, 400);
                self.advance(dt);
            }
            _ => self.fire_timer(),
        }
        if !self.revoked && self.revoke_at.is_some_and(|at| self.clock.now >= at) {
            self.revoked = true;
            self.note(format_args!("revoke"));
            self.relay.revoke();
            self.run_relay()?;
        }
        if self.end.is_none() && self.shutdown_at.is_some_and(|at| self.clock.now >= at) {
            self.shut_down();
        }
        // The recording's writes fall behind and catch up (the thread pool's backpressure);
        // they always catch up when draining.
        if self.recorded.is_some() {
            let behind = !draining && self.dice.percent(20);
            if behind != self.relay.is_record_behind() {
                self.note(format_args!("recording behind: {behind}"));
                self.relay.record_behind(behind);
                self.run_relay()?;
            }
        }
        if self.dice.percent(85) || draining {
            self.run_relay()?;
        }
        self.check()
    }

    fn advance(&mut self, dt: Msec) {
        self.clock.now += dt;
    }

    /// Time jumps to the relay's deadline, a little early or late as nginx's timers go.
    fn fire_timer(&mut self) {
        if let Some(at) = self.clock.deadline {
            let at = match self.dice.below(4) {
                0 => at.saturating_sub(self.dice.range(1, 300)),
                1 => at + self.dice.range(1, 300),
                _ => at,
            };
            if at > self.clock.now {
                self.clock.now = at;
            }
            self.note(format_args!("timer"));
        }
    }

    fn client_acts(&mut self, draining: bool) -> Result<(), String> {
        let c = &mut self.client;
        if !draining && self.dice.percent(3) {
            c.reading = !c.reading;
        }
        if c.reading && !c.reset {
            let n = self.dice.range(1, 70_000) as usize;
            let take = n.min(self.r2c.data.len());
            let bytes: Vec<u8> = self.r2c.data.drain(..take).collect();
            if take > 0 {
                self.client.receive(&bytes)?;
            }
        }
        if draining || self.client.reset {
            return Ok(());
        }
        self.client.produce(&mut self.dice);
        let n = (self.dice.range(1, 20_000) as usize)
            .min(self.c2r.space())
            .min(self.client.out.len());
        self.c2r.data.extend(self.client.out.drain(..n));
        if self.client.out.is_empty() && self.client.script.is_empty() && !self.client.ended {
            self.client.ended = true;
            match self.client.end {
                ClientEnd::Eof => self.c2r.eof = true,
                ClientEnd::Reset => self.client.reset = true,
                _ => {}
            }
            let end = self.client.end;
            self.note(format_args!("client ends: {end:?}"));
        }
        Ok(())
    }

    fn target_acts(&mut self, draining: bool) -> Result<(), String> {
        if !draining && self.dice.percent(3) {
            self.target.reading = !self.target.reading;
        }
        let t = &mut self.target;
        if t.reading && !t.reset {
            let n = (self.dice.range(1, 70_000) as usize).min(self.r2t.data.len());
            t.got.extend(self.r2t.data.drain(..n));
        }
        if t.reset || t.ended || draining {
            return Ok(());
        }
        let n = (self.dice.range(1, 70_000) as usize)
            .min(self.t2r.space())
            .min(t.stream.len() - t.sent);
        self.t2r
            .data
            .extend(t.stream.get(t.sent..t.sent + n).unwrap_or_default());
        t.sent += n;
        // Ends once everything is written, or cut short mid-stream now and then.
        let cut = t.end != TargetEnd::Open && self.dice.percent(1);
        if !t.ended && (t.sent == t.stream.len() || cut) {
            t.ended = true;
            match t.end {
                TargetEnd::Eof => self.t2r.eof = true,
                TargetEnd::Reset => t.reset = true,
                TargetEnd::Open => {}
            }
            let (end, sent) = (t.end, t.sent);
            self.note(format_args!("target ends: {end:?} after {sent}"));
        }
        Ok(())
    }

    fn ready(&mut self) -> Ready {
        let spurious = self.dice.percent(5);
        Ready {
            client_read: !self.c2r.data.is_empty() || self.c2r.eof || self.client.reset || spurious,
            client_write: self.r2c.space() > 0 || self.client.reset || spurious,
            target_read: !self.t2r.data.is_empty() || self.t2r.eof || self.target.reset || spurious,
            target_write: self.r2t.space() > 0 || self.target.reset || spurious,
        }
    }

    /// The glue's loop: poll and perform until the relay waits or finishes.
    fn run_relay(&mut self) -> Result<(), String> {
        if self.end.is_some() {
            return Ok(());
        }
        for _ in 0..100_000 {
            let ready = self.ready();
            let now = self.clock.now;
            let action = self.relay.poll(ready, now);
            if self.trace {
                let _ = writeln!(self.log, "t={now} {ready:?} -> {}", brief(&action));
            }
            match action {
                Action::Log(note) => {
                    self.note(format_args!("log: {note}"));
                    if let Note::Expired(_) = note {
                        self.expired_at = Some(now);
                    }
                    check_note(note, &self.clock, &self.cfg)?;
                    self.target_fault |= matches!(
                        note,
                        Note::TargetReadFailed | Note::TargetSendFailed | Note::TargetSendTimedOut
                    );
                }
                Action::FlushHeader => {
                    ensure!(self.header, "flush of a 101 that was not queued");
                    let io = if self.client.reset {
                        Io::Error
                    } else if self.r2c.space() > 0 && self.dice.percent(80) {
                        self.header = false;
                        self.clock.client_progress_at = now;
                        Io::Done(0)
                    } else {
                        Io::Again
                    };
                    self.relay.header_flushed(io);
                }
                Action::RecvClient(buf) => {
                    let io = recv(&mut self.dice, &mut self.c2r, self.client.reset, buf);
                    if let Io::Done(n) = io {
                        self.clock.data_at = now;
                        self.up_read += n as u64;
                    }
                    self.relay.client_read(io, now);
                }
                Action::RecvTarget(buf) => {
                    let io = recv(&mut self.dice, &mut self.t2r, self.target.reset, buf);
                    if let Io::Done(_) = io {
                        self.clock.data_at = now;
                    }
                    self.relay.target_read(io, now);
                }
                Action::SendClient(bytes) => {
                    ensure!(!self.header, "a frame went out before the 101");
                    self.client_retry.check("client", bytes)?;
                    let io = send(&mut self.dice, &mut self.r2c, self.client.reset, bytes);
                    self.client_retry.0 = match io {
                        Io::Again => Some((bytes.as_ptr() as usize, bytes.len())),
                        _ => None,
                    };
                    if let Io::Done(_) = io {
                        self.clock.client_progress_at = now;
                    }
                    self.relay.client_sent(io, now);
                }
                Action::SendTarget(bytes) => {
                    self.target_retry.check("target", bytes)?;
                    let io = send(&mut self.dice, &mut self.r2t, self.target.reset, bytes);
                    self.target_retry.0 = match io {
                        Io::Again => Some((bytes.as_ptr() as usize, bytes.len())),
                        _ => None,
                    };
                    if let Io::Done(_) = io {
                        self.clock.target_progress_at = now;
                        self.clock.data_at = now;
                    }
                    self.relay.target_sent(io, now);
                }
                Action::Wait(deadline) => {
                    self.clock.deadline = deadline;
                    ensure!(
                        deadline.is_some(),
                        "a live session waits without a deadline"
                    );
                    // Heartbeats recur however idle the session is: the relay never sleeps
                    // past the next one.
                    let every = self.cfg.ping_interval;
                    ensure!(
                        every == 0 || deadline.is_some_and(|at| at <= now + every),
                        "with heartbeats every {every} ms the relay sleeps at t={now} until {deadline:?}"
                    );
                    return Ok(());
                }
                Action::Finish(end) => {
                    self.note(format_args!("finish {end:?}"));
                    self.end = Some(end);
                    let again = self.relay.poll(Ready::default(), now);
                    ensure!(
                        matches!(again, Action::Finish(e) if e == end),
                        "poll after Finish did not finish again"
                    );
                    return Ok(());
                }
            }
        }
        Err("the relay never waited (livelock)".into())
    }

    /// nginx terminates the request: one best-effort send of what the relay offers.
    fn shut_down(&mut self) {
        let reset = self.client.reset;
        let offer = self.relay.going_away().map(|(_, bytes)| bytes.to_vec());
        if let Some(bytes) = offer {
            if !reset {
                let n = bytes.len().min(self.r2c.space());
                self.r2c.data.extend(&bytes[..n]);
            }
        }
        self.end = self.relay.end();
        let end = self.end;
        self.note(format_args!("shutdown: {end:?}"));
    }

    /// Invariants after every step.
    fn check(&self) -> Result<(), String> {
        let up = &self.target.got;
        ensure!(
            self.client.expect_up.starts_with(up),
            "target got bytes the client did not send in that order ({})",
            diff(up, &self.client.expect_up)
        );
        let down = self.down_payload()?;
        let sent = self
            .target
            .stream
            .get(..self.target.sent)
            .unwrap_or_default();
        ensure!(
            sent.starts_with(down),
            "client got bytes the target did not send in that order ({})",
            diff(down, sent)
        );
        // Every frame whose header the relay has read counts, data and control alike.
        let c = &self.client;
        let decodable = c.end_frame.map_or(c.headers.len(), |i| i + 1);
        let read = c.headers[..decodable]
            .iter()
            .filter(|&&(end, valid)| valid && end <= self.up_read)
            .count() as u64;
        let counted = self.relay.stats().frames_from_client;
        ensure!(
            counted == read,
            "{counted} frames counted, the relay read {read} frame headers"
        );
        let held = self.relay.held();
        ensure!(
            held <= 2 * self.bound,
            "relay holds {held} bytes, bound {}",
            2 * self.bound
        );
        Ok(())
    }

    /// A recorded session's file holds what the client received and, with input, what
    /// reached the target, in order: the client's and the target's bytes are prefixes.
    fn check_recording(&mut self) -> Result<(), String> {
        let Some(input) = self.recorded else {
            return Ok(());
        };
        let mut file = Header {
            session: "sim",
            target: "t",
            location: "/",
            start_ms: 0,
            input,
        }
        .encode();
        if let Some(rec) = self.relay.recorder() {
            file.extend(rec.take());
        }
        let rec = recording::read(&file).map_err(|e| format!("recording unreadable: {e:?}"))?;
        ensure!(rec.complete, "recording has a cut-off record");
        let side = |dir| -> Vec<u8> {
            rec.records
                .iter()
                .filter(|r| r.dir == dir)
                .flat_map(|r| r.data.iter().copied())
                .collect()
        };
        let (down, up) = (side(recording::TO_CLIENT), side(recording::FROM_CLIENT));
        ensure!(
            down.starts_with(&self.client.got),
            "the client got bytes the recording does not have ({})",
            diff(&self.client.got, &down)
        );
        if input {
            ensure!(
                self.client.sent.starts_with(&up),
                "recorded input the client did not send in that order ({})",
                diff(&up, &self.client.sent)
            );
            if self.rfb.is_none() {
                ensure!(
                    up.starts_with(&self.target.got),
                    "the target got bytes the recorded input does not have ({})",
                    diff(&self.target.got, &up)
                );
            }
        } else {
            ensure!(
                up.is_empty(),
                "input recorded without websockify_record_input"
            );
        }
        Ok(())
    }

    /// What the client got from the target: with RFB, behind the gate's handshake, which
    /// comes first and whole.
    fn down_payload(&self) -> Result<&[u8], String> {
        let got = &self.client.got;
        if self.rfb.is_none() {
            return Ok(got);
        }
        let n = got.len().min(GREET.len());
        ensure!(
            got[..n] == GREET[..n],
            "the client's RFB handshake is wrong ({})",
            diff(&got[..n], GREET)
        );
        Ok(&got[n..])
    }

    /// The promises of a finished session.
    fn finish(&mut self, end: End) -> Result<(), String> {
        // The sockets close after their buffered bytes: both peers read what is left.
        if !self.client.reset {
            let rest: Vec<u8> = self.r2c.data.drain(..).collect();
            self.client.receive(&rest)?;
        }
        if !self.target.reset {
            self.target.got.extend(self.r2t.data.drain(..));
        }
        self.check()?;
        self.check_recording()?;
        let c = &self.client;
        let t = &self.target;
        let clean = end.close == Close::Clean;
        if clean && !c.reset {
            match (c.got_close, end.code) {
                (Some(got), code) => {
                    ensure!(got == code, "client got close {got:?}, end says {code:?}")
                }
                (None, code) => ensure!(
                    end.cause == Cause::Client && code.is_none(),
                    "clean end {end:?} without a close frame to the client"
                ),
            }
        }
        match end.cause {
            Cause::TargetEof => {
                ensure!(
                    t.end == TargetEnd::Eof && t.ended,
                    "target EOF that did not happen"
                );
                ensure!(
                    end.code == Some(CLOSE_NORMAL),
                    "target EOF ends with {:?}",
                    end.code
                );
                let got = self.down_payload()?.len();
                if clean && !c.reset {
                    ensure!(
                        got == t.sent,
                        "target closed after {} bytes, client got {got}",
                        t.sent,
                    );
                }
            }
            Cause::Client => {
                if let ClientEnd::Close(sent) = c.end {
                    ensure!(
                        end.code == sent,
                        "client closed with {sent:?}, the echo was {:?}",
                        end.code
                    );
                }
                // A target that reset discards what was in its socket, unread by it.
                if matches!(c.end, ClientEnd::Close(_)) && clean && !self.target_fault && !t.reset {
                    ensure!(
                        t.got.len() == c.expect_up.len(),
                        "client closed after {} payload bytes, target got {}",
                        c.expect_up.len(),
                        t.got.len()
                    );
                }
            }
            Cause::ProtocolError => match c.end {
                ClientEnd::Violation(v) => ensure!(
                    end.code == Some(v.code()),
                    "violation {v:?} ended with {:?}",
                    end.code
                ),
                other => return Err(format!("protocol error without a violation ({other:?})")),
            },
            Cause::Idle => {
                ensure!(
                    end.code == Some(CLOSE_GOING_AWAY),
                    "idle end with {:?}",
                    end.code
                );
            }
            Cause::TargetError => {
                ensure!(t.reset, "target error without a target fault");
                ensure!(
                    end.code == Some(CLOSE_INTERNAL_ERROR),
                    "target error with {:?}",
                    end.code
                );
            }
            Cause::SendTimeout => {}
            Cause::Shutdown => {
                ensure!(
                    self.shutdown_at.is_some(),
                    "shutdown without nginx ending the session"
                );
                ensure!(
                    c.got_close.is_none() || c.got_close == Some(Some(CLOSE_GOING_AWAY)),
                    "shutdown sent close {:?}",
                    c.got_close
                );
            }
            Cause::Lifetime => {
                let lifetime = self.cfg.lifetime.unwrap_or(Msec::MAX);
                ensure!(
                    self.expired_at >= Some(lifetime),
                    "lifetime end before {lifetime} ms"
                );
                ensure!(
                    end.code == Some(CLOSE_EXPIRED),
                    "lifetime end with {:?}",
                    end.code
                );
            }
            Cause::Internal => return Err("a local failure the simulation never makes".into()),
            Cause::Revoked => {
                ensure!(self.revoked, "revoked end without a revoke");
                ensure!(
                    end.code == Some(CLOSE_REVOKED),
                    "revoked end with {:?}",
                    end.code
                );
            }
        }
        let stats = self.relay.stats();
        let up = t.got.len() as u64;
        ensure!(
            stats.from_client == up || t.reset && stats.from_client >= up,
            "from_client {} but the target got {up}",
            stats.from_client
        );
        let down = self.down_payload()?.len() as u64;
        let delivered = clean && c.got_close.is_some() && !c.reset;
        ensure!(
            stats.to_client == down || !delivered && stats.to_client >= down,
            "to_client {} but the client got {down} payload bytes",
            stats.to_client
        );
        ensure!(
            stats.frames_from_client <= c.frames_sent,
            "{} frames counted, the client sent {}",
            stats.frames_from_client,
            c.frames_sent
        );
        ensure!(
            c.pongs_matched <= c.pings_sent.len(),
            "more pongs than pings"
        );
        Ok(())
    }
}

fn check_note(note: Note, clock: &Clock, cfg: &Config) -> Result<(), String> {
    let now = clock.now;
    match note {
        Note::ClientTimedOut => ensure!(
            now - clock.client_progress_at >= cfg.send_timeout,
            "client send timeout {} ms after progress (timeout {})",
            now - clock.client_progress_at,
            cfg.send_timeout
        ),
        Note::TargetSendTimedOut => ensure!(
            now - clock.target_progress_at >= cfg.send_timeout,
            "target send timeout {} ms after progress (timeout {})",
            now - clock.target_progress_at,
            cfg.send_timeout
        ),
        Note::Idle(ms) => ensure!(
            ms == cfg.read_timeout && now - clock.data_at >= cfg.read_timeout,
            "idle timeout {} ms after data (timeout {})",
            now - clock.data_at,
            cfg.read_timeout
        ),
        _ => {}
    }
    Ok(())
}

fn recv(dice: &mut Dice, pipe: &mut Pipe, reset: bool, buf: &mut [u8]) -> Io {
    if reset {
        return Io::Error;
    }
    if pipe.data.is_empty() {
        return if pipe.eof { Io::Eof } else { Io::Again };
    }
    let max = buf.len().min(pipe.data.len());
    let n = if dice.percent(50) {
        max
    } else {
        dice.range(1, max as u64) as usize
    };
    for (dst, src) in buf.iter_mut().zip(pipe.data.drain(..n)) {
        *dst = src;
    }
    Io::Done(n)
}

fn send(dice: &mut Dice, pipe: &mut Pipe, reset: bool, bytes: &[u8]) -> Io {
    if reset {
        return Io::Error;
    }
    let max = pipe.space().min(bytes.len());
    // A TLS layer may also say would-block with room in the socket.
    if max == 0 || dice.percent(3) {
        return Io::Again;
    }
    let n = if dice.percent(50) {
        max
    } else {
        dice.range(1, max as u64) as usize
    };
    pipe.data.extend(&bytes[..n]);
    Io::Done(n)
}

fn brief(action: &Action) -> String {
    match action {
        Action::RecvClient(b) => format!("RecvClient({})", b.len()),
        Action::RecvTarget(b) => format!("RecvTarget({})", b.len()),
        Action::SendClient(b) => format!("SendClient({})", b.len()),
        Action::SendTarget(b) => format!("SendTarget({})", b.len()),
        other => format!("{other:?}"),
    }
}

fn diff(got: &[u8], want: &[u8]) -> String {
    let at = got.iter().zip(want).take_while(|(a, b)| a == b).count();
    format!(
        "got {}, expected {}, first difference at {at}",
        got.len(),
        want.len()
    )
}

/// What the gate says to a 3.8 client that picks None.
const GREET: &[u8] = b"RFB 003.008\n\x01\x01\0\0\0\0";

impl Client {
    /// The script becomes an RFB client's: its version, None, ClientInit, then random
    /// messages cut into WebSocket messages anywhere; the target must get ClientInit
    /// (shared when view-only) and every message, input left out when view-only.
    fn rfb_script(&mut self, dice: &mut Dice, view_only: bool) {
        let shared = dice.pick(&[0u8, 1]);
        let mut stream = Vec::new();
        self.expect_up = vec![if view_only { 1 } else { shared }];
        for _ in 0..dice.range(0, 40) {
            let (msg, input) = rfb_message(dice);
            stream.extend_from_slice(&msg);
            if !(view_only && input) {
                self.expect_up.extend_from_slice(&msg);
            }
        }
        let mut script: VecDeque<Step> = [b"RFB 003.008\n".to_vec(), vec![1], vec![shared]]
            .into_iter()
            .map(Step::Data)
            .collect();
        while !stream.is_empty() {
            let n = (dice.range(1, 3000) as usize).min(stream.len());
            script.push_back(Step::Data(stream.drain(..n).collect()));
            if dice.percent(10) {
                script.push_back(Step::Ping(dice.blob(20)));
            }
        }
        self.script = script;
        self.rfb = true;
    }

    fn new(dice: &mut Dice, mode: Mode, heartbeat: bool) -> Self {
        let mut script = VecDeque::new();
        for _ in 0..dice.range(0, 12) {
            script.push_back(match dice.below(10) {
                0 => Step::Ping(dice.blob(125)),
                1 => Step::PingAwait(dice.blob(20)),
                2 => Step::Pong,
                _ => {
                    let n = if dice.percent(10) {
                        dice.range(0, 200_000)
                    } else {
                        dice.range(0, 3000)
                    };
                    Step::Data(dice.bytes(n as usize))
                }
            });
        }
        let mut violations = vec![
            Violation::Unmasked,
            Violation::Reserved,
            Violation::Opcode,
            Violation::LongPing,
            Violation::FragmentedPing,
            Violation::Continuation,
            Violation::CloseCode,
            Violation::CloseReason,
        ];
        if mode == Mode::Base64 {
            violations.extend([Violation::BinaryInBase64, Violation::BadBase64]);
        }
        let end = match dice.below(10) {
            0..=3 => {
                ClientEnd::Close(dice.pick(&[Some(1000), Some(1001), Some(3000), Some(4999), None]))
            }
            4 => ClientEnd::Eof,
            5 => ClientEnd::Reset,
            6 => ClientEnd::Violation(dice.pick(&violations)),
            _ => ClientEnd::Open,
        };
        Client {
            mode,
            out: VecDeque::new(),
            script,
            end,
            ended: false,
            reset: false,
            reading: dice.percent(90),
            answers_pings: dice.percent(70),
            heartbeat,
            expect_up: Vec::new(),
            rfb: false,
            sent: Vec::new(),
            inbox: Vec::new(),
            got: Vec::new(),
            got_close: None,
            frames: 0,
            frames_sent: 0,
            wire: 0,
            headers: Vec::new(),
            end_frame: None,
            pings_sent: Vec::new(),
            pongs_matched: 0,
            awaiting_pong: None,
        }
    }

    /// Moves the next scripted frames (and the ending frame) onto the wire queue.
    fn produce(&mut self, dice: &mut Dice) {
        while self.out.len() < 70_000 && self.awaiting_pong.is_none() {
            let Some(step) = self.script.pop_front() else {
                if !self.ended && self.out.is_empty() {
                    self.end_frames(dice);
                }
                return;
            };
            match step {
                Step::Data(payload) => self.message(dice, &payload),
                Step::Ping(p) => {
                    self.frame(dice, true, 0, OP_PING, &p, true);
                    self.pings_sent.push(p);
                }
                Step::PingAwait(p) => {
                    self.frame(dice, true, 0, OP_PING, &p, true);
                    self.pings_sent.push(p.clone());
                    self.awaiting_pong = Some(p);
                }
                Step::Pong => self.frame(dice, true, 0, OP_PONG, b"unsolicited", true),
            }
        }
    }

    fn end_frames(&mut self, dice: &mut Dice) {
        match self.end {
            ClientEnd::Close(code) => {
                let body = code.map(|c| c.to_be_bytes().to_vec()).unwrap_or_default();
                self.end_frame = Some(self.headers.len());
                self.frame(dice, true, 0, OP_CLOSE, &body, true);
            }
            ClientEnd::Violation(v) => {
                let (fin, rsv, op, payload, masked): (bool, u8, u8, Vec<u8>, bool) = match v {
                    Violation::Unmasked => (true, 0, OP_TEXT, b"abc".to_vec(), false),
                    Violation::Reserved => (true, 0x40, OP_BINARY, b"abc".to_vec(), true),
                    Violation::Opcode => (true, 0, 3, Vec::new(), true),
                    Violation::LongPing => (true, 0, OP_PING, vec![0; 126], true),
                    Violation::FragmentedPing => (false, 0, OP_PING, Vec::new(), true),
                    Violation::Continuation => (true, 0, OP_CONT, b"x".to_vec(), true),
                    Violation::CloseCode => {
                        (true, 0, OP_CLOSE, 1005u16.to_be_bytes().to_vec(), true)
                    }
                    Violation::CloseReason => (true, 0, OP_CLOSE, vec![3, 232, 0xff, 0xfe], true),
                    Violation::BinaryInBase64 => (true, 0, OP_BINARY, b"AAAA".to_vec(), true),
                    Violation::BadBase64 => (true, 0, OP_TEXT, b"A*AA".to_vec(), true),
                };
                self.end_frame = Some(self.headers.len());
                self.frame(dice, fin, rsv, op, &payload, masked);
                // These are refused only for their payload, after the header counted.
                let header_ok = matches!(
                    v,
                    Violation::CloseCode | Violation::CloseReason | Violation::BadBase64
                );
                if let Some(h) = self.headers.last_mut() {
                    h.1 = header_ok;
                }
            }
            ClientEnd::Eof | ClientEnd::Reset | ClientEnd::Open => {}
        }
    }

    /// One data message, fragmented at random, control frames between the fragments.
    fn message(&mut self, dice: &mut Dice, payload: &[u8]) {
        let (op, wire) = match self.mode {
            Mode::Binary => (dice.pick(&[OP_BINARY, OP_TEXT]), payload.to_vec()),
            Mode::Base64 => (OP_TEXT, base64(payload).into_bytes()),
        };
        if !self.rfb {
            self.expect_up.extend_from_slice(payload);
        }
        self.sent.extend_from_slice(payload);
        let parts = dice.range(1, 4) as usize;
        let mut cuts: Vec<usize> = (1..parts)
            .map(|_| dice.below(wire.len() as u64 + 1) as usize)
            .collect();
        cuts.sort_unstable();
        cuts.push(wire.len());
        let mut from = 0;
        for (i, &to) in cuts.iter().enumerate() {
            let last = i + 1 == cuts.len();
            let opcode = if i == 0 { op } else { OP_CONT };
            self.frame(dice, last, 0, opcode, &wire[from..to], true);
            from = to;
            if !last && dice.percent(20) {
                let p = dice.blob(10);
                self.frame(dice, true, 0, OP_PING, &p, true);
                self.pings_sent.push(p);
            }
        }
    }

    fn frame(
        &mut self,
        dice: &mut Dice,
        fin: bool,
        rsv: u8,
        opcode: u8,
        payload: &[u8],
        masked: bool,
    ) {
        self.frames_sent += 1;
        let start = self.out.len();
        self.out.push_back(u8::from(fin) << 7 | rsv | opcode);
        let m = if masked { 0x80 } else { 0 };
        // Data frames now and then with a longer length encoding than needed (tolerated);
        // control frames always with the shortest.
        let n = payload.len();
        let short = opcode & 8 != 0 || dice.percent(90);
        match n {
            0..=125 if short => self.out.push_back(m | n as u8),
            0..=0xffff if short || dice.percent(90) => {
                self.out.push_back(m | 126);
                self.out.extend((n as u16).to_be_bytes());
            }
            _ => {
                self.out.push_back(m | 127);
                self.out.extend((n as u64).to_be_bytes());
            }
        }
        let key: [u8; 4] = if masked {
            (dice.0.next() as u32).to_ne_bytes()
        } else {
            [0; 4]
        };
        if masked {
            self.out.extend(key);
        }
        let header = (self.out.len() - start) as u64;
        self.headers.push((self.wire + header, true));
        self.out
            .extend(payload.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
        self.wire += (self.out.len() - start) as u64;
    }

    /// Parses server frames as a browser does, strictly.
    fn receive(&mut self, bytes: &[u8]) -> Result<(), String> {
        ensure!(
            self.got_close.is_none() || bytes.is_empty(),
            "{} bytes after our close frame",
            bytes.len()
        );
        self.inbox.extend_from_slice(bytes);
        loop {
            let b = &self.inbox;
            if b.len() < 2 {
                return Ok(());
            }
            ensure!(
                b[0] & 0xf0 == 0x80,
                "server frame without FIN or with RSV bits: {:#x}",
                b[0]
            );
            ensure!(b[1] & 0x80 == 0, "masked server frame");
            let (len, h) = match b[1] & 0x7f {
                126 if b.len() >= 4 => (usize::from(u16::from_be_bytes([b[2], b[3]])), 4),
                127 if b.len() >= 10 => {
                    let mut l = [0u8; 8];
                    l.copy_from_slice(&b[2..10]);
                    (u64::from_be_bytes(l) as usize, 10)
                }
                126 | 127 => return Ok(()),
                n => (usize::from(n), 2),
            };
            if b.len() < h + len {
                return Ok(());
            }
            let op = b[0] & 0x0f;
            let payload: Vec<u8> = b[h..h + len].to_vec();
            self.inbox.drain(..h + len);
            self.frames += 1;
            ensure!(self.got_close.is_none(), "a frame after our close frame");
            match (op, self.mode) {
                (OP_BINARY, Mode::Binary) => self.got.extend_from_slice(&payload),
                (OP_TEXT, Mode::Base64) => match unbase64(&payload) {
                    Some(raw) => self.got.extend_from_slice(&raw),
                    None => return Err("server text frame is not base64".into()),
                },
                (OP_PING, _) => {
                    ensure!(
                        self.heartbeat,
                        "a heartbeat ping with websockify_ping_interval off"
                    );
                    ensure!(
                        payload == b"websockify",
                        "heartbeat ping payload {payload:?}"
                    );
                    if self.answers_pings && !self.ended {
                        // The mask and length encoding of a reply need no schedule choice.
                        let mut fixed = Seeded(payload.len() as u64);
                        self.frame(&mut Dice(&mut fixed), true, 0, OP_PONG, &payload, true);
                    }
                }
                (OP_PONG, _) => {
                    // Pongs answer pings in order; a later ping may supersede earlier ones.
                    let Some(i) = self.pings_sent[self.pongs_matched..]
                        .iter()
                        .position(|p| *p == payload)
                    else {
                        return Err(format!("pong {payload:?} answers no ping"));
                    };
                    self.pongs_matched += i + 1;
                    if self.awaiting_pong.as_ref() == Some(&payload) {
                        self.awaiting_pong = None;
                    }
                }
                (OP_CLOSE, _) => {
                    let code = match payload.as_slice() {
                        [] => None,
                        [hi, lo, reason @ ..] => {
                            let code = u16::from_be_bytes([*hi, *lo]);
                            let want: &[u8] = match code {
                                CLOSE_REVOKED => b"revoked",
                                CLOSE_EXPIRED => b"expired",
                                _ => b"",
                            };
                            ensure!(reason == want, "close {code} with reason {reason:?}");
                            Some(code)
                        }
                        other => return Err(format!("server close body {other:?}")),
                    };
                    self.got_close = Some(code);
                }
                (op, mode) => {
                    return Err(format!("server frame with opcode {op} in {mode:?} mode"))
                }
            }
        }
    }
}

/// One client-to-server RFB message, and whether it is input.
fn rfb_message(dice: &mut Dice) -> (Vec<u8>, bool) {
    let mut m = vec![];
    let input = match dice.below(10) {
        0 => {
            m.push(0);
            m.extend(dice.bytes(19));
            false
        }
        1 => {
            let n = dice.below(6) as u16;
            m.extend([2, 0]);
            m.extend(n.to_be_bytes());
            m.extend(dice.bytes(4 * n as usize));
            false
        }
        2 | 3 => {
            m.push(3);
            m.extend(dice.bytes(9));
            false
        }
        4 => {
            m.push(4);
            m.extend(dice.bytes(7));
            true
        }
        5 => {
            m.push(5);
            m.extend(dice.bytes(5));
            true
        }
        6 => {
            let n = dice.below(300) as i32;
            let len = if dice.percent(30) { -n } else { n };
            m.extend([6, 0, 0, 0]);
            m.extend(len.to_be_bytes());
            m.extend(dice.bytes(n as usize));
            true
        }
        7 => {
            let n = dice.below(64) as u8;
            m.extend([248, 0, 0, 0]);
            m.extend(dice.bytes(4));
            m.push(n);
            m.extend(dice.bytes(usize::from(n)));
            false
        }
        8 => {
            let n = dice.below(3) as u8;
            m.extend([251, 0]);
            m.extend(dice.bytes(4));
            m.extend([n, 0]);
            m.extend(dice.bytes(16 * usize::from(n)));
            true
        }
        _ => {
            m.extend([250, 0, 1, 2]);
            true
        }
    };
    (m, input)
}

impl Target {
    fn new(dice: &mut Dice) -> Self {
        let n = match dice.below(10) {
            0 => 0,
            1..=2 => dice.range(100_000, 400_000),
            _ => dice.range(1, 20_000),
        };
        Target {
            stream: dice.bytes(n as usize),
            sent: 0,
            end: dice.pick(&[
                TargetEnd::Eof,
                TargetEnd::Eof,
                TargetEnd::Reset,
                TargetEnd::Open,
                TargetEnd::Open,
            ]),
            ended: false,
            reset: false,
            reading: dice.percent(90),
            got: Vec::new(),
        }
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// RFC 4648 base64 with padding, written out here so the simulation does not share the
/// relay's engine.
fn base64(raw: &[u8]) -> String {
    let mut s = String::new();
    for chunk in raw.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(B64[(v >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn unbase64(text: &[u8]) -> Option<Vec<u8>> {
    if text.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::new();
    for q in text.chunks(4) {
        let mut v = 0u32;
        let mut pad = 0;
        for &c in q {
            let d = if c == b'=' {
                pad += 1;
                0
            } else {
                ensure_some(pad == 0)?;
                B64.iter().position(|&x| x == c)? as u32
            };
            v = v << 6 | d;
        }
        let bytes = v.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

fn ensure_some(ok: bool) -> Option<()> {
    ok.then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeds per `cargo test` run (more with SIM_SEEDS=n; one with SIM_SEED=n).
    const SEEDS: u64 = 3000;

    #[test]
    fn seeded_schedules_keep_every_promise() {
        let (first, count) = match std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
            Some(seed) => (seed, 1),
            None => (
                1,
                std::env::var("SIM_SEEDS")
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(SEEDS),
            ),
        };
        let (mut steps, mut up, mut down) = (0, 0, 0);
        let mut causes = std::collections::BTreeMap::new();
        for seed in first..first + count {
            match run(&mut Seeded(seed)) {
                Ok(r) => {
                    steps += r.steps;
                    up += r.up_bytes;
                    down += r.down_bytes;
                    *causes.entry(format!("{:?}", r.cause)).or_insert(0) += 1;
                }
                Err(e) => panic!(
                    "seed {seed} failed (replay: SIM_SEED={seed} cargo test --lib sim):\n{e}"
                ),
            }
        }
        eprintln!(
            "{count} schedules, {steps} steps, {up} bytes up, {down} bytes down; ends {causes:?}"
        );
    }

    #[test]
    fn fuzzer_bytes_replay_and_end() {
        let data = b"any bytes at all, then the seeded tail";
        let a = run(&mut Bytes::new(data)).map(|r| r.steps);
        let b = run(&mut Bytes::new(data)).map(|r| r.steps);
        assert_eq!(a, b, "the same bytes give the same schedule");
        assert!(run(&mut Bytes::new(&[])).is_ok());
    }

    #[test]
    fn base64_helpers_round_trip() {
        for n in 0..10 {
            let raw: Vec<u8> = (0..n).map(|i: u32| (i * 37) as u8).collect();
            assert_eq!(unbase64(base64(&raw).as_bytes()), Some(raw));
        }
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"fo"), "Zm8=");
    }
}
