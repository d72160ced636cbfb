//! The relay: one session per upgraded request, moving bytes both ways inside the
//! event loop. Client bytes are decoded in place and written to the target; target bytes
//! are read behind room for a frame header and sent as one frame. A side is read only
//! while the other can take what was read, so a slow peer stops its partner (backpressure)
//! and memory stays bounded by the two buffers.

use core::ffi::c_void;
use core::ops::Range;
use core::{mem, ptr};

use ngx::ffi::{
    ngx_add_timer, ngx_close_connection, ngx_connection_t, ngx_del_timer, ngx_event_t,
    ngx_handle_read_event, ngx_handle_write_event, ngx_http_block_reading,
    ngx_http_finalize_request, ngx_http_output_filter, ngx_http_request_empty_handler,
    ngx_http_request_t, ngx_http_run_posted_requests, ngx_int_t, ngx_msec_t, ngx_peer_connection_t,
    ngx_pool_cleanup_add, ngx_resolve_name_done, ngx_resolver_ctx_t, ngx_tcp_nodelay, NGX_LOG_ERR,
    NGX_LOG_INFO,
};
use ngx::ngx_log_error;

use crate::buffer::{self, Buf};
use crate::codec::{self, ControlFrame, Decoder, Event, Framer};
use crate::config::LocConf;
use crate::handler;
use crate::handshake::Accept;
use crate::module::ngx_http_websockify_module;

const NGX_OK: ngx_int_t = 0;
const NGX_ERROR: isize = -1;
const NGX_AGAIN: isize = -2;

const CLOSE_NORMAL: u16 = 1000;
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_INTERNAL_ERROR: u16 = 1011;

pub struct Session {
    pub r: *mut ngx_http_request_t,
    pub conf: *const LocConf,
    /// A per-request host name being resolved, and the port that goes with it.
    pub resolving: *mut ngx_resolver_ctx_t,
    pub port: u16,
    accept: Accept,
    decoder: Decoder,
    framer: Framer,
    /// Client to target: decoded payload in `pos..last`, undecoded input in `raw..end`.
    up: Buf,
    raw: usize,
    end: usize,
    /// Target to client: one frame in `pos..last`.
    down: Buf,
    /// Control frames wait for a frame boundary on the client side; a close wins over a
    /// pong, a pong over a heartbeat ping.
    pong: Option<ControlFrame>,
    ping: Option<ControlFrame>,
    close: Option<ControlFrame>,
    control: Option<Outgoing>,
    header_pending: bool,
    relaying: bool,
    /// Data moved since the idle timer was last set (our own pings do not count).
    active: bool,
    client_done: bool,
    client_sent_close: bool,
    client_failed: bool,
    target_done: bool,
    target_failed: bool,
    close_sent: bool,
}

enum Outcome {
    Wait,
    Finish(ngx_int_t),
}

/// A control frame on its way to the client.
struct Outgoing {
    frame: ControlFrame,
    sent: usize,
    is_close: bool,
}

impl Outgoing {
    fn new(frame: ControlFrame, is_close: bool) -> Self {
        Self {
            frame,
            sent: 0,
            is_close,
        }
    }
}

/// What one read from the target gave.
enum Read {
    Data(usize),
    /// End of stream or an error: the session is closing.
    Ended,
    /// Nothing to read now.
    Nothing,
}

impl Session {
    pub unsafe fn create(
        r: *mut ngx_http_request_t,
        conf: &LocConf,
        accept: Accept,
    ) -> Option<*mut Session> {
        let cln = ngx_pool_cleanup_add((*r).pool, mem::size_of::<Session>());
        if cln.is_null() {
            return None;
        }
        let s = (*cln).data as *mut Session;
        s.write(Session {
            r,
            conf,
            resolving: ptr::null_mut(),
            port: 0,
            decoder: Decoder::new(accept.mode),
            framer: Framer::new(accept.mode),
            accept,
            up: Buf::default(),
            raw: 0,
            end: 0,
            down: Buf::default(),
            pong: None,
            ping: None,
            close: None,
            control: None,
            header_pending: false,
            relaying: false,
            active: false,
            client_done: false,
            client_sent_close: false,
            client_failed: false,
            target_done: false,
            target_failed: false,
            close_sent: false,
        });
        (*cln).handler = Some(cleanup);
        *(*r).ctx.add(ngx_http_websockify_module.ctx_index) = s.cast::<c_void>();
        Some(s)
    }

    /// The peer connection: the request's upstream holds it, for the balancers.
    pub unsafe fn peer(&self) -> *mut ngx_peer_connection_t {
        &mut (*(*self.r).upstream).peer
    }

    unsafe fn target(&self) -> *mut ngx_connection_t {
        (*self.peer()).connection
    }

    unsafe fn client(&self) -> *mut ngx_connection_t {
        (*self.r).connection
    }

    unsafe fn log(&self) -> *mut ngx::ffi::ngx_log_t {
        (*self.client()).log
    }

    fn conf(&self) -> &LocConf {
        // SAFETY: location configuration lives as long as the cycle.
        unsafe { &*self.conf }
    }

    fn queue_close(&mut self, code: u16) {
        if !self.close_pending() && !self.close_sent {
            self.close = Some(codec::close(Some(code)));
        }
    }

    /// Runs both directions until neither can move, then decides whether the session ends.
    unsafe fn pump(&mut self) -> Outcome {
        loop {
            let up = self.client_to_target();
            let down = self.target_to_client();
            if !(up || down) {
                break;
            }
        }
        if self.client_failed {
            return Outcome::Finish(NGX_ERROR as ngx_int_t);
        }
        let up_flushed = !self.up.pending() || self.target_failed;
        let control_flushed = self.control.is_none() && self.close.is_none();
        // Ends after our close frame went out, or when the client left without one.
        let over = self.close_sent || self.client_done && !self.client_sent_close;
        if up_flushed && control_flushed && over {
            return Outcome::Finish(NGX_OK);
        }
        if mem::take(&mut self.active) {
            ngx_add_timer((*self.target()).read, self.conf().read_timeout);
        }
        Outcome::Wait
    }

    fn close_pending(&self) -> bool {
        self.close.is_some() || self.control.as_ref().is_some_and(|c| c.is_close)
    }

    /// One step client -> target; true when something moved.
    unsafe fn client_to_target(&mut self) -> bool {
        let sent = self.flush_to_target();
        if self.raw < self.end && !self.client_done {
            self.decode();
            return true;
        }
        if !self.up.pending() {
            // All decoded and delivered: later input starts at the front again.
            self.rewind_up(0);
        }
        let c = self.client();
        if self.client_done || (*(*c).read).ready() == 0 {
            // With EPOLLRDHUP a short read already clears `ready`, so waiting for EAGAIN
            // would keep the buffer of every idle session.
            if !self.up.pending() {
                self.up.release();
            }
            return sent;
        }
        // Read into the free tail, even while earlier payload waits for the target.
        let size = self.conf().buffer_size;
        if self.end >= size {
            return sent;
        }
        if !self.up.ensure(size) {
            self.client_failed = true;
            return sent;
        }
        let Some(recv) = (*c).recv else { return sent };
        let Some(tail) = self.up.mem(size).get_mut(self.end..) else {
            return sent;
        };
        let n = recv(c, tail.as_mut_ptr(), tail.len());
        match n {
            NGX_AGAIN => sent,
            0 => {
                ngx_log_error!(
                    NGX_LOG_INFO,
                    self.log(),
                    "websockify: client closed the connection without a close frame"
                );
                self.client_done = true;
                true
            }
            n if n < 0 => {
                self.client_failed = true;
                true
            }
            n => {
                self.end += n as usize;
                self.active = true;
                self.decode();
                true
            }
        }
    }

    /// Writes decoded payload to the target; true when something moved.
    unsafe fn flush_to_target(&mut self) -> bool {
        if !self.up.pending() {
            return false;
        }
        if self.target_failed {
            self.up.pos = self.up.last;
            return true;
        }
        let t = self.target();
        if (*(*t).write).ready() == 0 {
            return false;
        }
        let Some(send) = (*t).send else { return false };
        let data = self.up.ready();
        match send(t, data.as_mut_ptr(), data.len()) {
            NGX_AGAIN => false,
            n if n < 0 => {
                self.target_error("sending to the target failed");
                true
            }
            n => {
                self.up.pos += n as usize;
                self.active = true;
                true
            }
        }
    }

    /// Empties the up buffer, except for `n` undecoded bytes at its front.
    fn rewind_up(&mut self, n: usize) {
        self.up.pos = 0;
        self.up.last = 0;
        self.raw = 0;
        self.end = n;
    }

    fn decode(&mut self) {
        let out = self.up.last;
        let p = self
            .decoder
            .decode(self.up.mem(usize::MAX), out, self.raw, self.end);
        self.up.last = p.produced;
        self.raw = p.consumed;
        match p.event {
            // The decoder takes all input unless it stops at an event; never spin on a rest.
            None => self.raw = self.end,
            Some(Event::Ping(payload)) if !self.close_pending() && !self.close_sent => {
                self.pong = Some(codec::pong(payload.payload()));
            }
            Some(Event::Ping(_) | Event::Pong) => {}
            Some(Event::Close(code)) => {
                self.client_done = true;
                self.client_sent_close = true;
                self.raw = self.end;
                if !self.close_sent && !self.close_pending() {
                    self.close = Some(codec::close(code));
                }
            }
            Some(Event::Error(e)) => {
                // SAFETY: only called while the request is alive.
                let log = unsafe { self.log() };
                ngx_log_error!(
                    NGX_LOG_INFO,
                    log,
                    "websockify: closing with {}: {e}",
                    e.close_code()
                );
                self.client_done = true;
                self.raw = self.end;
                self.queue_close(e.close_code());
            }
        }
    }

    unsafe fn target_error(&mut self, why: &str) {
        ngx_log_error!(NGX_LOG_ERR, self.log(), "websockify: {why}");
        self.target_failed = true;
        self.target_done = true;
        self.queue_close(CLOSE_INTERNAL_ERROR);
    }

    /// One step target -> client; true when something moved.
    unsafe fn target_to_client(&mut self) -> bool {
        let c = self.client();
        if self.header_pending {
            if (*(*c).write).ready() == 0 {
                return false;
            }
            if ngx_http_output_filter(self.r, ptr::null_mut()) == NGX_ERROR {
                self.client_failed = true;
                return false;
            }
            self.header_pending = !(*self.r).out.is_null();
            return !self.header_pending;
        }
        if self.down.pending() {
            let n = send_to(c, self.down.ready());
            let sent = match self.sent(n) {
                Some(n) => {
                    self.down.pos += n;
                    self.active |= n > 0;
                    n > 0
                }
                None => false,
            };
            return self.read_behind() || sent;
        }
        if let Some(mut out) = self.control.take() {
            let bytes = out.frame.bytes();
            let n = send_to(c, bytes.get(out.sent..).unwrap_or_default());
            let Some(n) = self.sent(n) else {
                self.control = Some(out);
                return false;
            };
            out.sent += n;
            if out.sent < out.frame.bytes().len() {
                self.control = Some(out);
            } else {
                self.close_sent |= out.is_close;
            }
            return true;
        }
        if let Some(frame) = self.close.take() {
            self.pong = None;
            self.ping = None;
            self.control = Some(Outgoing::new(frame, true));
            return true;
        }
        if let Some(frame) = self.pong.take().or_else(|| self.ping.take()) {
            self.control = Some(Outgoing::new(frame, false));
            return true;
        }
        let t = self.target();
        if self.close_sent || self.target_done || (*(*t).read).ready() == 0 {
            self.down.release();
            return false;
        }
        let size = self.conf().buffer_size;
        if !self.down.ensure(size) {
            self.client_failed = true;
            return false;
        }
        match self.read_target(self.framer.read_window(size)) {
            Read::Data(n) => {
                let frame = self.framer.frame(self.down.mem(size), n);
                self.down.pos = frame.start;
                self.down.last = frame.end;
                true
            }
            Read::Ended => true,
            Read::Nothing => {
                self.down.release();
                false
            }
        }
    }

    /// Reads more target bytes behind frames still going to the client, unless a control
    /// frame waits for the frame boundary that this would push back.
    unsafe fn read_behind(&mut self) -> bool {
        let t = self.target();
        let waiting = self.control.is_some()
            || self.close.is_some()
            || self.pong.is_some()
            || self.ping.is_some();
        if waiting || self.close_sent || self.target_done || (*(*t).read).ready() == 0 {
            return false;
        }
        let size = self.conf().buffer_size;
        let Some(window) = self.framer.tail_window(self.down.last, size) else {
            return false;
        };
        match self.read_target(window) {
            Read::Data(n) => {
                let last = self.down.last;
                self.down.last = self.framer.frame_tail(self.down.mem(size), last, n);
                true
            }
            Read::Ended => true,
            Read::Nothing => false,
        }
    }

    /// One recv from the target into `window` of the down buffer.
    unsafe fn read_target(&mut self, window: Range<usize>) -> Read {
        let t = self.target();
        let size = self.conf().buffer_size;
        let Some(recv) = (*t).recv else {
            return Read::Nothing;
        };
        let Some(dst) = self.down.mem(size).get_mut(window) else {
            return Read::Nothing;
        };
        match recv(t, dst.as_mut_ptr(), dst.len()) {
            NGX_AGAIN => Read::Nothing,
            0 => {
                ngx_log_error!(
                    NGX_LOG_INFO,
                    self.log(),
                    "websockify: target closed the connection"
                );
                self.target_done = true;
                self.queue_close(CLOSE_NORMAL);
                Read::Ended
            }
            n if n < 0 => {
                self.target_error("reading from the target failed");
                Read::Ended
            }
            n => {
                self.active = true;
                Read::Data(n as usize)
            }
        }
    }

    fn sent(&mut self, n: isize) -> Option<usize> {
        match n {
            NGX_AGAIN => None,
            n if n < 0 => {
                self.client_failed = true;
                None
            }
            n => Some(n as usize),
        }
    }

    /// Registers interest and send timers after a pump that will wait.
    unsafe fn arm(&mut self) -> Result<(), ()> {
        let c = self.client();
        let t = self.target();
        for ev in [(*c).read, (*t).read] {
            if ngx_handle_read_event(ev, 0) != NGX_OK {
                return Err(());
            }
        }
        for ev in [(*c).write, (*t).write] {
            if ngx_handle_write_event(ev, 0) != NGX_OK {
                return Err(());
            }
        }
        let send_timeout = self.conf().send_timeout;
        let to_client = self.header_pending || self.down.pending() || self.control.is_some();
        send_timer((*c).write, to_client, send_timeout);
        send_timer(
            (*t).write,
            self.up.pending() && !self.target_failed,
            send_timeout,
        );
        Ok(())
    }

    /// Handles expired timers; true when the session must end at once.
    unsafe fn expire(&mut self) -> bool {
        let c = self.client();
        let t = self.target();
        if (*(*c).write).timedout() != 0 {
            ngx_log_error!(NGX_LOG_INFO, self.log(), "websockify: client timed out");
            (*c).set_timedout(1);
            return true;
        }
        if (*(*c).read).timedout() != 0 {
            // The heartbeat timer lives on the client's read event, which nothing else times.
            (*(*c).read).set_timedout(0);
            if !self.close_sent && !self.close_pending() {
                self.ping = Some(codec::ping());
            }
            ngx_add_timer((*c).read, self.conf().ping_interval);
        }
        if (*(*t).write).timedout() != 0 {
            (*(*t).write).set_timedout(0);
            self.target_error("sending to the target timed out");
        }
        if (*(*t).read).timedout() != 0 {
            (*(*t).read).set_timedout(0);
            if self.close_sent || self.close_pending() {
                // Our close frame could not be delivered in a whole idle period.
                return true;
            }
            ngx_log_error!(
                NGX_LOG_INFO,
                self.log(),
                "websockify: session timed out after {} ms without data, closing with 1001",
                self.conf().read_timeout
            );
            self.client_done = true;
            self.target_done = true;
            self.queue_close(CLOSE_GOING_AWAY);
            ngx_add_timer((*t).read, self.conf().read_timeout);
        }
        false
    }
}

/// One non-blocking send to the client: bytes sent, NGX_AGAIN or NGX_ERROR.
unsafe fn send_to(c: *mut ngx_connection_t, data: &[u8]) -> isize {
    if (*(*c).write).ready() == 0 {
        return NGX_AGAIN;
    }
    match (*c).send {
        Some(send) => send(c, data.as_ptr().cast_mut(), data.len()),
        None => NGX_ERROR,
    }
}

fn send_timer(ev: *mut ngx_event_t, waiting: bool, timeout: ngx_msec_t) {
    // SAFETY: events of live connections.
    unsafe {
        let blocked = waiting && (*ev).ready() == 0;
        if blocked && (*ev).timer_set() == 0 {
            ngx_add_timer(ev, timeout);
        } else if !blocked && (*ev).timer_set() != 0 {
            ngx_del_timer(ev);
        }
    }
}

/// Connect failed for good: the client gets `status` (502 or 504).
pub unsafe fn fail(s: &mut Session, status: ngx_int_t) {
    ngx_http_finalize_request(s.r, status);
}

/// The target is connected: answer 101 and start relaying.
pub unsafe fn start(s: &mut Session) {
    let r = s.r;
    let c = s.client();
    let t = s.target();
    (*(*c).log).action = c"relaying WebSocket to target".as_ptr() as *mut _;
    if handler::switch_protocols(r, &s.accept).is_err() {
        finish(s, NGX_ERROR as ngx_int_t);
        return;
    }
    s.header_pending = !(*r).out.is_null();
    s.relaying = true;
    ngx_tcp_nodelay(c);
    ngx_tcp_nodelay(t);
    (*t).data = ptr::from_mut(s).cast::<c_void>();
    (*(*t).read).handler = Some(target_handler);
    (*(*t).write).handler = Some(target_handler);
    (*r).read_event_handler = Some(client_handler);
    (*r).write_event_handler = Some(client_handler);

    // Frames the client sent right behind its handshake are already in header_in.
    let hin = (*r).header_in;
    if !hin.is_null() && (*hin).last > (*hin).pos {
        let n = (*hin).last.offset_from((*hin).pos) as usize;
        let size = s.conf().buffer_size.max(n);
        if !s.up.ensure(size) {
            finish(s, NGX_ERROR as ngx_int_t);
            return;
        }
        let pipelined = core::slice::from_raw_parts((*hin).pos, n);
        if let Some(dst) = s.up.mem(size).get_mut(..n) {
            dst.copy_from_slice(pipelined);
        }
        (*hin).pos = (*hin).last;
        s.rewind_up(n);
        s.decode();
    }
    ngx_add_timer((*t).read, s.conf().read_timeout);
    if s.conf().ping_interval > 0 {
        ngx_add_timer((*c).read, s.conf().ping_interval);
    }
    run(s);
}

unsafe extern "C" fn client_handler(r: *mut ngx_http_request_t) {
    let s = *(*r).ctx.add(ngx_http_websockify_module.ctx_index) as *mut Session;
    if let Some(s) = s.as_mut() {
        run(s);
    }
}

unsafe extern "C" fn target_handler(ev: *mut ngx_event_t) {
    let t = (*ev).data as *mut ngx_connection_t;
    if let Some(s) = ((*t).data as *mut Session).as_mut() {
        let c = s.client();
        run(s);
        // Ending the request from here may only post it (terminate); run it now, as the
        // upstream module does, before the client connection sees another event.
        ngx_http_run_posted_requests(c);
    }
}

unsafe fn run(s: &mut Session) {
    if s.target().is_null() {
        return;
    }
    step(s);
    trim_heap();
}

/// glibc keeps freed 64 KiB buffers in its heap (below the mmap threshold): after a burst
/// of sessions the worker would stay at its peak size. Once enough was freed, hand the
/// free pages back.
fn trim_heap() {
    const TRIM_AFTER: usize = 16 << 20;
    if buffer::take_freed_at_least(TRIM_AFTER) {
        // SAFETY: malloc_trim only releases free memory of the allocator.
        unsafe { malloc_trim(0) };
    }
}

extern "C" {
    fn malloc_trim(pad: usize) -> core::ffi::c_int;
}

unsafe fn step(s: &mut Session) {
    if s.expire() {
        finish(s, NGX_ERROR as ngx_int_t);
        return;
    }
    match s.pump() {
        Outcome::Wait => {
            if s.arm().is_err() {
                finish(s, NGX_ERROR as ngx_int_t);
            }
        }
        Outcome::Finish(rc) => finish(s, rc),
    }
}

/// Ends the session: closes the target and finalizes the request. `s` is freed with the
/// request pool, so nothing may touch it afterwards.
unsafe fn finish(s: &mut Session, rc: ngx_int_t) {
    close_target(s);
    let r = s.r;
    // Finalizing may be deferred (a posted termination): no more relay calls meanwhile.
    (*r).read_event_handler = Some(ngx_http_block_reading);
    (*r).write_event_handler = Some(ngx_http_request_empty_handler);
    if rc == NGX_OK && !s.client_sent_close {
        // Let the client read our close frame before the socket goes away.
        (*r).set_lingering_close(1);
    }
    ngx_http_finalize_request(r, rc);
}

/// Closes the target connection and returns its peer to the balancer.
unsafe fn close_target(s: &mut Session) {
    let Some(u) = (*s.r).upstream.as_mut() else {
        return;
    };
    let pc = &mut u.peer;
    if !pc.connection.is_null() {
        ngx_close_connection(pc.connection);
        pc.connection = ptr::null_mut();
        if let Some(free) = pc.free {
            free(pc, pc.data, 0);
        }
    }
}

/// Pool cleanup: the request is going away (finished, or terminated by nginx).
unsafe extern "C" fn cleanup(data: *mut c_void) {
    let s = &mut *(data as *mut Session);
    if !s.resolving.is_null() {
        ngx_resolve_name_done(s.resolving);
    }
    close_target(s);
    say_going_away(s);
    ptr::drop_in_place(s);
}

/// nginx ends a live session itself (worker shutdown, a fatal error elsewhere): tell the
/// client with a close 1001 rather than cutting the connection, when a frame boundary
/// allows it. Best effort: one non-blocking send.
unsafe fn say_going_away(s: &mut Session) {
    let at_boundary =
        !s.header_pending && !s.down.pending() && s.control.as_ref().is_none_or(|c| c.sent == 0);
    if !s.relaying || s.close_sent || s.client_done || s.client_failed || !at_boundary {
        return;
    }
    let c = s.client();
    if (*c).fd == -1 {
        return;
    }
    ngx_log_error!(
        NGX_LOG_INFO,
        (*c).log,
        "websockify: session ended by nginx, closing with 1001"
    );
    let frame = codec::close(Some(CLOSE_GOING_AWAY));
    if let Some(send) = (*c).send {
        send(c, frame.bytes().as_ptr().cast_mut(), frame.bytes().len());
    }
}
