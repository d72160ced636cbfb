//! nginx glue for the relay: turns nginx events into calls of the state machine in
//! `core.rs` and its actions into `recv`, `send`, event registration and one timer. It
//! decides nothing itself.

use std::ffi::c_void;
use std::{mem, ptr};

use std::cell::RefCell;

use ngx::core::Status;
use ngx::ffi::{
    ngx_add_timer, ngx_connection_t, ngx_current_msec, ngx_cycle, ngx_del_timer,
    ngx_delete_posted_event, ngx_event_t, ngx_handle_read_event, ngx_handle_write_event,
    ngx_http_block_reading, ngx_http_cleanup_add, ngx_http_finalize_request,
    ngx_http_output_filter, ngx_http_request_empty_handler, ngx_http_request_t,
    ngx_http_run_posted_requests, ngx_int_t, ngx_log_t, ngx_msec_t, ngx_parse_time, ngx_pcalloc,
    ngx_pid, ngx_pool_cleanup_add, ngx_resolve_name_done, ngx_tcp_nodelay, ngx_time, NGX_LOG_ERR,
    NGX_LOG_INFO, NGX_LOWLEVEL_BUFFERED,
};
use ngx::http::{HTTPStatus, HttpModuleLocationConf, HttpModuleMainConf, NgxHttpCoreModule};
use ngx::ngx_log_error;

use super::attempt;
use super::login;
use super::record;
use super::session::{attach, session_mut, Session};
use super::upgrade;
use crate::conf::{Lifetime, LocConf};
use crate::protocol::handshake::Accept;
use crate::protocol::recording::Recorder;
use crate::relay::clock::Clock;
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
///
/// # Safety
/// `r` is a live request and `conf` its location configuration.
pub unsafe fn create(
    r: *mut ngx_http_request_t,
    conf: &LocConf,
    accept: Accept,
) -> Option<*mut Session> {
    // SAFETY: see # Safety.
    let cln = unsafe { ngx_pool_cleanup_add((*r).pool, mem::size_of::<Session>()) };
    if cln.is_null() {
        return None;
    }
    // SAFETY: the cleanup's data has room for a Session, in r's pool (Session::new's
    // contract); the cleanup drops it.
    let s = unsafe {
        let s = (*cln).data as *mut Session;
        s.write(Session::new(r, conf, accept));
        (*cln).handler = Some(cleanup);
        s
    };
    // Runs before the access log line is written, unlike the pool cleanup.
    // SAFETY: see # Safety.
    let ending = unsafe { ngx_http_cleanup_add(r, 0) };
    if ending.is_null() {
        return None;
    }
    // SAFETY: a fresh cleanup entry; s lives as long as the request.
    unsafe {
        (*ending).handler = Some(session_ending);
        (*ending).data = s.cast::<c_void>();
        attach(r, s);
    }
    Some(s)
}

/// The target is connected: answer 101 and start relaying.
///
/// # Safety
/// `s` is the request's session, its upstream's peer connected, and stays where it is
/// (the connections and timers point to it); ending the request may free it, and the
/// caller does not touch it afterwards.
pub unsafe fn start(s: &mut Session) {
    let r = s.r;
    let c = s.client();
    // SAFETY: see # Safety.
    let t = unsafe { s.target() };
    // SAFETY: the live client connection's log.
    unsafe { (*(*c).log).action = c"relaying WebSocket to target".as_ptr() as *mut _ };
    let Ok(lifetime) = lifetime(s) else {
        // SAFETY: see # Safety.
        unsafe { end_request(s, HTTPStatus::INTERNAL_SERVER_ERROR.0 as ngx_int_t) };
        return;
    };
    // SAFETY: s is the request's session.
    let Ok(view_only) = (unsafe { login::view_only(s) }) else {
        // SAFETY: see # Safety.
        unsafe { end_request(s, HTTPStatus::INTERNAL_SERVER_ERROR.0 as ngx_int_t) };
        return;
    };
    if let Some(rfb) = s.rfb.as_mut() {
        rfb.view_only = view_only;
    }
    // SAFETY: this worker's own pid, set at its start; c is live.
    let (pid, number) = unsafe { (ngx_pid, (*c).number) };
    s.id = Some(format!("{pid}-{number}"));
    // SAFETY: r is live; its loc_conf holds the core module's at that module's index.
    let location = unsafe { location_name(r) };
    // SAFETY: the target is connected and the id set.
    let Ok(record_file) = (unsafe { record::open(s, &location, now()) }) else {
        // SAFETY: see # Safety.
        unsafe { end_request(s, HTTPStatus::SERVICE_UNAVAILABLE.0 as ngx_int_t) };
        return;
    };
    // SAFETY: r is live, its header not sent yet.
    if unsafe { upgrade::switch_protocols(r, &s.accept) }.is_err() {
        // SAFETY: see # Safety.
        unsafe { end_request(s, Status::NGX_ERROR.0) };
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
    // SAFETY: r is live.
    let mut relay = Relay::new(cfg, s.accept.mode, unsafe { header_queued(r) }, now());
    if let Some(rfb) = s.rfb.as_ref() {
        relay.speak_rfb(rfb.view_only);
    }
    if record_file.is_some() {
        relay.record(Recorder::new(now(), conf.record.input != 0));
        s.record_file = record_file;
    }
    // Frames the client sent right behind its handshake are already in header_in.
    // SAFETY: r is live; header_in is null or its buffer, pos..last its unread bytes.
    unsafe {
        let hin = (*r).header_in;
        if !hin.is_null() && (*hin).last > (*hin).pos {
            let n = (*hin).last.offset_from((*hin).pos) as usize;
            relay.pipelined(std::slice::from_raw_parts((*hin).pos, n));
            (*hin).pos = (*hin).last;
        }
    }
    s.relay = Some(relay);
    // SAFETY: r is live; c and t its client and the connected target.
    unsafe {
        if NgxHttpCoreModule::location_conf(&*r).is_some_and(|clcf| clcf.tcp_nodelay != 0) {
            ngx_tcp_nodelay(c);
            ngx_tcp_nodelay(t);
        }
        (*t).data = ptr::from_mut(s).cast::<c_void>();
        (*(*t).read).handler = Some(target_handler);
        (*(*t).write).handler = Some(target_handler);
        (*r).read_event_handler = Some(client_handler);
        (*r).write_event_handler = Some(client_handler);
    }
    s.timer.handler = Some(timer_handler);
    // nginx's debug log reads an event's `data` as a connection (ngx_event_ident).
    s.timer.data = c.cast::<c_void>();
    s.timer.log = s.log();
    // SAFETY: the upstream exists.
    s.target_name = unsafe { s.peer_name() };
    // SAFETY: see # Safety.
    unsafe {
        track(s);
        run(s);
    }
}

/// `websockify_session_timeout` for this request: Err when a variable gave a bad value.
fn lifetime(s: &Session) -> Result<Option<Msec>, Failed> {
    let cv = match &s.conf().session_timeout {
        None | Some(Lifetime::Off) => return Ok(None),
        Some(Lifetime::Fixed(ms)) => return Ok(Some(*ms as Msec)),
        Some(Lifetime::Var(cv)) => cv,
    };
    let Some(mut value) = s.evaluate(cv) else {
        return Err(Failed);
    };
    if value.as_bytes() == b"off" {
        return Ok(None);
    }
    // SAFETY: the evaluated value, in the request's pool.
    let ms = unsafe { ngx_parse_time(&mut value, 0) };
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

/// The name of the location serving `r` (`/websockify`), for the status and recordings.
///
/// # Safety
/// `r` is a live request.
unsafe fn location_name(r: *mut ngx_http_request_t) -> String {
    // SAFETY: see # Safety.
    NgxHttpCoreModule::location_conf(unsafe { &*r })
        .map(|clcf| String::from_utf8_lossy(clcf.name.as_bytes()).into_owned())
        .unwrap_or_default()
}

/// Records the session in the `websockify_zone`, if there is one, and in this worker's
/// list that the sync timer walks.
///
/// # Safety
/// `s` is the request's session (`create`) and stays where it is: session_ending
/// untracks it before it goes.
unsafe fn track(s: &mut Session) {
    // SAFETY: r is live (Session invariant).
    let Some(zone) = Websockify::main_conf(unsafe { &*s.r })
        .map(|m| m.zone)
        .filter(|z| !z.is_null())
    else {
        return;
    };
    // SAFETY: r and its client connection are live, and ngx_pid is set at the worker's
    // start.
    let (client, location, pid) = unsafe {
        (
            Text::new((*s.client()).addr_text.as_bytes()),
            Text::new(location_name(s.r).as_bytes()),
            i64::from(ngx_pid),
        )
    };
    let view = status::Session {
        id: Text::new(s.id().unwrap_or_default().as_bytes()),
        pid,
        owner_start: zone::own_start(),
        client,
        target: Text::new(s.target_name().unwrap_or_default().as_bytes()),
        location,
        started: ngx_time() as u64,
        from_client: 0,
        to_client: 0,
        frames_from_client: 0,
        rfb_security: Text::new(s.rfb_security().unwrap_or_default().as_bytes()),
        desktop: Text::new(b""),
        revoke: false,
    };
    // SAFETY: the http block's websockify_zone, of this cycle.
    let Some(mut locked) = (unsafe { Locked::new(zone) }) else {
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
        // SAFETY: the request's log; the zone as above.
        None => unsafe { zone::warn_full(s.log(), zone) },
    }
}

thread_local! {
    /// This worker's sessions that have a zone record.
    static TRACKED: RefCell<Vec<*mut Session>> = const { RefCell::new(Vec::new()) };
    static SYNC: std::cell::Cell<*mut ngx_event_t> = const { std::cell::Cell::new(ptr::null_mut()) };
}

/// Starts the worker's sync timer if it is not running.
fn arm_sync() {
    let mut ev = SYNC.with(|e| e.get());
    if ev.is_null() {
        // SAFETY: ngx_cycle is the worker's live cycle; the event lives in its pool.
        ev = unsafe { ngx_pcalloc((*ngx_cycle).pool, mem::size_of::<ngx_event_t>()) }
            as *mut ngx_event_t;
        if ev.is_null() {
            return;
        }
        // SAFETY: the zeroed event just made; ngx_cycle as above.
        unsafe {
            (*ev).handler = Some(sync_handler);
            (*ev).log = (*ngx_cycle).log;
            // As for nginx's own worker-wide timers: debug logging reads `data` for an ident.
            (*ev).data = ngx_cycle.cast::<c_void>();
            // The sessions' own timers keep a shutting-down worker alive, not this one.
            (*ev).set_cancelable(1);
        }
        SYNC.with(|e| e.set(ev));
    }
    // SAFETY: SYNC's event, alive for the worker's cycle.
    unsafe {
        if (*ev).timer_set() == 0 {
            ngx_add_timer(ev, SYNC_EVERY);
        }
    }
}

/// Writes every tracked session's counters to the zone, then ends the revoked ones.
///
/// # Safety
/// nginx calls it for SYNC's timer; TRACKED holds live sessions only.
unsafe extern "C" fn sync_handler(_ev: *mut ngx_event_t) {
    let sessions = TRACKED.with(|t| t.borrow().clone());
    let mut revoked = Vec::new();
    // SAFETY: tracked sessions are live (untracked before they go), their zone set.
    let mut zone = sessions
        .first()
        .and_then(|&s| unsafe { Locked::new((*s).zone) });
    if let Some(locked) = zone.as_mut() {
        for &s in &sessions {
            // SAFETY: as above.
            let (stats, record, desktop) = unsafe {
                let s = &*s;
                (s.stats().unwrap_or_default(), s.record, s.desktop())
            };
            if locked.update(record, stats, desktop) {
                revoked.push(s);
            }
        }
    }
    drop(zone);
    for s in revoked {
        // Still tracked: an earlier session of this list may have ended since.
        if TRACKED.with(|t| t.borrow().contains(&s)) {
            // SAFETY: still tracked, so live; nothing else uses it in this handler.
            unsafe {
                if let Some(relay) = (*s).relay.as_mut() {
                    relay.revoke();
                }
                run_from_event(s);
            }
        }
    }
    if TRACKED.with(|t| !t.borrow().is_empty()) {
        arm_sync();
    }
}

thread_local! {
    static CLOCK: RefCell<Clock> = const { RefCell::new(Clock::new(ngx_msec_t::BITS)) };
}

fn now() -> Msec {
    // SAFETY: nginx's cached clock, written only by this worker's thread.
    let raw = unsafe { ngx_current_msec } as u64;
    CLOCK.with(|c| c.borrow_mut().at(raw))
}

/// The 101 still waits in nginx's output chain or in the TLS layer's buffer.
///
/// # Safety
/// `r` is a live request.
unsafe fn header_queued(r: *mut ngx_http_request_t) -> bool {
    // SAFETY: see # Safety.
    unsafe { !(*r).out.is_null() || (*(*r).connection).buffered() & NGX_LOWLEVEL_BUFFERED != 0 }
}

/// # Safety
/// nginx calls it with a live request.
unsafe extern "C" fn client_handler(r: *mut ngx_http_request_t) {
    // SAFETY: see # Safety; a request with this handler has a running session.
    unsafe {
        if let Some(s) = session_mut(r) {
            run(s);
        }
    }
}

/// # Safety
/// nginx calls it with an event of the target connection, its `data` the session.
unsafe extern "C" fn target_handler(ev: *mut ngx_event_t) {
    // SAFETY: see # Safety.
    unsafe {
        let t = (*ev).data as *mut ngx_connection_t;
        run_from_event((*t).data as *mut Session);
    }
}

/// # Safety
/// nginx calls it with the session's timer, its `data` the client connection.
unsafe extern "C" fn timer_handler(ev: *mut ngx_event_t) {
    // SAFETY: see # Safety; the client connection's data is its request.
    unsafe {
        let c = (*ev).data as *mut ngx_connection_t;
        let r = (*c).data as *mut ngx_http_request_t;
        if let Some(s) = session_mut(r) {
            run_from_event(s);
        }
    }
}

/// From an event that is not the client's: ending the request may only post it
/// (terminate); run it now, as the upstream module does, before the client connection
/// sees another event.
///
/// # Safety
/// `s` is null or a running session (as for `run`), not used elsewhere meanwhile.
unsafe fn run_from_event(s: *mut Session) {
    // SAFETY: see # Safety.
    if let Some(s) = unsafe { s.as_mut() } {
        let c = s.client();
        // SAFETY: see # Safety; the client connection outlives its requests.
        unsafe {
            run(s);
            ngx_http_run_posted_requests(c);
        }
    }
}

/// Performs the relay's actions until it waits or finishes.
///
/// # Safety
/// `s` is the request's session, started (`start`: its upstream exists); ending the
/// request may free it, and the caller does not touch it afterwards.
unsafe fn run(s: &mut Session) {
    // SAFETY: see # Safety.
    let (r, c, t, log) = (s.r, s.client(), unsafe { s.target() }, s.log());
    if t.is_null() {
        return;
    }
    loop {
        let now = now();
        record::check(s);
        if record::must_flush(s) {
            record::flush(s, now, true);
        }
        let Some(relay) = s.relay.as_mut() else {
            return;
        };
        // SAFETY: c is the live client connection, t the target.
        let ready = unsafe {
            Ready {
                client_read: (*(*c).read).ready() != 0,
                client_write: (*(*c).write).ready() != 0,
                target_read: (*(*t).read).ready() != 0,
                target_write: (*(*t).write).ready() != 0,
            }
        };
        match relay.poll(ready, now) {
            Action::Log(note) => log_note(log, note),
            Action::FlushHeader => {
                // SAFETY: r is the live request.
                let io = unsafe {
                    if ngx_http_output_filter(r, ptr::null_mut()) == Status::NGX_ERROR.0 {
                        Io::Error
                    } else if header_queued(r) {
                        Io::Again
                    } else {
                        Io::Done(0)
                    }
                };
                relay.header_flushed(io);
            }
            Action::RecvClient(buf) => {
                // SAFETY: c is the live client connection.
                let io = unsafe { recv(c, buf) };
                relay.client_read(io, now);
            }
            Action::RecvTarget(buf) => {
                // SAFETY: t is the live target connection.
                let io = unsafe { recv(t, buf) };
                if let Io::Done(n) = io {
                    s.received += n as u64;
                }
                relay.target_read(io, now);
            }
            Action::SendClient(bytes) => {
                // SAFETY: as for RecvClient.
                let io = unsafe { send(c, bytes) };
                relay.client_sent(io, now);
            }
            Action::SendTarget(bytes) => {
                // SAFETY: as for RecvTarget.
                let io = unsafe { send(t, bytes) };
                relay.target_sent(io, now);
            }
            Action::Wait(deadline) => {
                // A required recording that cannot be written ends the session: on.
                if record::flush(s, now, false) {
                    continue;
                }
                // SAFETY: see # Safety; s is not touched after finish.
                unsafe {
                    if wait(s, deadline, now).is_err() {
                        if let Some(relay) = s.relay.as_mut() {
                            relay.abort();
                        }
                        finish(s, None);
                    }
                }
                return;
            }
            Action::Finish(end) => {
                // SAFETY: as for Wait.
                unsafe { finish(s, Some(end)) };
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

/// # Safety
/// `c` is a live connection.
unsafe fn recv(c: *mut ngx_connection_t, buf: &mut [u8]) -> Io {
    // SAFETY: see # Safety.
    let Some(recv) = (unsafe { (*c).recv }) else {
        return Io::Error;
    };
    // SAFETY: see # Safety; buf is writable for buf.len() bytes.
    match unsafe { recv(c, buf.as_mut_ptr(), buf.len()) } {
        n if n == Status::NGX_AGAIN.0 => Io::Again,
        0 => Io::Eof,
        n if n < 0 => Io::Error,
        n => Io::Done(n as usize),
    }
}

/// # Safety
/// `c` is a live connection.
unsafe fn send(c: *mut ngx_connection_t, bytes: &[u8]) -> Io {
    // SAFETY: see # Safety.
    let Some(send) = (unsafe { (*c).send }) else {
        return Io::Error;
    };
    // SAFETY: see # Safety; nginx only reads the bytes.
    match unsafe { send(c, bytes.as_ptr().cast_mut(), bytes.len()) } {
        n if n == Status::NGX_AGAIN.0 => Io::Again,
        n if n < 0 => Io::Error,
        n => Io::Done(n as usize),
    }
}

/// Registers interest in all four events and sets the relay's deadline.
///
/// # Safety
/// The request's upstream exists and its peer is connected.
unsafe fn wait(s: &mut Session, deadline: Option<Msec>, now: Msec) -> Result<(), Failed> {
    // SAFETY: see # Safety.
    let (c, t) = (s.client(), unsafe { s.target() });
    // SAFETY: the live client and target connections' events.
    unsafe {
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
    }
    // SAFETY: the session's own timer, set up by start.
    unsafe {
        match deadline {
            Some(at) => ngx_add_timer(&mut s.timer, at.saturating_sub(now).max(1) as ngx_msec_t),
            None if s.timer.timer_set() != 0 => ngx_del_timer(&mut s.timer),
            None => {}
        }
    }
    Ok(())
}

/// Ends the session as the relay says (None: a local failure). `s` is freed with the
/// request pool, so nothing may touch it afterwards.
///
/// # Safety
/// As for `end_request`.
unsafe fn finish(s: &mut Session, end: Option<End>) {
    // The recording is complete when the session is: a lingering close may keep the
    // request for seconds more.
    record::flush(s, now(), true);
    s.record_file = None;
    let rc = match end.map(|e| e.close) {
        Some(Close::Clean) => {
            // Let the client read our close frame before the socket goes away.
            // SAFETY: r is live (Session invariant).
            unsafe { (*s.r).set_lingering_close(1) };
            Status::NGX_OK.0
        }
        Some(Close::Drop { timed_out }) => {
            // SAFETY: the live client connection.
            unsafe { (*s.client()).set_timedout(u32::from(timed_out)) };
            Status::NGX_ERROR.0
        }
        None => Status::NGX_ERROR.0,
    };
    // SAFETY: see # Safety.
    unsafe { end_request(s, rc) };
}

/// # Safety
/// `s` is the request's session; the request ends here and may free it: the caller does
/// not touch `s` afterwards.
unsafe fn end_request(s: &mut Session, rc: ngx_int_t) {
    close_target(s);
    // Out of the zone now: a lingering close may keep the request for seconds more.
    untrack(s);
    let r = s.r;
    // SAFETY: the session's own timer; r is live (Session invariant); see # Safety.
    unsafe {
        if s.timer.timer_set() != 0 {
            ngx_del_timer(&mut s.timer);
        }
        // The thread pool may have posted it (a recording's write completed).
        if s.timer.posted() != 0 {
            ngx_delete_posted_event(&mut s.timer);
        }
        // Finalizing may be deferred (a posted termination): no more relay calls meanwhile.
        (*r).read_event_handler = Some(ngx_http_block_reading);
        (*r).write_event_handler = Some(ngx_http_request_empty_handler);
        ngx_http_finalize_request(r, rc);
    }
}

/// Closes the target connection and returns its peer to the balancer.
fn close_target(s: &mut Session) {
    attempt::settle(s, s.received);
    // SAFETY: r is live (Session invariant); its upstream is null or its own.
    let Some(u) = (unsafe { (*s.r).upstream.as_mut() }) else {
        return;
    };
    let pc = &mut u.peer;
    if !pc.connection.is_null() {
        // TLS to the target ends with a close_notify alert, as the upstream module's.
        // SAFETY: a set connection is the live target, unused after this.
        unsafe { super::setup::close(pc.connection, true) };
        pc.connection = ptr::null_mut();
        if let Some(free) = pc.free {
            // SAFETY: the balancer's own callback and data.
            unsafe { free(pc, pc.data, 0) };
        }
    }
}

/// The request is closing (finished, or terminated by nginx), before its access log line:
/// the session ends here on every path.
///
/// # Safety
/// nginx calls it with the session `create` registered, its request still live.
unsafe extern "C" fn session_ending(data: *mut c_void) {
    // SAFETY: see # Safety.
    let s = unsafe { &mut *(data as *mut Session) };
    // SAFETY: a set resolving is the context resolve started; the timer the session's.
    unsafe {
        if !s.resolving.is_null() {
            ngx_resolve_name_done(s.resolving);
            s.resolving = ptr::null_mut();
        }
        if s.timer.timer_set() != 0 {
            ngx_del_timer(&mut s.timer);
        }
        if s.timer.posted() != 0 {
            ngx_delete_posted_event(&mut s.timer);
        }
    }
    say_going_away(s);
    record::flush(s, now(), true);
    s.record_file = None;
    close_target(s);
    untrack(s);
}

/// Takes the session out of the zone, counted by how it ended: listed or not (the zone
/// was full), so that accepted = closed + active once sessions end.
fn untrack(s: &mut Session) {
    if s.zone.is_null() {
        return;
    }
    let me = ptr::from_mut(s);
    TRACKED.with(|t| t.borrow_mut().retain(|&x| x != me));
    let cause = s.end().map_or(core::Cause::Client, |e| e.cause);
    let stats = s.stats().unwrap_or_default();
    // SAFETY: a set zone is a zone of this cycle (Session invariant).
    if let Some(mut zone) = unsafe { Locked::new(s.zone) } {
        zone.remove(s.record, cause, stats);
    }
    s.zone = ptr::null_mut();
    s.record = ptr::null_mut();
}

/// Pool cleanup: the session's memory goes with the request.
///
/// # Safety
/// nginx calls it once, with the session `create` wrote, as the request's pool goes.
unsafe extern "C" fn cleanup(data: *mut c_void) {
    // SAFETY: see # Safety.
    let s = unsafe { &mut *(data as *mut Session) };
    // Already done by session_ending unless the request never reached its close.
    // SAFETY: see # Safety; s is dropped once, here, and not used afterwards.
    unsafe {
        session_ending(data);
        ptr::drop_in_place(s);
    }
}

/// nginx ends a live session itself (worker shutdown, a fatal error elsewhere): tell the
/// client with a close 1001 rather than cutting the connection, if the relay can.
fn say_going_away(s: &mut Session) {
    let c = s.client();
    let Some((note, frame)) = s.relay.as_mut().and_then(Relay::going_away) else {
        return;
    };
    // SAFETY: the live client connection (Session invariant).
    unsafe {
        if (*c).fd != -1 {
            log_note((*c).log, note);
            send(c, frame);
        }
    }
}
