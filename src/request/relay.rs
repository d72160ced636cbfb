//! nginx glue for the relay: turns nginx events into calls of the state machine in
//! `core.rs` and its actions into `recv`, `send`, event registration and one timer. It
//! decides nothing itself.

use std::ffi::c_void;
use std::{mem, ptr};

use std::cell::RefCell;

use ngx::core::Status;
use ngx::ffi::{
    ngx_add_timer, ngx_connection_t, ngx_current_msec, ngx_cycle, ngx_del_timer, ngx_event_t,
    ngx_handle_read_event, ngx_handle_write_event, ngx_http_block_reading, ngx_http_cleanup_add,
    ngx_http_complex_value, ngx_http_core_loc_conf_t, ngx_http_core_module,
    ngx_http_finalize_request, ngx_http_output_filter, ngx_http_request_empty_handler,
    ngx_http_request_t, ngx_http_run_posted_requests, ngx_int_t, ngx_log_t, ngx_msec_t,
    ngx_parse_time, ngx_pcalloc, ngx_pid, ngx_pool_cleanup_add, ngx_resolve_name_done, ngx_str_t,
    ngx_tcp_nodelay, ngx_time, NGX_LOG_ERR, NGX_LOG_INFO, NGX_LOWLEVEL_BUFFERED,
};
use ngx::http::{HTTPStatus, HttpModuleLocationConf, HttpModuleMainConf, NgxHttpCoreModule};
use ngx::ngx_log_error;

use super::attempt;
use super::session::{attach, session_mut, Session};
use super::upgrade;
use crate::conf::{Lifetime, LocConf};
use crate::protocol::handshake::Accept;
use crate::relay::core::{self, Action, Close, End, Io, Level, Msec, Note, Ready, Relay};
use crate::status::{self, Text};
use crate::zone::{self, Locked};
use crate::Websockify;

/// How often a worker writes its sessions' counters to the zone and looks for revocations:
/// the bound on how long a `DELETE` waits for the owning worker.
const SYNC_EVERY: ngx_msec_t = 500;

/// nginx could not do what the relay asked (evaluate a value, register an event); it has
/// logged why, and the session ends.
struct Failed;

/// The session of a new request, freed with the request's pool.
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
    s.write(Session::new(r, conf, accept));
    (*cln).handler = Some(cleanup);
    // Runs before the access log line is written, unlike the pool cleanup.
    let ending = ngx_http_cleanup_add(r, 0);
    if ending.is_null() {
        return None;
    }
    (*ending).handler = Some(session_ending);
    (*ending).data = s.cast::<c_void>();
    attach(r, s);
    Some(s)
}

/// The target is connected: answer 101 and start relaying.
pub unsafe fn start(s: &mut Session) {
    let r = s.r;
    let c = s.client();
    let t = s.target();
    (*(*c).log).action = c"relaying WebSocket to target".as_ptr() as *mut _;
    let Ok(lifetime) = lifetime(s) else {
        end_request(s, HTTPStatus::INTERNAL_SERVER_ERROR.0 as ngx_int_t);
        return;
    };
    if upgrade::switch_protocols(r, &s.accept).is_err() {
        end_request(s, Status::NGX_ERROR.0);
        return;
    }
    let conf = s.conf();
    let cfg = core::Config {
        buffer_size: conf.buffer_size,
        read_timeout: conf.read_timeout as Msec,
        send_timeout: conf.send_timeout as Msec,
        ping_interval: conf.ping_interval as Msec,
        lifetime,
    };
    let mut relay = Relay::new(cfg, s.accept.mode, header_queued(r), now());
    // Frames the client sent right behind its handshake are already in header_in.
    let hin = (*r).header_in;
    if !hin.is_null() && (*hin).last > (*hin).pos {
        let n = (*hin).last.offset_from((*hin).pos) as usize;
        relay.pipelined(std::slice::from_raw_parts((*hin).pos, n));
        (*hin).pos = (*hin).last;
    }
    s.relay = Some(relay);
    if NgxHttpCoreModule::location_conf(&*r).is_some_and(|clcf| clcf.tcp_nodelay != 0) {
        ngx_tcp_nodelay(c);
        ngx_tcp_nodelay(t);
    }
    (*t).data = ptr::from_mut(s).cast::<c_void>();
    (*(*t).read).handler = Some(target_handler);
    (*(*t).write).handler = Some(target_handler);
    (*r).read_event_handler = Some(client_handler);
    (*r).write_event_handler = Some(client_handler);
    s.timer.handler = Some(timer_handler);
    // nginx's debug log reads an event's `data` as a connection (ngx_event_ident).
    s.timer.data = c.cast::<c_void>();
    s.timer.log = (*c).log;
    let pid = ngx_pid;
    s.id = Some(format!("{pid}-{}", (*c).number));
    s.target_name = (*s.peer())
        .name
        .as_ref()
        .map(|n| String::from_utf8_lossy(n.as_bytes()).into_owned());
    track(s);
    run(s);
}

/// `websockify_session_timeout` for this request: Err when a variable gave a bad value.
unsafe fn lifetime(s: &Session) -> Result<Option<Msec>, Failed> {
    let cv = match &s.conf().session_timeout {
        None | Some(Lifetime::Off) => return Ok(None),
        Some(Lifetime::Fixed(ms)) => return Ok(Some(*ms as Msec)),
        Some(Lifetime::Var(cv)) => cv,
    };
    let mut value = ngx_str_t::default();
    if ngx_http_complex_value(s.r, ptr::from_ref(cv).cast_mut(), &mut value) != Status::NGX_OK.0 {
        return Err(Failed);
    }
    if value.as_bytes() == b"off" {
        return Ok(None);
    }
    let ms = ngx_parse_time(&mut value, 0);
    if ms < 0 {
        ngx_log_error!(
            NGX_LOG_ERR,
            s.log(),
            "websockify: invalid websockify_session_timeout value \"{}\"",
            String::from_utf8_lossy(value.as_bytes())
        );
        return Err(Failed);
    }
    Ok(Some(ms as Msec))
}

/// Records the session in the `websockify_zone`, if there is one, and in this worker's
/// list that the sync timer walks.
unsafe fn track(s: &mut Session) {
    let Some(zone) = Websockify::main_conf(&*s.r)
        .map(|m| m.zone)
        .filter(|z| !z.is_null())
    else {
        return;
    };
    let c = s.client();
    let clcf =
        *(*s.r).loc_conf.add(ngx_http_core_module.ctx_index) as *const ngx_http_core_loc_conf_t;
    let view = status::Session {
        id: Text::new(s.id().unwrap_or_default().as_bytes()),
        pid: i64::from(ngx_pid),
        owner_start: zone::own_start(),
        client: Text::new((*c).addr_text.as_bytes()),
        target: Text::new(s.target_name().unwrap_or_default().as_bytes()),
        location: Text::new((*clcf).name.as_bytes()),
        started: ngx_time() as u64,
        from_client: 0,
        to_client: 0,
        frames_from_client: 0,
        revoke: false,
    };
    let Some(mut locked) = Locked::new(zone) else {
        return;
    };
    let record = locked.add(view);
    drop(locked);
    s.zone = zone;
    match record {
        Some(rec) => {
            s.record = rec;
            TRACKED.with(|t| t.borrow_mut().push(ptr::from_mut(s)));
            arm_sync();
        }
        None => zone::warn_full(s.log(), zone),
    }
}

thread_local! {
    /// This worker's sessions that have a zone record.
    static TRACKED: RefCell<Vec<*mut Session>> = const { RefCell::new(Vec::new()) };
    static SYNC: std::cell::Cell<*mut ngx_event_t> = const { std::cell::Cell::new(ptr::null_mut()) };
}

/// Starts the worker's sync timer if it is not running.
unsafe fn arm_sync() {
    let mut ev = SYNC.with(|e| e.get());
    if ev.is_null() {
        ev = ngx_pcalloc((*ngx_cycle).pool, mem::size_of::<ngx_event_t>()) as *mut ngx_event_t;
        if ev.is_null() {
            return;
        }
        (*ev).handler = Some(sync_handler);
        (*ev).log = (*ngx_cycle).log;
        // As for nginx's own worker-wide timers: debug logging reads `data` for an ident.
        (*ev).data = ngx_cycle.cast::<c_void>();
        // The sessions' own timers keep a shutting-down worker alive, not this one.
        (*ev).set_cancelable(1);
        SYNC.with(|e| e.set(ev));
    }
    if (*ev).timer_set() == 0 {
        ngx_add_timer(ev, SYNC_EVERY);
    }
}

/// Writes every tracked session's counters to the zone, then ends the revoked ones.
unsafe extern "C" fn sync_handler(_ev: *mut ngx_event_t) {
    let sessions = TRACKED.with(|t| t.borrow().clone());
    let mut revoked = Vec::new();
    let mut zone = sessions.first().and_then(|&s| Locked::new((*s).zone));
    if let Some(locked) = zone.as_mut() {
        for &s in &sessions {
            let stats = (*s).stats().unwrap_or_default();
            if locked.update((*s).record, stats) {
                revoked.push(s);
            }
        }
    }
    drop(zone);
    for s in revoked {
        // Still tracked: an earlier session of this list may have ended since.
        if TRACKED.with(|t| t.borrow().contains(&s)) {
            if let Some(relay) = (*s).relay.as_mut() {
                relay.revoke();
            }
            run_from_event(s);
        }
    }
    if TRACKED.with(|t| !t.borrow().is_empty()) {
        arm_sync();
    }
}

fn now() -> Msec {
    // SAFETY: nginx's cached clock, written only by this worker's thread.
    unsafe { ngx_current_msec as Msec }
}

/// The 101 still waits in nginx's output chain or in the TLS layer's buffer.
unsafe fn header_queued(r: *mut ngx_http_request_t) -> bool {
    !(*r).out.is_null() || (*(*r).connection).buffered() & NGX_LOWLEVEL_BUFFERED != 0
}

unsafe extern "C" fn client_handler(r: *mut ngx_http_request_t) {
    if let Some(s) = session_mut(r) {
        run(s);
    }
}

unsafe extern "C" fn target_handler(ev: *mut ngx_event_t) {
    let t = (*ev).data as *mut ngx_connection_t;
    run_from_event((*t).data as *mut Session);
}

unsafe extern "C" fn timer_handler(ev: *mut ngx_event_t) {
    let c = (*ev).data as *mut ngx_connection_t;
    let r = (*c).data as *mut ngx_http_request_t;
    if let Some(s) = session_mut(r) {
        run_from_event(s);
    }
}

/// From an event that is not the client's: ending the request may only post it
/// (terminate); run it now, as the upstream module does, before the client connection
/// sees another event.
unsafe fn run_from_event(s: *mut Session) {
    if let Some(s) = s.as_mut() {
        let c = s.client();
        run(s);
        ngx_http_run_posted_requests(c);
    }
}

/// Performs the relay's actions until it waits or finishes.
unsafe fn run(s: &mut Session) {
    let (r, c, t, log) = (s.r, s.client(), s.target(), s.log());
    let Some(relay) = s.relay.as_mut() else {
        return;
    };
    if t.is_null() {
        return;
    }
    loop {
        let now = now();
        let ready = Ready {
            client_read: (*(*c).read).ready() != 0,
            client_write: (*(*c).write).ready() != 0,
            target_read: (*(*t).read).ready() != 0,
            target_write: (*(*t).write).ready() != 0,
        };
        match relay.poll(ready, now) {
            Action::Log(note) => log_note(log, note),
            Action::FlushHeader => {
                let io = if ngx_http_output_filter(r, ptr::null_mut()) == Status::NGX_ERROR.0 {
                    Io::Error
                } else if header_queued(r) {
                    Io::Again
                } else {
                    Io::Done(0)
                };
                relay.header_flushed(io);
            }
            Action::RecvClient(buf) => {
                let io = recv(c, buf);
                relay.client_read(io, now);
            }
            Action::RecvTarget(buf) => {
                let io = recv(t, buf);
                if let Io::Done(n) = io {
                    s.received += n as u64;
                }
                relay.target_read(io, now);
            }
            Action::SendClient(bytes) => {
                let io = send(c, bytes);
                relay.client_sent(io, now);
            }
            Action::SendTarget(bytes) => {
                let io = send(t, bytes);
                relay.target_sent(io, now);
            }
            Action::Wait(deadline) => {
                if wait(s, deadline, now).is_err() {
                    if let Some(relay) = s.relay.as_mut() {
                        relay.abort();
                    }
                    finish(s, None);
                }
                return;
            }
            Action::Finish(end) => {
                finish(s, Some(end));
                return;
            }
        }
    }
}

fn log_note(log: *mut ngx_log_t, note: Note) {
    let level = match note.level() {
        Level::Info => NGX_LOG_INFO,
        Level::Error => NGX_LOG_ERR,
    };
    ngx_log_error!(level, log, "websockify: {note}");
}

unsafe fn recv(c: *mut ngx_connection_t, buf: &mut [u8]) -> Io {
    let Some(recv) = (*c).recv else {
        return Io::Error;
    };
    match recv(c, buf.as_mut_ptr(), buf.len()) {
        n if n == Status::NGX_AGAIN.0 => Io::Again,
        0 => Io::Eof,
        n if n < 0 => Io::Error,
        n => Io::Done(n as usize),
    }
}

unsafe fn send(c: *mut ngx_connection_t, bytes: &[u8]) -> Io {
    let Some(send) = (*c).send else {
        return Io::Error;
    };
    match send(c, bytes.as_ptr().cast_mut(), bytes.len()) {
        n if n == Status::NGX_AGAIN.0 => Io::Again,
        n if n < 0 => Io::Error,
        n => Io::Done(n as usize),
    }
}

/// Registers interest in all four events and sets the relay's deadline.
unsafe fn wait(s: &mut Session, deadline: Option<Msec>, now: Msec) -> Result<(), Failed> {
    let (c, t) = (s.client(), s.target());
    for ev in [(*c).read, (*t).read] {
        if ngx_handle_read_event(ev, 0) != Status::NGX_OK.0 {
            return Err(Failed);
        }
    }
    for ev in [(*c).write, (*t).write] {
        if ngx_handle_write_event(ev, 0) != Status::NGX_OK.0 {
            return Err(Failed);
        }
    }
    match deadline {
        Some(at) => ngx_add_timer(&mut s.timer, at.saturating_sub(now).max(1) as ngx_msec_t),
        None if s.timer.timer_set() != 0 => ngx_del_timer(&mut s.timer),
        None => {}
    }
    Ok(())
}

/// Ends the session as the relay says (None: a local failure). `s` is freed with the
/// request pool, so nothing may touch it afterwards.
unsafe fn finish(s: &mut Session, end: Option<End>) {
    let rc = match end.map(|e| e.close) {
        Some(Close::Clean) => {
            // Let the client read our close frame before the socket goes away.
            (*s.r).set_lingering_close(1);
            Status::NGX_OK.0
        }
        Some(Close::Drop { timed_out }) => {
            (*s.client()).set_timedout(u32::from(timed_out));
            Status::NGX_ERROR.0
        }
        None => Status::NGX_ERROR.0,
    };
    end_request(s, rc);
}

unsafe fn end_request(s: &mut Session, rc: ngx_int_t) {
    close_target(s);
    // Out of the zone now: a lingering close may keep the request for seconds more.
    untrack(s);
    if s.timer.timer_set() != 0 {
        ngx_del_timer(&mut s.timer);
    }
    let r = s.r;
    // Finalizing may be deferred (a posted termination): no more relay calls meanwhile.
    (*r).read_event_handler = Some(ngx_http_block_reading);
    (*r).write_event_handler = Some(ngx_http_request_empty_handler);
    ngx_http_finalize_request(r, rc);
}

/// Closes the target connection and returns its peer to the balancer.
unsafe fn close_target(s: &mut Session) {
    attempt::settle(s, s.received);
    let Some(u) = (*s.r).upstream.as_mut() else {
        return;
    };
    let pc = &mut u.peer;
    if !pc.connection.is_null() {
        // TLS to the target ends with a close_notify alert, as the upstream module's.
        super::setup::close(pc.connection, true);
        pc.connection = ptr::null_mut();
        if let Some(free) = pc.free {
            free(pc, pc.data, 0);
        }
    }
}

/// The request is closing (finished, or terminated by nginx), before its access log line:
/// the session ends here on every path.
unsafe extern "C" fn session_ending(data: *mut c_void) {
    let s = &mut *(data as *mut Session);
    if !s.resolving.is_null() {
        ngx_resolve_name_done(s.resolving);
        s.resolving = ptr::null_mut();
    }
    if s.timer.timer_set() != 0 {
        ngx_del_timer(&mut s.timer);
    }
    say_going_away(s);
    close_target(s);
    untrack(s);
}

/// Takes the session out of the zone, counted by how it ended: listed or not (the zone
/// was full), so that accepted = closed + active once sessions end.
unsafe fn untrack(s: &mut Session) {
    if s.zone.is_null() {
        return;
    }
    let me = ptr::from_mut(s);
    TRACKED.with(|t| t.borrow_mut().retain(|&x| x != me));
    let cause = s.end().map_or(core::Cause::Client, |e| e.cause);
    let stats = s.stats().unwrap_or_default();
    if let Some(mut zone) = Locked::new(s.zone) {
        zone.remove(s.record, cause, stats);
    }
    s.zone = ptr::null_mut();
    s.record = ptr::null_mut();
}

/// Pool cleanup: the session's memory goes with the request.
unsafe extern "C" fn cleanup(data: *mut c_void) {
    let s = &mut *(data as *mut Session);
    // Already done by session_ending unless the request never reached its close.
    session_ending(data);
    ptr::drop_in_place(s);
}

/// nginx ends a live session itself (worker shutdown, a fatal error elsewhere): tell the
/// client with a close 1001 rather than cutting the connection, if the relay can.
unsafe fn say_going_away(s: &mut Session) {
    let c = s.client();
    let Some((note, frame)) = s.relay.as_mut().and_then(Relay::going_away) else {
        return;
    };
    if (*c).fd != -1 {
        log_note((*c).log, note);
        send(c, frame);
    }
}
