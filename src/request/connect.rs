//! Choosing and connecting to the target. Every target becomes an upstream peer set:
//! configured ones (addresses, host names, `upstream {}` groups) through the upstream
//! module and its balancers; per-request ones from an address or a name resolved with
//! nginx's `resolver`, after the `websockify_allow` check. Peers are tried in turn until
//! one connects: resolve → connect → PROXY header → TLS → ready, each step ending in
//! ready, pending, next server or a local failure, and one function (`next_upstream`)
//! deciding the next server. Meanwhile the client is watched, as `ngx_http_upstream_module` does: a
//! client that leaves ends the request with 499 at once.

use core::ffi::c_void;
use core::{mem, ptr};

use ngx::core::Status;
use ngx::ffi::{
    getsockopt, ngx_add_timer, ngx_connection_t, ngx_current_msec, ngx_del_timer, ngx_destroy_pool,
    ngx_event_connect_peer, ngx_event_t, ngx_http_block_reading, ngx_http_complex_value,
    ngx_http_empty_handler, ngx_http_finalize_request, ngx_http_request_t,
    ngx_http_run_posted_requests, ngx_http_upstream_create,
    ngx_http_upstream_create_round_robin_peer, ngx_http_upstream_resolved_t,
    ngx_http_upstream_srv_conf_t, ngx_parse_url, ngx_pcalloc, ngx_pool_cleanup_add, ngx_pool_t,
    ngx_resolve_name, ngx_resolve_name_done, ngx_resolve_start, ngx_resolver_addr_t,
    ngx_resolver_ctx_t, ngx_resolver_strerror, ngx_socket_errno, ngx_str_t, ngx_url_t, recv,
    socklen_t, MSG_PEEK, NGX_EAGAIN, NGX_HTTP_UPSTREAM_CREATE, NGX_LOG_ERR, NGX_LOG_INFO,
    NGX_PEER_FAILED, SOL_SOCKET, SO_ERROR,
};
use ngx::http::{
    HTTPStatus, HttpModuleLocationConf, HttpModuleMainConf, NgxHttpCoreModule,
    NgxHttpUpstreamModule,
};
use ngx::ngx_log_error;

use super::addr::peer_of;
use super::attempt;
use super::relay;
use super::session::{session_mut, Session};
use super::setup::{self, Local, Step};
use crate::conf::args::cstr;
use crate::conf::{LocConf, Target, DEFAULT_PORT};
use crate::protocol::allow::{self, Peer};

/// What choosing the target left to do.
enum Chosen {
    /// Peers are set: connect.
    Peers,
    /// A host name is being resolved: `resolved` connects.
    Resolving,
}

/// Where connecting stands once the TCP connection is up.
#[derive(Clone, Copy)]
enum Stage {
    ProxyHeader,
    Tls,
    Done,
}

impl Stage {
    fn next(self) -> Stage {
        match self {
            Stage::ProxyHeader => Stage::Tls,
            Stage::Tls | Stage::Done => Stage::Done,
        }
    }
}

/// Ends the request with `status` before any 101.
unsafe fn finalize(s: &mut Session, status: HTTPStatus) {
    ngx_http_finalize_request(s.r, Status::from(status).into());
}

/// Sets up the peers for this request and starts connecting; failures end the request
/// with their status.
pub unsafe fn begin(s: &mut Session) {
    let r = s.r;
    if ngx_http_upstream_create(r) != Status::NGX_OK.0 {
        finalize(s, HTTPStatus::INTERNAL_SERVER_ERROR);
        return;
    }
    // The client's read event stays registered from reading the request (with
    // EPOLLRDHUP / EV_EOF): it reports a client that leaves; relay::start replaces these.
    (*r).read_event_handler = Some(check_client_read);
    (*r).write_event_handler = Some(check_client_write);
    if setup::set_local(s).is_err() {
        finalize(s, HTTPStatus::INTERNAL_SERVER_ERROR);
        return;
    }
    let conf = &*s.conf;
    let rc = match conf.target.as_ref() {
        Some(Target::Static(uscf)) => {
            // The name TLS verifies and sends by default, as proxy_pass's host.
            (*(*r).upstream).ssl_name = (**uscf).host;
            init_group(r, *uscf)
        }
        Some(Target::Dynamic(cv)) => choose(s, conf, cv),
        None => Err(HTTPStatus::INTERNAL_SERVER_ERROR),
    };
    match rc {
        Ok(Chosen::Peers) => connect(s),
        Ok(Chosen::Resolving) => {}
        Err(status) => finalize(s, status),
    }
}

unsafe fn init_group(
    r: *mut ngx_http_request_t,
    uscf: *mut ngx_http_upstream_srv_conf_t,
) -> Result<Chosen, HTTPStatus> {
    let init = (*uscf).peer.init.ok_or(HTTPStatus::INTERNAL_SERVER_ERROR)?;
    if init(r, uscf) != Status::NGX_OK.0 {
        return Err(HTTPStatus::INTERNAL_SERVER_ERROR);
    }
    Ok(Chosen::Peers)
}

/// A per-request target: an `upstream {}` group by name, an address, or a host name to
/// resolve.
unsafe fn choose(
    s: &mut Session,
    conf: &LocConf,
    cv: &ngx::ffi::ngx_http_complex_value_t,
) -> Result<Chosen, HTTPStatus> {
    let r = s.r;
    let log = (*(*r).connection).log;
    let mut value = ngx_str_t::default();
    if ngx_http_complex_value(r, ptr::from_ref(cv).cast_mut(), &mut value) != Status::NGX_OK.0 {
        return Err(HTTPStatus::INTERNAL_SERVER_ERROR);
    }
    let shown = String::from_utf8_lossy(value.as_bytes()).into_owned();
    if value.len == 0 {
        ngx_log_error!(
            NGX_LOG_ERR,
            log,
            "websockify: the target evaluated to an empty value"
        );
        return Err(HTTPStatus::BAD_GATEWAY);
    }
    let mut u: ngx_url_t = mem::zeroed();
    u.url = value;
    u.default_port = DEFAULT_PORT;
    u.set_no_resolve(1);
    if ngx_parse_url((*r).pool, &mut u) != Status::NGX_OK.0 {
        let why = cstr(u.err).unwrap_or("invalid");
        ngx_log_error!(
            NGX_LOG_ERR,
            log,
            "websockify: invalid target \"{shown}\": {why}"
        );
        return Err(HTTPStatus::BAD_GATEWAY);
    }
    (*(*r).upstream).ssl_name = u.host;
    // A group is reached only when a rule names it: a value from the client must not
    // reach upstreams meant for proxy_pass or fastcgi.
    if let Some(uscf) = find_group(r, &u) {
        if !allow::group_allowed(&conf.allow, u.host.as_bytes()) {
            deny(log, &shown, conf);
            return Err(HTTPStatus::FORBIDDEN);
        }
        return init_group(r, uscf);
    }
    if u.naddrs == 0 {
        if !allow::may_resolve(&conf.allow, u.host.as_bytes(), u.port) {
            deny(log, &shown, conf);
            return Err(HTTPStatus::FORBIDDEN);
        }
        return resolve(s, &u, &shown);
    }
    let addr = &*u.addrs;
    let Some(peer) = peer_of(addr.sockaddr, addr.socklen) else {
        return Err(HTTPStatus::BAD_GATEWAY);
    };
    if !allow::allowed(&conf.allow, None, peer) {
        deny(log, &shown, conf);
        return Err(HTTPStatus::FORBIDDEN);
    }
    peers_from(r, |ur| {
        ur.sockaddr = addr.sockaddr;
        ur.socklen = addr.socklen;
        ur.name = addr.name;
        ur.naddrs = 1;
    })?;
    Ok(Chosen::Peers)
}

/// Round-robin peers for this request from addresses that `fill` describes (copied).
unsafe fn peers_from(
    r: *mut ngx_http_request_t,
    fill: impl FnOnce(&mut ngx_http_upstream_resolved_t),
) -> Result<(), HTTPStatus> {
    let ur = ngx_pcalloc((*r).pool, mem::size_of::<ngx_http_upstream_resolved_t>())
        as *mut ngx_http_upstream_resolved_t;
    let Some(ur) = ur.as_mut() else {
        return Err(HTTPStatus::INTERNAL_SERVER_ERROR);
    };
    fill(ur);
    if ngx_http_upstream_create_round_robin_peer(r, ur) != Status::NGX_OK.0 {
        return Err(HTTPStatus::INTERNAL_SERVER_ERROR);
    }
    Ok(())
}

unsafe fn deny(log: *mut ngx::ffi::ngx_log_t, target: &str, conf: &LocConf) {
    let hint = if conf.allow.is_empty() {
        " (no websockify_allow rule: per-request targets are refused by default)"
    } else {
        ""
    };
    ngx_log_error!(
        NGX_LOG_ERR,
        log,
        "websockify: target \"{target}\" is not allowed{hint}"
    );
}

/// An explicit `upstream NAME {}` block that a per-request value names.
unsafe fn find_group(
    r: *mut ngx_http_request_t,
    u: &ngx_url_t,
) -> Option<*mut ngx_http_upstream_srv_conf_t> {
    let umcf = NgxHttpUpstreamModule::main_conf(&*r)?;
    let list = &umcf.upstreams;
    let groups = core::slice::from_raw_parts(
        list.elts as *const *mut ngx_http_upstream_srv_conf_t,
        list.nelts,
    );
    groups.iter().copied().find(|&g| {
        (*g).flags & NGX_HTTP_UPSTREAM_CREATE as usize != 0
            && u.no_port() != 0
            && (*g).host.as_bytes().eq_ignore_ascii_case(u.host.as_bytes())
    })
}

/// Starts resolving a per-request host name with the location's `resolver`.
unsafe fn resolve(s: &mut Session, u: &ngx_url_t, shown: &str) -> Result<Chosen, HTTPStatus> {
    let r = s.r;
    let log = (*(*r).connection).log;
    let Some(clcf) = NgxHttpCoreModule::location_conf(&*r) else {
        return Err(HTTPStatus::INTERNAL_SERVER_ERROR);
    };
    let mut temp: ngx_resolver_ctx_t = mem::zeroed();
    temp.name = u.host;
    let ctx = ngx_resolve_start(clcf.resolver, &mut temp);
    if ctx.is_null() {
        return Err(HTTPStatus::INTERNAL_SERVER_ERROR);
    }
    // NGX_NO_RESOLVER
    if ctx as isize == -1 {
        ngx_log_error!(
            NGX_LOG_ERR,
            log,
            "websockify: no resolver defined to resolve target \"{shown}\""
        );
        return Err(HTTPStatus::BAD_GATEWAY);
    }
    (*ctx).name = u.host;
    (*ctx).handler = Some(resolved);
    (*ctx).data = ptr::from_mut(s).cast();
    (*ctx).timeout = clcf.resolver_timeout;
    s.port = u.port;
    s.resolving = ctx;
    // A cached answer runs resolved() inside this call: the session may have started or
    // ended on return (the content handler's reference keeps the request alive).
    if ngx_resolve_name(ctx) != Status::NGX_OK.0 {
        s.resolving = ptr::null_mut();
        return Err(HTTPStatus::INTERNAL_SERVER_ERROR);
    }
    Ok(Chosen::Resolving)
}

unsafe extern "C" fn resolved(ctx: *mut ngx_resolver_ctx_t) {
    let s = &mut *((*ctx).data as *mut Session);
    let c = (*s.r).connection;
    // Called from ngx_resolve_name() itself for a cached answer (async unset): the content
    // handler is still on the stack and holds the request; running posted requests here
    // could free it under that handler (ngx_http_upstream_resolve_handler does the same).
    let run_posted = (*ctx).async_() != 0;
    let rc = use_resolved(s, ctx);
    s.resolving = ptr::null_mut();
    ngx_resolve_name_done(ctx);
    match rc {
        Ok(()) => connect(s),
        Err(status) => finalize(s, status),
    }
    if run_posted {
        ngx_http_run_posted_requests(c);
    }
}

unsafe fn use_resolved(s: &mut Session, ctx: *mut ngx_resolver_ctx_t) -> Result<(), HTTPStatus> {
    let r = s.r;
    let log = (*(*r).connection).log;
    let conf = &*s.conf;
    let name = (*ctx).name.as_bytes();
    let shown = format!("{}:{}", String::from_utf8_lossy(name), s.port);
    if (*ctx).state != 0 {
        let why = cstr(ngx_resolver_strerror((*ctx).state)).unwrap_or("error");
        ngx_log_error!(
            NGX_LOG_ERR,
            log,
            "websockify: target \"{shown}\" could not be resolved ({}: {why})",
            (*ctx).state
        );
        return Err(HTTPStatus::BAD_GATEWAY);
    }
    let found = core::slice::from_raw_parts((*ctx).addrs, (*ctx).naddrs);
    let list = ngx_pcalloc((*r).pool, mem::size_of_val(found)) as *mut ngx_resolver_addr_t;
    if list.is_null() {
        return Err(HTTPStatus::INTERNAL_SERVER_ERROR);
    }
    let mut kept = 0;
    for a in found {
        let peer = peer_of(a.sockaddr, a.socklen).map(|p| with_port(p, s.port));
        if peer.is_some_and(|p| allow::allowed(&conf.allow, Some(name), p)) {
            list.add(kept).write(*a);
            kept += 1;
        }
    }
    if kept == 0 {
        deny(log, &shown, conf);
        return Err(HTTPStatus::FORBIDDEN);
    }
    // Copies the addresses: the resolver's go away with ngx_resolve_name_done().
    peers_from(r, |ur| {
        ur.host = (*ctx).name;
        ur.port = s.port;
        ur.addrs = list;
        ur.naddrs = kept;
    })
}

fn with_port(peer: Peer, port: u16) -> Peer {
    match peer {
        Peer::Inet(mut sa) => {
            sa.set_port(port);
            Peer::Inet(sa)
        }
        unix => unix,
    }
}

/// Connects to the next peer; when none is left the request ends with the last
/// failure's status. Results as in ngx_http_upstream_connect().
pub unsafe fn connect(s: &mut Session) {
    let log = (*(*s.r).connection).log;
    (*log).action = c"connecting to websockify target".as_ptr() as *mut _;
    loop {
        let pc = s.peer();
        (*pc).log = log;
        (*pc).start_time = ngx_current_msec;
        let rc = Status(ngx_event_connect_peer(pc));
        if rc == Status::NGX_ERROR {
            // A local failure (no free connection, no socket), logged by nginx: not the
            // peer's fault, so it is not marked failed.
            release_peer(s);
            finalize(s, HTTPStatus::INTERNAL_SERVER_ERROR);
            return;
        }
        if attempt::push(s).is_err() {
            release_peer(s);
            finalize(s, HTTPStatus::INTERNAL_SERVER_ERROR);
            return;
        }
        match rc {
            Status::NGX_BUSY => {
                ngx_log_error!(NGX_LOG_ERR, log, "websockify: no live upstreams");
                if let Some(state) = attempt::current(s) {
                    state.status = HTTPStatus::BAD_GATEWAY.into();
                }
                finalize(s, HTTPStatus::BAD_GATEWAY);
                return;
            }
            // connect() failed at once; nginx logged it naming the peer.
            Status::NGX_DECLINED => {
                if !peer_failed(s, HTTPStatus::BAD_GATEWAY, None) {
                    return;
                }
            }
            Status::NGX_AGAIN => {
                let c = (*pc).connection;
                (*c).data = ptr::from_mut(s).cast::<c_void>();
                (*(*c).read).handler = Some(connect_handler);
                (*(*c).write).handler = Some(connect_handler);
                ngx_add_timer((*c).write, (*s.conf).connect_timeout);
                return;
            }
            // NGX_OK, or NGX_DONE: a connected one from the keepalive cache.
            _ => {
                if rc == Status::NGX_DONE && adopt_pool(s).is_err() {
                    release_peer(s);
                    finalize(s, HTTPStatus::INTERNAL_SERVER_ERROR);
                    return;
                }
                return connected(s);
            }
        }
    }
}

/// A cached connection brings the pool the upstream module made for it; nothing else
/// destroys it once the relay closes the connection, so the request's pool does.
unsafe fn adopt_pool(s: &mut Session) -> Result<(), Local> {
    let pool = (*(*s.peer()).connection).pool;
    if pool.is_null() {
        return Ok(());
    }
    let cln = ngx_pool_cleanup_add((*s.r).pool, 0);
    if cln.is_null() {
        return Err(Local);
    }
    (*cln).handler = Some(destroy_pool);
    (*cln).data = pool.cast();
    Ok(())
}

unsafe extern "C" fn destroy_pool(data: *mut c_void) {
    ngx_destroy_pool(data as *mut ngx_pool_t);
}

/// Closes the peer connection, if any, and gives the peer back to the balancer without
/// blaming it.
unsafe fn release_peer(s: &mut Session) {
    attempt::settle(s, 0);
    let pc = s.peer();
    if !(*pc).connection.is_null() {
        setup::close((*pc).connection, true);
        (*pc).connection = ptr::null_mut();
    }
    if !(*pc).sockaddr.is_null() {
        if let Some(free) = (*pc).free {
            free(pc, (*pc).data, 0);
        }
        (*pc).sockaddr = ptr::null_mut();
    }
}

unsafe extern "C" fn connect_handler(ev: *mut ngx_event_t) {
    let c = (*ev).data as *mut ngx_connection_t;
    let s = &mut *((*c).data as *mut Session);
    let client = (*s.r).connection;
    connect_event(s, ev, c);
    // As in the upstream module: requests ended from a peer's event run now.
    ngx_http_run_posted_requests(client);
}

unsafe fn connect_event(s: &mut Session, ev: *mut ngx_event_t, c: *mut ngx_connection_t) {
    if (*c).close() != 0 {
        return shutting_down(s);
    }
    if (*ev).timedout() != 0 {
        return next_upstream(
            s,
            HTTPStatus::GATEWAY_TIME_OUT,
            Some("connection timed out"),
        );
    }
    // connect() completes (or fails) with a write event; a read event may come first in
    // the same round (epoll), or alone from nginx itself.
    if (*(*c).write).ready() == 0 {
        return;
    }
    if let Some(err) = socket_error(c) {
        next_upstream(s, HTTPStatus::BAD_GATEWAY, Some(&os_error(err)));
    } else {
        connected(s);
    }
}

/// The TCP connection is up: the PROXY header, TLS, then the relay.
unsafe fn connected(s: &mut Session) {
    (*setup::target_conn(s)).data = ptr::from_mut(s).cast();
    advance(s, Stage::ProxyHeader);
}

/// Runs the setup steps from `stage` on until one waits or ends the attempt.
unsafe fn advance(s: &mut Session, from: Stage) {
    let mut stage = from;
    loop {
        let step = match stage {
            Stage::ProxyHeader if setup::wants_proxy_header(s) => setup::send_proxy_header(s),
            Stage::ProxyHeader => Step::Ready,
            Stage::Tls => setup::start_tls(s),
            Stage::Done => return established(s),
        };
        if !settle(s, stage, step) {
            return;
        }
        stage = stage.next();
    }
}

/// Acts on how a step ended; true when the next step may run now.
unsafe fn settle(s: &mut Session, stage: Stage, step: Step) -> bool {
    match step {
        Step::Ready => return true,
        Step::Pending => wait(s, stage),
        Step::Next { status, why } => next_upstream(s, status, why),
        Step::Local => {
            release_peer(s);
            finalize(s, HTTPStatus::INTERNAL_SERVER_ERROR);
        }
    }
    false
}

/// A step waits for the target socket: its handler resumes it, and the connect timer,
/// as in the upstream module, bounds the PROXY header and the handshake too.
unsafe fn wait(s: &mut Session, stage: Stage) {
    let t = setup::target_conn(s);
    match stage {
        Stage::ProxyHeader => {
            (*(*t).write).handler = Some(proxy_header_handler);
            // Target bytes wait for the relay: the event's ready flag keeps them.
            (*(*t).read).handler = Some(ngx_http_empty_handler);
        }
        Stage::Tls => (*(*t).ssl).handler = Some(handshake_handler),
        Stage::Done => return,
    }
    if (*(*t).write).timer_set() == 0 {
        ngx_add_timer((*t).write, (*s.conf).connect_timeout);
    }
}

unsafe extern "C" fn proxy_header_handler(ev: *mut ngx_event_t) {
    let t = (*ev).data as *mut ngx_connection_t;
    let s = &mut *((*t).data as *mut Session);
    let client = (*s.r).connection;
    if (*ev).timedout() != 0 {
        let why = Some("timed out sending the PROXY protocol header");
        next_upstream(s, HTTPStatus::GATEWAY_TIME_OUT, why);
    } else {
        advance(s, Stage::ProxyHeader);
    }
    ngx_http_run_posted_requests(client);
}

unsafe extern "C" fn handshake_handler(t: *mut ngx_connection_t) {
    let s = &mut *((*t).data as *mut Session);
    let client = (*s.r).connection;
    let step = setup::handshake_done(s, t);
    if settle(s, Stage::Tls, step) {
        advance(s, Stage::Tls.next());
    }
    ngx_http_run_posted_requests(client);
}

/// A worker's graceful shutdown outlasted `worker_shutdown_timeout`: nginx calls every
/// connection's read handler with `c->close` set (ngx_shutdown_timer_handler). The
/// connect is abandoned, its peer not blamed, and the client connection closed without
/// a response, as a request of the upstream module ends then.
unsafe fn shutting_down(s: &mut Session) {
    let log = (*(*s.r).connection).log;
    let name = (*s.peer())
        .name
        .as_ref()
        .map(|n| String::from_utf8_lossy(n.as_bytes()).into_owned())
        .unwrap_or_default();
    ngx_log_error!(
        NGX_LOG_INFO,
        log,
        "websockify: the worker is shutting down: connect to target \"{name}\" abandoned"
    );
    release_peer(s);
    // No response: the client connection closes, as an upstream request ends then.
    ngx_http_finalize_request(s.r, Status::NGX_ERROR.into());
}

/// "(111: Connection refused)", the way nginx shows an errno.
fn os_error(err: i32) -> String {
    let why = std::io::Error::from_raw_os_error(err).to_string();
    let text = why.split(" (os error").next().unwrap_or_default();
    format!("({err}: {text})")
}

/// SO_ERROR of a socket whose non-blocking connect() finished.
unsafe fn socket_error(c: *mut ngx_connection_t) -> Option<i32> {
    let mut err: i32 = 0;
    let mut len = mem::size_of::<i32>() as socklen_t;
    let rc = getsockopt(
        (*c).fd,
        SOL_SOCKET as i32,
        SO_ERROR as i32,
        ptr::from_mut(&mut err).cast(),
        &mut len,
    );
    if rc == -1 {
        return Some(ngx::ffi::ngx_socket_errno());
    }
    (err != 0).then_some(err)
}

/// The one next-server decision (ngx_stream_proxy_next_upstream): the attempt failed
/// with `status`; the next peer is tried, or the request ends with `status`.
unsafe fn next_upstream(s: &mut Session, status: HTTPStatus, why: Option<&str>) {
    if peer_failed(s, status, why) {
        connect(s);
    }
}

/// Logs a failed attempt naming the target (unless nginx did), tells the balancer, and
/// says whether another peer may be tried; when not, the request has been ended.
unsafe fn peer_failed(s: &mut Session, status: HTTPStatus, why: Option<&str>) -> bool {
    let pc = s.peer();
    let log = (*(*s.r).connection).log;
    if let Some(why) = why {
        let name = (*pc)
            .name
            .as_ref()
            .map(|n| String::from_utf8_lossy(n.as_bytes()).into_owned())
            .unwrap_or_default();
        ngx_log_error!(
            NGX_LOG_ERR,
            log,
            "websockify: cannot connect to target \"{name}\": {why}"
        );
    }
    if let Some(state) = attempt::current(s) {
        state.status = status.into();
    }
    attempt::settle(s, 0);
    if !(*pc).connection.is_null() {
        setup::close((*pc).connection, false);
        (*pc).connection = ptr::null_mut();
    }
    if let Some(free) = (*pc).free {
        free(pc, (*pc).data, NGX_PEER_FAILED as usize);
    }
    (*pc).sockaddr = ptr::null_mut();
    if (*pc).tries == 0 {
        finalize(s, status);
        return false;
    }
    true
}

/// Connected, and the PROXY header and TLS handshake done: as in the upstream module,
/// `$upstream_connect_time` includes them.
unsafe fn established(s: &mut Session) {
    let c = (*s.peer()).connection;
    if (*(*c).write).timer_set() != 0 {
        ngx_del_timer((*c).write);
    }
    let elapsed = ngx_current_msec.saturating_sub((*s.peer()).start_time);
    if let Some(state) = attempt::current(s) {
        state.connect_time = elapsed;
        state.status = 101;
    }
    relay::start(s);
}

unsafe extern "C" fn check_client_read(r: *mut ngx_http_request_t) {
    check_client(r, (*(*r).connection).read);
}

unsafe extern "C" fn check_client_write(r: *mut ngx_http_request_t) {
    check_client(r, (*(*r).connection).write);
}

/// While the target is resolved or connected: a client that left ends the request with
/// 499 at once (ngx_http_upstream_check_broken_connection). HTTP/2 and HTTP/3 need no
/// case here: a WebSocket handshake is HTTP/1.1 only.
unsafe fn check_client(r: *mut ngx_http_request_t, ev: *mut ngx_event_t) {
    let Some(s) = session_mut(r) else {
        return;
    };
    let c = (*r).connection;
    if (*c).error() != 0 {
        // Whoever set it has logged why.
        client_gone(s);
        return;
    }
    // kqueue and epoll with EPOLLRDHUP report the peer's close with the event.
    #[cfg(ngx_feature = "have_kqueue")]
    if ngx::ffi::ngx_event_flags & ngx::ffi::NGX_USE_KQUEUE_EVENT as usize != 0 {
        if (*ev).pending_eof() == 0 {
            return;
        }
        (*ev).set_eof(1);
        (*c).set_error(1);
        let err = (*ev).kq_errno;
        if err != 0 {
            (*ev).set_error(1);
        }
        log_gone(c, "kevent() reported that ", (err != 0).then_some(err));
        client_gone(s);
        return;
    }
    #[cfg(ngx_feature = "have_epollrdhup")]
    if ngx::ffi::ngx_event_flags & ngx::ffi::NGX_USE_EPOLL_EVENT as usize != 0
        && ngx::ffi::ngx_use_epoll_rdhup != 0
    {
        if (*ev).pending_eof() == 0 {
            return;
        }
        (*ev).set_eof(1);
        (*c).set_error(1);
        let err = socket_error(c);
        if err.is_some() {
            (*ev).set_error(1);
        }
        log_gone(c, "epoll_wait() reported that ", err);
        client_gone(s);
        return;
    }
    let mut byte = 0u8;
    let n = recv((*c).fd, ptr::from_mut(&mut byte).cast(), 1, MSG_PEEK as i32);
    let err = ngx_socket_errno();
    let again = n == -1 && err == NGX_EAGAIN as i32;
    if (*ev).write() != 0 && (n >= 0 || again) {
        return;
    }
    if n > 0 || again {
        // Still there. Level-triggered events would report pending bytes again and again:
        // stop reading until the relay starts.
        ngx_http_block_reading(r);
        return;
    }
    let err = if n == -1 {
        (*ev).set_error(1);
        Some(err)
    } else {
        None
    };
    (*ev).set_eof(1);
    (*c).set_error(1);
    log_gone(c, "", err);
    client_gone(s);
}

unsafe fn log_gone(c: *mut ngx_connection_t, via: &str, err: Option<i32>) {
    let err = err.map(|e| format!(" {}", os_error(e))).unwrap_or_default();
    ngx_log_error!(
        NGX_LOG_INFO,
        (*c).log,
        "websockify: {via}client prematurely closed connection{err}"
    );
}

/// Ends the request with 499: the resolver context is released, the target connection
/// closed and its peer given back to the balancer, unblamed.
unsafe fn client_gone(s: &mut Session) {
    if !s.resolving.is_null() {
        ngx_resolve_name_done(s.resolving);
        s.resolving = ptr::null_mut();
    }
    release_peer(s);
    finalize(s, HTTPStatus::CLIENT_CLOSED_REQUEST);
}
