//! The relay as a state machine that never touches a socket (sans-IO, in the way of
//! quinn-proto and rustls). It owns both buffers, the frame decoder and framer, the control
//! frames waiting for a frame boundary and every deadline. The glue asks [`Relay::poll`]
//! what to do, performs it (a recv into the slice given, a send of the bytes given, a
//! wait), reports the result with the matching method, and polls again until told to wait
//! or to finish. All decisions are here; `sim.rs` drives this through random schedules.
//!
//! Client bytes are decoded in place: payload collects at the front of the up buffer,
//! later input is read into its free tail. Target bytes are read behind room for a frame
//! header and framed in place. A side is read only while the other can take what was
//! read, so a slow peer stops its partner and memory stays bounded by the two buffers.

#![forbid(unsafe_code)]

use std::fmt;
use std::ops::Range;

use crate::protocol::codec::{self, ControlFrame, Decoder, Event, Framer, Mode, ProtocolError};
use crate::protocol::recording::Recorder;
use crate::relay::buffer::Buf;
use crate::relay::gate::{Gate, Refusal};

/// Milliseconds on nginx's clock.
pub type Msec = u64;

pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// The browser broke RFB (the gateway's handshake, or the view-only filter).
pub const CLOSE_POLICY: u16 = 1008;
pub const CLOSE_INTERNAL_ERROR: u16 = 1011;
/// The server ended the session (`DELETE` on the status location), reason "revoked".
pub const CLOSE_REVOKED: u16 = 4000;
/// `websockify_session_timeout` passed, reason "expired".
pub const CLOSE_EXPIRED: u16 = 4001;

#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Per-direction buffer.
    pub buffer_size: usize,
    /// A session without data either way for this long ends with 1001.
    pub read_timeout: Msec,
    /// A write that makes no progress for this long ends the session.
    pub send_timeout: Msec,
    /// Heartbeat pings to the client; 0 = off.
    pub ping_interval: Msec,
    /// The session ends this long after the 101 (`websockify_session_timeout`).
    pub lifetime: Option<Msec>,
}

/// Whether each socket may be read or written now (nginx's `ev->ready`). A stale `true`
/// is harmless: the recv or send then reports `Again`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    pub client_read: bool,
    pub client_write: bool,
    pub target_read: bool,
    pub target_write: bool,
}

/// What a recv, a send or the header flush gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Io {
    /// This many bytes moved.
    Done(usize),
    /// Would block.
    Again,
    /// End of stream (reads).
    Eof,
    Error,
}

#[derive(Debug)]
pub enum Action<'a> {
    /// Write this line to the error log, then poll again.
    Log(Note),
    /// Push the queued 101 response out, then report with `header_flushed`.
    FlushHeader,
    /// Read from the client into this slice, then `client_read`.
    RecvClient(&'a mut [u8]),
    /// Read from the target into this slice, then `target_read`.
    RecvTarget(&'a mut [u8]),
    /// Send these bytes to the client, then `client_sent`. After `Again` the next
    /// `SendClient` starts at the same address and is not shorter (TLS retries need this).
    SendClient(&'a [u8]),
    /// Send these bytes to the target, then `target_sent`; the same retry rule holds.
    SendTarget(&'a [u8]),
    /// Nothing can move: wait for a socket event or until the deadline (nginx's clock).
    Wait(Option<Msec>),
    /// The session is over.
    Finish(End),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

/// Something the error log must say, once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    ClientClosed,
    ClientTimedOut,
    TargetClosed,
    TargetReadFailed,
    TargetSendFailed,
    TargetSendTimedOut,
    Idle(Msec),
    ClosingTimedOut,
    Protocol(ProtocolError),
    GoingAway,
    Expired(Msec),
    Revoked,
    Rfb(Refusal),
}

impl Note {
    /// Client-side events are info, as nginx logs a client that goes away; target
    /// failures are errors, like an upstream's.
    pub fn level(self) -> Level {
        match self {
            Self::TargetReadFailed | Self::TargetSendFailed | Self::TargetSendTimedOut => {
                Level::Error
            }
            _ => Level::Info,
        }
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClientClosed => f.write_str("client closed the connection without a close frame"),
            Self::ClientTimedOut => f.write_str("client timed out"),
            Self::TargetClosed => f.write_str("target closed the connection"),
            Self::TargetReadFailed => f.write_str("reading from the target failed"),
            Self::TargetSendFailed => f.write_str("sending to the target failed"),
            Self::TargetSendTimedOut => f.write_str("sending to the target timed out"),
            Self::Idle(ms) => write!(
                f,
                "session timed out after {ms} ms without data, closing with {CLOSE_GOING_AWAY}"
            ),
            Self::ClosingTimedOut => write!(f, "timed out while closing"),
            Self::Protocol(e) => write!(f, "closing with {}: {e}", e.close_code()),
            Self::GoingAway => write!(f, "session ended by nginx, closing with {CLOSE_GOING_AWAY}"),
            Self::Expired(ms) => write!(
                f,
                "session lifetime of {ms} ms reached, closing with {CLOSE_EXPIRED}"
            ),
            Self::Revoked => write!(f, "session revoked, closing with {CLOSE_REVOKED}"),
            Self::Rfb(why) => write!(f, "closing with {CLOSE_POLICY}: {why}"),
        }
    }
}

/// Why a session ended: the first reason it began to close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The client closed (close frame, EOF or a broken connection).
    Client,
    TargetEof,
    TargetError,
    Idle,
    SendTimeout,
    ProtocolError,
    /// nginx ended the session (worker shutdown).
    Shutdown,
    /// `websockify_session_timeout`.
    Lifetime,
    /// Ended from the server through the status location.
    Revoked,
    /// A local failure in nginx (out of memory, event registration).
    Internal,
}

impl Cause {
    pub const ALL: [Cause; 10] = [
        Cause::Client,
        Cause::TargetEof,
        Cause::TargetError,
        Cause::Idle,
        Cause::SendTimeout,
        Cause::ProtocolError,
        Cause::Shutdown,
        Cause::Lifetime,
        Cause::Revoked,
        Cause::Internal,
    ];

    /// Position in `ALL`.
    pub fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|&c| c == self)
            .unwrap_or_default()
    }

    /// The word `$websockify_close_cause` and the metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::TargetEof => "target_eof",
            Self::TargetError => "target_error",
            Self::Idle => "idle",
            Self::SendTimeout => "send_timeout",
            Self::ProtocolError => "protocol_error",
            Self::Shutdown => "shutdown",
            Self::Lifetime => "lifetime",
            Self::Revoked => "revoked",
            Self::Internal => "internal",
        }
    }
}

/// What a session moved so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Payload bytes from the client written to the target.
    pub from_client: u64,
    /// Payload bytes from the target framed for the client.
    pub to_client: u64,
    /// Frames the client sent (data and control).
    pub frames_from_client: u64,
}

/// How the client connection goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// Closing handshake done (or the client left): close it with a lingering close.
    /// Also after the client's own close: a pong to a heartbeat ping that crossed it may
    /// still arrive, and unread bytes at close() would reset the connection and discard
    /// our close reply (the browser would see 1006).
    Clean,
    /// Broken, or not reading: drop it.
    Drop { timed_out: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct End {
    pub cause: Cause,
    /// The code of our close frame (the client's own when we echoed it); None when the
    /// client left without a close handshake or echoed an empty close.
    pub code: Option<u16>,
    pub close: Close,
}

/// A control frame on its way to the client; its bytes stay here until all are sent.
struct Outgoing {
    frame: ControlFrame,
    sent: usize,
    is_close: bool,
}

#[derive(Clone, Copy)]
enum TargetRead {
    /// Into the read window of an empty down buffer.
    Fresh,
    /// Behind frames still going to the client.
    Behind,
}

/// What to do next, decided before any buffer is borrowed for the action.
enum Plan {
    FlushHeader,
    RecvClient,
    RecvTarget(TargetRead, Range<usize>),
    SendData,
    SendControl,
    SendTarget,
}

/// The side whose last write would block: the next write there repeats it.
#[derive(Clone, Copy, Default)]
struct Blocked {
    client_read: bool,
    client_write: bool,
    target_read: bool,
    target_write: bool,
}

pub struct Relay {
    cfg: Config,
    decoder: Decoder,
    framer: Framer,
    /// Client to target: payload in `up.pos..up.last`, input read up to `up_end`; the
    /// payload before `up_clear` may go to the target (the RFB gate judges the rest).
    up: Buf,
    up_end: usize,
    up_clear: usize,
    /// The RFB layer when the gateway logged in to the server; None: a byte pipe.
    gate: Option<Gate>,
    /// `websockify_record`: what the client received (and sent) goes here.
    rec: Option<Recorder>,
    /// The recording's writes are behind: nothing more is read until they catch up.
    rec_behind: bool,
    /// Target to client: frames in `down.pos..down.last`.
    down: Buf,
    /// The 101 is still queued in nginx: nothing else goes to the client before it.
    header: bool,
    /// Control frames wait for a frame boundary; a close wins over a pong, a pong over a
    /// heartbeat ping.
    close: Option<ControlFrame>,
    pong: Option<ControlFrame>,
    ping: Option<ControlFrame>,
    out: Option<Outgoing>,
    /// The action whose result is awaited, per kind.
    target_read: Option<(TargetRead, Range<usize>)>,
    client_send: Option<bool>, // Some(true) for a control frame
    /// Sides that said `Again` in this run (a stale ready flag must not spin the loop).
    blocked: Blocked,
    client_done: bool,
    client_sent_close: bool,
    target_done: bool,
    target_failed: bool,
    close_sent: bool,
    /// The first reason to end, and the code of the close frame we queued.
    cause: Option<Cause>,
    code: Option<u16>,
    note: Option<Note>,
    ended: Option<End>,
    /// Alternates which direction goes first.
    down_first: bool,
    active_at: Msec,
    next_ping: Option<Msec>,
    /// When writes to a side started waiting without progress.
    client_stall: Option<Msec>,
    target_stall: Option<Msec>,
    expires: Option<Msec>,
    revoked: bool,
    stats: Stats,
}

impl Relay {
    /// A session whose 101 was just produced (`header`: it is still queued in nginx).
    pub fn new(cfg: Config, mode: Mode, header: bool, now: Msec) -> Self {
        Self {
            cfg,
            decoder: Decoder::new(mode),
            framer: Framer::new(mode),
            up: Buf::default(),
            up_end: 0,
            up_clear: 0,
            gate: None,
            rec: None,
            rec_behind: false,
            down: Buf::default(),
            header,
            close: None,
            pong: None,
            ping: None,
            out: None,
            target_read: None,
            client_send: None,
            blocked: Blocked::default(),
            client_done: false,
            client_sent_close: false,
            target_done: false,
            target_failed: false,
            close_sent: false,
            cause: None,
            code: None,
            note: None,
            ended: None,
            down_first: false,
            active_at: now,
            next_ping: (cfg.ping_interval > 0).then(|| now.saturating_add(cfg.ping_interval)),
            client_stall: None,
            target_stall: None,
            expires: cfg.lifetime.map(|ms| now.saturating_add(ms)),
            revoked: false,
            stats: Stats::default(),
        }
    }

    /// The gateway logged in to the VNC server: it speaks the server half of the RFB
    /// handshake to the browser (and filters its input when `view_only`). Called before
    /// any client payload.
    pub fn speak_rfb(&mut self, view_only: bool) {
        self.gate = Some(Gate::new(view_only));
    }

    /// Records the session from now on.
    pub fn record(&mut self, rec: Recorder) {
        self.rec = Some(rec);
    }

    /// Records waiting for the file.
    pub fn recorder(&mut self) -> Option<&mut Recorder> {
        self.rec.as_mut()
    }

    /// The recording's writes cannot take more now (`true`) or can again: reading either
    /// side waits meanwhile, so memory stays bounded and nothing goes unrecorded.
    pub fn record_behind(&mut self, behind: bool) {
        self.rec_behind = behind;
    }

    pub fn is_record_behind(&self) -> bool {
        self.rec_behind
    }

    /// Writing the recording failed: with `required` the session ends (close 1011, cause
    /// `internal`), without it the session goes on unrecorded.
    pub fn record_failed(&mut self, required: bool) {
        self.rec = None;
        self.rec_behind = false;
        if required {
            self.client_done = true;
            self.target_done = true;
            self.begin_close(Cause::Internal, Some(CLOSE_INTERNAL_ERROR));
        }
    }

    /// The desktop name from the server's ServerInit, once relayed.
    pub fn desktop(&self) -> Option<&str> {
        self.gate.as_ref().and_then(Gate::desktop)
    }

    /// What the session moved so far.
    pub fn stats(&self) -> Stats {
        Stats {
            frames_from_client: self.decoder.frames(),
            ..self.stats
        }
    }

    /// The session is to end from the server side; the next `poll` starts the close.
    pub fn revoke(&mut self) {
        self.revoked = true;
    }

    /// Frames the client sent right behind its handshake.
    pub fn pipelined(&mut self, bytes: &[u8]) {
        let size = self.cfg.buffer_size.max(bytes.len());
        if !self.up.ensure(size) {
            self.fail_client();
            return;
        }
        if let Some(dst) = self.up.mem(size).get_mut(..bytes.len()) {
            dst.copy_from_slice(bytes);
            self.up_end = bytes.len();
            self.decode(0);
        }
    }

    /// The next thing to do.
    pub fn poll(&mut self, ready: Ready, now: Msec) -> Action<'_> {
        if let Some(rec) = self.rec.as_mut() {
            rec.at(now);
        }
        if let Some(note) = self.note.take() {
            return Action::Log(note);
        }
        if let Some(end) = self.ended {
            return Action::Finish(end);
        }
        self.expire(now);
        if let Some(note) = self.note.take() {
            return Action::Log(note);
        }
        if let Some(end) = self.ended.or_else(|| self.over()) {
            self.ended = Some(end);
            return Action::Finish(end);
        }
        let ready = Ready {
            client_read: ready.client_read && !self.blocked.client_read,
            client_write: ready.client_write && !self.blocked.client_write,
            target_read: ready.target_read && !self.blocked.target_read,
            target_write: ready.target_write && !self.blocked.target_write,
        };
        self.down_first = !self.down_first;
        let plan = if self.down_first {
            self.plan_down(ready).or_else(|| self.plan_up(ready))
        } else {
            self.plan_up(ready).or_else(|| self.plan_down(ready))
        };
        if let Some(end) = self.ended {
            // Out of memory while planning.
            return Action::Finish(end);
        }
        match plan {
            Some(plan) => self.act(plan),
            None => Action::Wait(self.wait(now)),
        }
    }

    pub fn client_read(&mut self, io: Io, now: Msec) {
        match io {
            Io::Done(n) if n > 0 => {
                let inp = self.up_end;
                self.up_end = inp.saturating_add(n).min(self.up.held());
                self.active_at = now;
                self.decode(inp);
            }
            Io::Done(_) | Io::Again => self.blocked.client_read = true,
            Io::Eof => {
                if !self.client_done {
                    self.note = Some(Note::ClientClosed);
                    self.client_done = true;
                    self.begin_end(Cause::Client);
                }
            }
            Io::Error => self.fail_client(),
        }
    }

    pub fn target_read(&mut self, io: Io, now: Msec) {
        let Some((kind, window)) = self.target_read.take() else {
            return;
        };
        match io {
            Io::Done(n) if n > 0 => {
                self.active_at = now;
                let n = n.min(window.len());
                let size = self.cfg.buffer_size;
                let read = window.start..window.start + n;
                let bytes = self.down.mem(size).get(read).unwrap_or_default();
                if let Some(gate) = self.gate.as_mut() {
                    gate.server_bytes(bytes);
                }
                if let Some(rec) = self.rec.as_mut() {
                    rec.to_client(bytes);
                }
                match kind {
                    TargetRead::Fresh => {
                        self.stats.to_client += n as u64;
                        let frame = self.framer.frame(self.down.mem(size), n);
                        self.down.pos = frame.start;
                        self.down.last = frame.end;
                    }
                    TargetRead::Behind => {
                        self.stats.to_client += n as u64;
                        let last = self.down.last;
                        self.down.last = self.framer.frame_tail(self.down.mem(size), last, n);
                    }
                }
            }
            Io::Done(_) | Io::Again => self.blocked.target_read = true,
            Io::Eof => {
                self.note = Some(Note::TargetClosed);
                self.target_done = true;
                self.begin_close(Cause::TargetEof, Some(CLOSE_NORMAL));
            }
            Io::Error => self.fail_target(Note::TargetReadFailed, Cause::TargetError),
        }
    }

    pub fn client_sent(&mut self, io: Io, now: Msec) {
        let Some(control) = self.client_send.take() else {
            return;
        };
        match io {
            Io::Done(n) if n > 0 => {
                self.client_stall = None;
                if control {
                    self.control_sent(n);
                } else {
                    self.down.pos = self.down.pos.saturating_add(n).min(self.down.last);
                    self.active_at = now;
                }
            }
            Io::Done(_) | Io::Again => self.blocked.client_write = true,
            Io::Eof | Io::Error => self.fail_client(),
        }
    }

    pub fn target_sent(&mut self, io: Io, now: Msec) {
        match io {
            Io::Done(n) if n > 0 => {
                let n = n.min(self.up_clear - self.up.pos);
                self.up.pos += n;
                self.stats.from_client += n as u64;
                self.target_stall = None;
                self.active_at = now;
            }
            Io::Done(_) | Io::Again => self.blocked.target_write = true,
            Io::Eof | Io::Error => self.fail_target(Note::TargetSendFailed, Cause::TargetError),
        }
    }

    pub fn header_flushed(&mut self, io: Io) {
        match io {
            Io::Done(_) => {
                self.header = false;
                self.client_stall = None;
            }
            Io::Again => self.blocked.client_write = true,
            Io::Eof | Io::Error => self.fail_client(),
        }
    }

    /// nginx ends a live session itself (worker shutdown): the session is over, with a
    /// close 1001 for one best-effort send when a frame boundary allows it. At a boundary
    /// no write waits for a retry: after `Again` the header, the data or the control frame
    /// stays pending.
    pub fn going_away(&mut self) -> Option<(Note, &[u8])> {
        if self.ended.is_some() {
            return None;
        }
        let at_boundary = !self.header && !self.down.pending() && self.out.is_none();
        let can_send = at_boundary && !self.closing() && !self.client_done;
        self.begin_end(Cause::Shutdown);
        if can_send {
            self.begin_close(Cause::Shutdown, Some(CLOSE_GOING_AWAY));
            self.promote_control();
        }
        self.end_now(Close::Drop { timed_out: false });
        let out = self.out.as_ref().filter(|_| can_send)?;
        Some((Note::GoingAway, out.frame.bytes()))
    }

    /// The glue could not go on (a local failure): the session is over.
    pub fn abort(&mut self) {
        self.begin_end(Cause::Internal);
        self.end_now(Close::Drop { timed_out: false });
    }

    /// How the session ended, once it has.
    pub fn end(&self) -> Option<End> {
        self.ended
    }

    /// Bytes of relay buffers held now.
    #[cfg(any(test, fuzzing))]
    pub fn held(&self) -> usize {
        self.up.held() + self.down.held()
    }

    fn act(&mut self, plan: Plan) -> Action<'_> {
        let size = self.cfg.buffer_size;
        match plan {
            Plan::FlushHeader => Action::FlushHeader,
            Plan::RecvClient => {
                let from = self.up_end;
                Action::RecvClient(self.up.mem(size).get_mut(from..).unwrap_or_default())
            }
            Plan::RecvTarget(kind, window) => {
                self.target_read = Some((kind, window.clone()));
                Action::RecvTarget(self.down.mem(size).get_mut(window).unwrap_or_default())
            }
            Plan::SendData => {
                self.client_send = Some(false);
                Action::SendClient(self.down.ready())
            }
            Plan::SendControl => {
                self.client_send = Some(true);
                let rest = self
                    .out
                    .as_ref()
                    .and_then(|o| o.frame.bytes().get(o.sent..))
                    .unwrap_or_default();
                Action::SendClient(rest)
            }
            Plan::SendTarget => {
                let (pos, clear) = (self.up.pos, self.up_clear);
                Action::SendTarget(self.up.mem(clear).get(pos..).unwrap_or_default())
            }
        }
    }

    /// Client to target: deliver payload, then read more into the free tail.
    fn plan_up(&mut self, ready: Ready) -> Option<Plan> {
        if self.up_sendable() {
            if self.target_failed {
                self.up.pos = self.up_clear;
            } else if ready.target_write {
                return Some(Plan::SendTarget);
            }
        }
        if !self.up_sendable() {
            // All delivered: later input starts at the front again, behind what the RFB
            // gate holds back.
            self.compact_up();
        }
        let size = self.cfg.buffer_size;
        if self.client_done || self.close_sent || !ready.client_read || self.rec_behind {
            // Idle sessions keep no buffer (nginx clears `ready` after a short read).
            if !self.up.pending() {
                self.up.release();
            }
            return None;
        }
        if self.up_end >= size {
            return None;
        }
        if !self.up.ensure(size) {
            self.fail_client();
            return None;
        }
        Some(Plan::RecvClient)
    }

    /// The gate still speaks the handshake to the browser: the server, waiting for
    /// ClientInit, has nothing to say yet and is not read, and nothing it says may pass
    /// the handshake's last bytes.
    fn greeting(&self) -> bool {
        self.gate
            .as_ref()
            .is_some_and(|g| g.greeting() || g.has_output())
    }

    /// Client payload the target may have now.
    fn up_sendable(&self) -> bool {
        self.up.pos < self.up_clear
    }

    /// Moves the payload the gate holds back (a message not complete yet) to the front of
    /// the up buffer. Input behind the payload is always decoded: the decoder keeps a
    /// partial header itself.
    fn compact_up(&mut self) {
        let (pos, last) = (self.up.pos, self.up.last);
        if pos > 0 && last > pos {
            let mem = self.up.mem(last);
            mem.copy_within(pos..mem.len(), 0);
        }
        let held = last.saturating_sub(pos);
        self.up.pos = 0;
        self.up.last = held;
        self.up_end = held;
        self.up_clear = 0;
    }

    /// Target to client: the 101 first, then frames, control frames at frame boundaries.
    fn plan_down(&mut self, ready: Ready) -> Option<Plan> {
        if self.header {
            return ready.client_write.then_some(Plan::FlushHeader);
        }
        if self.down.pending() {
            if ready.client_write {
                return Some(Plan::SendData);
            }
            return self.plan_read_behind(ready);
        }
        let size = self.cfg.buffer_size;
        // Between frames (no control frame half sent); before a queued close, so that an
        // RFB failure reason reaches the browser first.
        if self.out.is_none() && self.gate.as_ref().is_some_and(Gate::has_output) {
            if !self.down.ensure(size) {
                self.fail_client();
                return None;
            }
            self.frame_gate_output();
            return ready.client_write.then_some(Plan::SendData);
        }
        self.promote_control();
        if self.out.is_some() {
            return ready.client_write.then_some(Plan::SendControl);
        }
        if self.target_done
            || self.close_sent
            || !ready.target_read
            || self.greeting()
            || self.rec_behind
        {
            self.down.release();
            return None;
        }
        if !self.down.ensure(size) {
            self.fail_client();
            return None;
        }
        Some(Plan::RecvTarget(
            TargetRead::Fresh,
            self.framer.read_window(size),
        ))
    }

    /// The gate's handshake bytes become a frame for the browser, as target bytes would.
    fn frame_gate_output(&mut self) {
        let size = self.cfg.buffer_size;
        let window = self.framer.read_window(size);
        let Some(gate) = self.gate.as_mut() else {
            return;
        };
        let mem = self.down.mem(size);
        let n = gate.take_output(mem.get_mut(window.clone()).unwrap_or_default());
        if let Some(rec) = self.rec.as_mut() {
            rec.to_client(mem.get(window.start..window.start + n).unwrap_or_default());
        }
        let frame = self.framer.frame(mem, n);
        self.down.pos = frame.start;
        self.down.last = frame.end;
    }

    /// More target bytes behind frames still going to the client, so both sockets stay
    /// busy; not while a control frame waits for the boundary this would push back.
    fn plan_read_behind(&mut self, ready: Ready) -> Option<Plan> {
        let waiting = self.close.is_some() || self.pong.is_some() || self.ping.is_some();
        if waiting
            || self.greeting()
            || self.rec_behind
            || self.target_done
            || self.close_sent
            || !ready.target_read
        {
            return None;
        }
        let window = self
            .framer
            .tail_window(self.down.last, self.cfg.buffer_size)?;
        Some(Plan::RecvTarget(TargetRead::Behind, window))
    }

    /// At a frame boundary: the next queued control frame becomes the outgoing one.
    fn promote_control(&mut self) {
        if self.out.is_some() {
            return;
        }
        if let Some(frame) = self.close.take() {
            self.pong = None;
            self.ping = None;
            self.out = Some(Outgoing {
                frame,
                sent: 0,
                is_close: true,
            });
        } else if let Some(frame) = self.pong.take().or_else(|| self.ping.take()) {
            self.out = Some(Outgoing {
                frame,
                sent: 0,
                is_close: false,
            });
        }
    }

    fn control_sent(&mut self, n: usize) {
        let Some(out) = self.out.as_mut() else {
            return;
        };
        out.sent = out.sent.saturating_add(n);
        if out.sent >= out.frame.bytes().len() {
            self.close_sent |= out.is_close;
            self.out = None;
        }
    }

    /// New client payload is recorded as the client sent it, then judged.
    fn decode(&mut self, inp: usize) {
        let from = self.up.last;
        self.decode_frames(inp);
        if let Some(rec) = self.rec.as_mut() {
            let to = self.up.last;
            rec.from_client(self.up.mem(to).get(from..).unwrap_or_default());
        }
        self.judge();
    }

    /// New payload passes the RFB gate, or all of it may go when there is none.
    fn judge(&mut self) {
        let Some(gate) = self.gate.as_mut() else {
            self.up_clear = self.up.last;
            return;
        };
        let last = self.up.last;
        let (clear, last, refused) = gate.judge(self.up.mem(last), self.up_clear, last);
        self.up_clear = clear;
        self.up.last = last;
        if let Some(why) = refused {
            // What was judged before still reaches the server; nothing after it.
            self.up.last = clear;
            self.note = Some(Note::Rfb(why));
            self.client_done = true;
            self.begin_close(Cause::ProtocolError, Some(CLOSE_POLICY));
        }
    }

    fn decode_frames(&mut self, mut inp: usize) {
        loop {
            let out = self.up.last;
            let end = self.up_end;
            let p = self.decoder.decode(self.up.mem(usize::MAX), out, inp, end);
            self.up.last = p.produced;
            inp = p.consumed;
            match p.event {
                None => return,
                Some(Event::Ping(payload)) => {
                    if !self.closing() {
                        self.pong = Some(codec::pong(payload.payload()));
                    }
                }
                Some(Event::Pong) => {}
                Some(Event::Close(code)) => {
                    self.client_done = true;
                    self.client_sent_close = true;
                    self.begin_close(Cause::Client, code);
                    return;
                }
                Some(Event::Error(e)) => {
                    self.note = Some(Note::Protocol(e));
                    self.client_done = true;
                    self.begin_close(Cause::ProtocolError, Some(e.close_code()));
                    return;
                }
            }
        }
    }

    fn closing(&self) -> bool {
        self.close_sent || self.close.is_some() || self.out.as_ref().is_some_and(|o| o.is_close)
    }

    fn begin_end(&mut self, cause: Cause) {
        self.cause.get_or_insert(cause);
    }

    /// Queues our close frame (`None`: an empty body, to echo one) unless one is on its way.
    fn begin_close(&mut self, cause: Cause, code: Option<u16>) {
        self.begin_end(cause);
        if self.closing() {
            return;
        }
        self.code = code;
        let reason = match cause {
            Cause::Revoked => "revoked",
            Cause::Lifetime => "expired",
            _ => "",
        };
        self.close = Some(codec::close(code, reason));
        self.pong = None;
        self.ping = None;
    }

    fn fail_client(&mut self) {
        self.begin_end(Cause::Client);
        self.end_now(Close::Drop { timed_out: false });
    }

    fn fail_target(&mut self, note: Note, cause: Cause) {
        self.note = Some(note);
        self.target_failed = true;
        self.target_done = true;
        self.begin_close(cause, Some(CLOSE_INTERNAL_ERROR));
    }

    fn end_with(&self, close: Close) -> End {
        End {
            cause: self.cause.unwrap_or(Cause::Client),
            code: self.code,
            close,
        }
    }

    fn end_now(&mut self, close: Close) {
        let end = self.end_with(close);
        self.ended.get_or_insert(end);
    }

    /// Ends after our close frame went out, or when the client left without one; client
    /// payload already accepted reaches the target first.
    fn over(&self) -> Option<End> {
        let up_flushed = !self.up_sendable() || self.target_failed;
        let control_flushed = self.out.is_none() && self.close.is_none();
        let left = self.client_done && !self.client_sent_close;
        if !(up_flushed && control_flushed && (self.close_sent || left)) {
            return None;
        }
        Some(self.end_with(Close::Clean))
    }

    /// Acts on every deadline that has passed.
    fn expire(&mut self, now: Msec) {
        let due =
            |at: Option<Msec>, after: Msec| at.is_some_and(|t| now >= t.saturating_add(after));
        if due(self.client_stall, self.cfg.send_timeout) {
            self.note = Some(Note::ClientTimedOut);
            self.begin_end(Cause::SendTimeout);
            self.end_now(Close::Drop { timed_out: true });
            return;
        }
        if due(self.target_stall, self.cfg.send_timeout) {
            self.target_stall = None;
            self.fail_target(Note::TargetSendTimedOut, Cause::SendTimeout);
            return;
        }
        if self.revoked && !self.closing() {
            self.note = Some(Note::Revoked);
            self.stop(Cause::Revoked, CLOSE_REVOKED, now);
            return;
        }
        if due(self.expires, 0) && !self.closing() {
            self.note = Some(Note::Expired(self.cfg.lifetime.unwrap_or_default()));
            self.stop(Cause::Lifetime, CLOSE_EXPIRED, now);
            return;
        }
        if due(Some(self.active_at), self.cfg.read_timeout) {
            if self.closing() {
                self.note = Some(Note::ClosingTimedOut);
                self.end_now(Close::Drop { timed_out: false });
                return;
            }
            self.note = Some(Note::Idle(self.cfg.read_timeout));
            self.stop(Cause::Idle, CLOSE_GOING_AWAY, now);
            return;
        }
        if let Some(at) = self.next_ping.filter(|&at| now >= at) {
            if !self.closing() && self.ping.is_none() {
                self.ping = Some(codec::ping());
            }
            let next = at.saturating_add(self.cfg.ping_interval);
            self.next_ping = Some(next.max(now.saturating_add(1)));
        }
    }

    /// Ends a session from our side: nothing more is read, our close goes out at the next
    /// frame boundary, and it has a whole idle period to get there.
    fn stop(&mut self, cause: Cause, code: u16, now: Msec) {
        self.client_done = true;
        self.target_done = true;
        self.begin_close(cause, Some(code));
        self.active_at = now;
    }

    /// Nothing can move: the stall clocks start, and the earliest deadline is returned.
    fn wait(&mut self, now: Msec) -> Option<Msec> {
        self.blocked = Blocked::default();
        let to_client = self.header || self.down.pending() || self.out.is_some();
        self.client_stall = to_client.then(|| self.client_stall.unwrap_or(now));
        let to_target = self.up_sendable() && !self.target_failed;
        self.target_stall = to_target.then(|| self.target_stall.unwrap_or(now));
        let send = self.cfg.send_timeout;
        [
            Some(self.active_at.saturating_add(self.cfg.read_timeout)),
            self.next_ping,
            self.expires.filter(|_| !self.closing()),
            self.client_stall.map(|t| t.saturating_add(send)),
            self.target_stall.map(|t| t.saturating_add(send)),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
