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
    ngx_event_connect_peer, ngx_event_get_peer, ngx_event_t, ngx_http_block_reading,
    ngx_http_complex_value, ngx_http_empty_handler, ngx_http_finalize_request, ngx_http_request_t,
    ngx_http_run_posted_requests, ngx_http_upstream_create,
    ngx_http_upstream_create_round_robin_peer, ngx_http_upstream_resolved_t,
    ngx_http_upstream_srv_conf_t, ngx_parse_url, ngx_pcalloc, ngx_peer_connection_t,
    ngx_pool_cleanup_add, ngx_pool_t, ngx_resolve_name, ngx_resolve_name_done, ngx_resolve_start,
    ngx_resolver_addr_t, ngx_resolver_ctx_t, ngx_resolver_strerror, ngx_socket_errno, ngx_str_t,
    ngx_url_t, recv, socklen_t, MSG_PEEK, NGX_EAGAIN, NGX_HTTP_UPSTREAM_CREATE, NGX_LOG_ERR,
    NGX_LOG_INFO, NGX_PEER_FAILED, SOL_SOCKET, SO_ERROR,
};
use ngx::http::{
    HTTPStatus, HttpModuleLocationConf, HttpModuleMainConf, NgxHttpCoreModule,
    NgxHttpUpstreamModule,
};
use ngx::ngx_log_error;

use super::addr::peer_of;
use super::attempt;
use super::login;
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
    /// The RFB login with the server (`websockify_rfb_*`).
    Login,
    Done,
}

impl Stage {
    fn next(self) -> Stage {
        match self {
            Stage::ProxyHeader => Stage::Tls,
            Stage::Tls => Stage::Login,
            Stage::Login | Stage::Done => Stage::Done,
        }
    }
}

/// Ends the request with `status` before any 101.
///
/// # Safety
/// `s` is the request's session; ending the request may free it: the caller touches `s`
/// afterwards only while it holds a reference on the request.
unsafe fn finalize(s: &mut Session, status: HTTPStatus) {
    // SAFETY: r is live (Session invariant); see # Safety.
    unsafe { ngx_http_finalize_request(s.r, Status::from(status).into()) };
}

/// Sets up the peers for this request and starts connecting; failures end the request
/// with their status.
///
/// # Safety
/// As for `finalize`; called once, from the content handler.
pub unsafe fn begin(s: &mut Session) {
    let r = s.r;
    // SAFETY: r is live (Session invariant).
    if unsafe { ngx_http_upstream_create(r) } != Status::NGX_OK.0 {
        // SAFETY: see # Safety.
        unsafe { finalize(s, HTTPStatus::INTERNAL_SERVER_ERROR) };
        return;
    }
    // The client's read event stays registered from reading the request (with
    // EPOLLRDHUP / EV_EOF): it reports a client that leaves; relay::start replaces these.
    // SAFETY: r is live.
    unsafe {
        (*r).read_event_handler = Some(check_client_read);
        (*r).write_event_handler = Some(check_client_write);
    }
    // SAFETY: the upstream exists now.
    if unsafe { setup::set_local(s) }.is_err() {
        // SAFETY: see # Safety.
        unsafe { finalize(s, HTTPStatus::INTERNAL_SERVER_ERROR) };
        return;
    }
    // SAFETY: the location's configuration (Session invariant), alive for the cycle.
    let conf = unsafe { &*s.conf };
    // SAFETY: a set target is set_pass's Target; a static one's upstream lives in the
    // cycle; the request's upstream exists.
    let rc = match unsafe { conf.target.as_ref() } {
        Some(Target::Static(uscf)) => unsafe {
            // The name TLS verifies and sends by default, as proxy_pass's host.
            (*(*r).upstream).ssl_name = (**uscf).host;
            init_group(r, *uscf)
        },
        // SAFETY: as for finalize; the upstream exists.
        Some(Target::Dynamic(cv)) => unsafe { choose(s, conf, cv) },
        None => Err(HTTPStatus::INTERNAL_SERVER_ERROR),
    };
    // SAFETY: see # Safety; the upstream exists.
    match rc {
        Ok(Chosen::Peers) => unsafe { connect(s) },
        Ok(Chosen::Resolving) => {}
        Err(status) => unsafe { finalize(s, status) },
    }
}

/// # Safety
/// `r` is a live request with its upstream, `uscf` an upstream of this cycle.
unsafe fn init_group(
    r: *mut ngx_http_request_t,
    uscf: *mut ngx_http_upstream_srv_conf_t,
) -> Result<Chosen, HTTPStatus> {
    // SAFETY: see # Safety; init is the balancer's peer init for this group.
    unsafe {
        let init = (*uscf).peer.init.ok_or(HTTPStatus::INTERNAL_SERVER_ERROR)?;
        if init(r, uscf) != Status::NGX_OK.0 {
            return Err(HTTPStatus::INTERNAL_SERVER_ERROR);
        }
    }
    Ok(Chosen::Peers)
}

/// A per-request target: an `upstream {}` group by name, an address, or a host name to
/// resolve.
///
/// # Safety
/// As for `finalize`, and the request's upstream exists.
unsafe fn choose(
    s: &mut Session,
    conf: &LocConf,
    cv: &ngx::ffi::ngx_http_complex_value_t,
) -> Result<Chosen, HTTPStatus> {
    let r = s.r;
    let log = s.log();
    let mut value = ngx_str_t::default();
    // SAFETY: r is live (Session invariant); cv a value compiled by set_pass.
    if unsafe { ngx_http_complex_value(r, ptr::from_ref(cv).cast_mut(), &mut value) }
        != Status::NGX_OK.0
    {
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
    // SAFETY: ngx_url_t is a plain C struct that nginx zero-fills before use.
    let mut u: ngx_url_t = unsafe { mem::zeroed() };
    u.url = value;
    u.default_port = DEFAULT_PORT;
    u.set_no_resolve(1);
    // SAFETY: r is live; u is filled.
    if unsafe { ngx_parse_url((*r).pool, &mut u) } != Status::NGX_OK.0 {
        // SAFETY: err is null or one of ngx_parse_url's static texts.
        let why = unsafe { cstr(u.err) }.unwrap_or("invalid");
        ngx_log_error!(
            NGX_LOG_ERR,
            log,
            "websockify: invalid target \"{shown}\": {why}"
        );
        return Err(HTTPStatus::BAD_GATEWAY);
    }
    // SAFETY: the upstream exists (# Safety).
    unsafe { (*(*r).upstream).ssl_name = u.host };
    // A group is reached only when a rule names it: a value from the client must not
    // reach upstreams meant for proxy_pass or fastcgi.
    // SAFETY: r is live.
    if let Some(uscf) = unsafe { find_group(r, &u) } {
        if !allow::group_allowed(&conf.allow, u.host.as_bytes()) {
            // SAFETY: the request's log.
            unsafe { deny(log, &shown, conf) };
            return Err(HTTPStatus::FORBIDDEN);
        }
        // SAFETY: r is live with its upstream; uscf one of the cycle's groups.
        return unsafe { init_group(r, uscf) };
    }
    if u.naddrs == 0 {
        if !allow::may_resolve(&conf.allow, u.host.as_bytes(), u.port) {
            // SAFETY: the request's log.
            unsafe { deny(log, &shown, conf) };
            return Err(HTTPStatus::FORBIDDEN);
        }
        // SAFETY: see # Safety.
        return unsafe { resolve(s, &u, &shown) };
    }
    // SAFETY: ngx_parse_url found naddrs > 0 addresses, in the request's pool.
    let addr = unsafe { &*u.addrs };
    // SAFETY: as above.
    let Some(peer) = (unsafe { peer_of(addr.sockaddr, addr.socklen) }) else {
        return Err(HTTPStatus::BAD_GATEWAY);
    };
    if !allow::allowed(&conf.allow, None, peer) {
        // SAFETY: the request's log.
        unsafe { deny(log, &shown, conf) };
        return Err(HTTPStatus::FORBIDDEN);
    }
    // SAFETY: r is live with its upstream.
    unsafe {
        peers_from(r, |ur| {
            ur.sockaddr = addr.sockaddr;
            ur.socklen = addr.socklen;
            ur.name = addr.name;
            ur.naddrs = 1;
        })
    }?;
    Ok(Chosen::Peers)
}

/// Round-robin peers for this request from addresses that `fill` describes (copied).
///
/// # Safety
/// `r` is a live request with its upstream.
unsafe fn peers_from(
    r: *mut ngx_http_request_t,
    fill: impl FnOnce(&mut ngx_http_upstream_resolved_t),
) -> Result<(), HTTPStatus> {
    // SAFETY: see # Safety.
    let ur = unsafe { ngx_pcalloc((*r).pool, mem::size_of::<ngx_http_upstream_resolved_t>()) }
        as *mut ngx_http_upstream_resolved_t;
    // SAFETY: null or the zeroed allocation just made.
    let Some(ur) = (unsafe { ur.as_mut() }) else {
        return Err(HTTPStatus::INTERNAL_SERVER_ERROR);
    };
    fill(ur);
    // SAFETY: see # Safety; ur is filled.
    if unsafe { ngx_http_upstream_create_round_robin_peer(r, ur) } != Status::NGX_OK.0 {
        return Err(HTTPStatus::INTERNAL_SERVER_ERROR);
    }
    Ok(())
}

/// Logs a target the allow-list refused.
///
/// # Safety
/// `log` is a live log (the macro reads it).
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
///
/// # Safety
/// `r` is a live request.
unsafe fn find_group(
    r: *mut ngx_http_request_t,
    u: &ngx_url_t,
) -> Option<*mut ngx_http_upstream_srv_conf_t> {
    // SAFETY: see # Safety.
    let umcf = NgxHttpUpstreamModule::main_conf(unsafe { &*r })?;
    let list = &umcf.upstreams;
    // SAFETY: the upstream module's array of its groups, each alive for the cycle.
    let groups = unsafe {
        core::slice::from_raw_parts(
            list.elts as *const *mut ngx_http_upstream_srv_conf_t,
            list.nelts,
        )
    };
    groups.iter().copied().find(|&g| {
        // SAFETY: as above.
        let g = unsafe { &*g };
        g.flags & NGX_HTTP_UPSTREAM_CREATE as usize != 0
            && u.no_port() != 0
            && g.host.as_bytes().eq_ignore_ascii_case(u.host.as_bytes())
    })
}

/// Starts resolving a per-request host name with the location's `resolver`.
///
/// # Safety
/// As for `finalize`; `s` stays where it is (the resolver keeps a pointer to it).
unsafe fn resolve(s: &mut Session, u: &ngx_url_t, shown: &str) -> Result<Chosen, HTTPStatus> {
    let r = s.r;
    let log = s.log();
    // SAFETY: r is live (Session invariant).
    let Some(clcf) = NgxHttpCoreModule::location_conf(unsafe { &*r }) else {
        return Err(HTTPStatus::INTERNAL_SERVER_ERROR);
    };
    // SAFETY: ngx_resolver_ctx_t is a plain C struct; a zeroed one asks for a name.
    let mut temp: ngx_resolver_ctx_t = unsafe { mem::zeroed() };
    temp.name = u.host;
    // SAFETY: the location's resolver (null: none) and the request's name.
    let ctx = unsafe { ngx_resolve_start(clcf.resolver, &mut temp) };
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
    // SAFETY: the context ngx_resolve_start made.
    unsafe {
        (*ctx).name = u.host;
        (*ctx).handler = Some(resolved);
        (*ctx).data = ptr::from_mut(s).cast();
        (*ctx).timeout = clcf.resolver_timeout;
    }
    s.port = u.port;
    s.resolving = ctx;
    // A cached answer runs resolved() inside this call: the session may have started or
    // ended on return (the content handler's reference keeps the request alive).
    // SAFETY: as above.
    if unsafe { ngx_resolve_name(ctx) } != Status::NGX_OK.0 {
        s.resolving = ptr::null_mut();
        return Err(HTTPStatus::INTERNAL_SERVER_ERROR);
    }
    Ok(Chosen::Resolving)
}

/// # Safety
/// nginx calls it with the context `resolve` started, its `data` the live session.
unsafe extern "C" fn resolved(ctx: *mut ngx_resolver_ctx_t) {
    // SAFETY: see # Safety.
    let (s, run_posted) = unsafe { (&mut *((*ctx).data as *mut Session), (*ctx).async_() != 0) };
    let c = s.client();
    // Called from ngx_resolve_name() itself for a cached answer (async unset): the content
    // handler is still on the stack and holds the request; running posted requests here
    // could free it under that handler (ngx_http_upstream_resolve_handler does the same).
    // SAFETY: see # Safety; the upstream exists since begin.
    let rc = unsafe { use_resolved(s, ctx) };
    s.resolving = ptr::null_mut();
    // SAFETY: the context is done with; nothing uses it afterwards.
    unsafe { ngx_resolve_name_done(ctx) };
    // SAFETY: the upstream exists; s is not touched afterwards.
    match rc {
        Ok(()) => unsafe { connect(s) },
        Err(status) => unsafe { finalize(s, status) },
    }
    if run_posted {
        // SAFETY: the client connection outlives its requests.
        unsafe { ngx_http_run_posted_requests(c) };
    }
}

/// # Safety
/// The request's upstream exists; `ctx` is the finished resolver context.
unsafe fn use_resolved(s: &mut Session, ctx: *mut ngx_resolver_ctx_t) -> Result<(), HTTPStatus> {
    let r = s.r;
    let log = s.log();
    let conf = s.conf();
    // SAFETY: see # Safety.
    let ctx = unsafe { &*ctx };
    let name = ctx.name.as_bytes();
    let shown = format!("{}:{}", String::from_utf8_lossy(name), s.port);
    if ctx.state != 0 {
        // SAFETY: nginx's static text for the state.
        let why = unsafe { cstr(ngx_resolver_strerror(ctx.state)) }.unwrap_or("error");
        ngx_log_error!(
            NGX_LOG_ERR,
            log,
            "websockify: target \"{shown}\" could not be resolved ({}: {why})",
            ctx.state
        );
        return Err(HTTPStatus::BAD_GATEWAY);
    }
    // SAFETY: a resolved context holds naddrs addresses.
    let found = unsafe { core::slice::from_raw_parts(ctx.addrs, ctx.naddrs) };
    // SAFETY: r is live (Session invariant).
    let list =
        unsafe { ngx_pcalloc((*r).pool, mem::size_of_val(found)) } as *mut ngx_resolver_addr_t;
    if list.is_null() {
        return Err(HTTPStatus::INTERNAL_SERVER_ERROR);
    }
    let mut kept = 0;
    for a in found {
        // SAFETY: the resolver's addresses, each socklen bytes.
        let peer = unsafe { peer_of(a.sockaddr, a.socklen) }.map(|p| with_port(p, s.port));
        if peer.is_some_and(|p| allow::allowed(&conf.allow, Some(name), p)) {
            // SAFETY: list has room for every address found; kept counts fewer.
            unsafe { list.add(kept).write(*a) };
            kept += 1;
        }
    }
    if kept == 0 {
        // SAFETY: the request's log.
        unsafe { deny(log, &shown, conf) };
        return Err(HTTPStatus::FORBIDDEN);
    }
    // Copies the addresses: the resolver's go away with ngx_resolve_name_done().
    // SAFETY: r is live with its upstream.
    unsafe {
        peers_from(r, |ur| {
            ur.host = ctx.name;
            ur.port = s.port;
            ur.addrs = list;
            ur.naddrs = kept;
        })
    }
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
///
/// # Safety
/// As for `finalize`, and the request's upstream exists with its peers set; `s` stays
/// where it is (the target connection keeps a pointer to it).
pub unsafe fn connect(s: &mut Session) {
    let log = s.log();
    // SAFETY: the live client connection's log.
    unsafe { (*log).action = c"connecting to websockify target".as_ptr() as *mut _ };
    loop {
        // SAFETY: see # Safety; ngx_current_msec is written only by this worker's thread.
        let (pc, rc) = unsafe {
            let pc = s.peer();
            (*pc).log = log;
            (*pc).start_time = ngx_current_msec;
            (pc, connect_peer(pc))
        };
        if rc == Status::NGX_ERROR {
            // A local failure (no free connection, no socket), logged by nginx: not the
            // peer's fault, so it is not marked failed.
            // SAFETY: see # Safety; s is not touched afterwards.
            unsafe {
                release_peer(s);
                finalize(s, HTTPStatus::INTERNAL_SERVER_ERROR);
            }
            return;
        }
        // SAFETY: the upstream exists.
        if unsafe { attempt::push(s) }.is_err() {
            // SAFETY: as for NGX_ERROR.
            unsafe {
                release_peer(s);
                finalize(s, HTTPStatus::INTERNAL_SERVER_ERROR);
            }
            return;
        }
        match rc {
            Status::NGX_BUSY => {
                ngx_log_error!(NGX_LOG_ERR, log, "websockify: no live upstreams");
                if let Some(state) = attempt::current(s) {
                    state.status = HTTPStatus::BAD_GATEWAY.into();
                }
                // SAFETY: see # Safety; s is not touched afterwards.
                unsafe { finalize(s, HTTPStatus::BAD_GATEWAY) };
                return;
            }
            // connect() failed at once; nginx logged it naming the peer.
            Status::NGX_DECLINED => {
                // SAFETY: see # Safety; s is touched afterwards only if the request lives.
                if !unsafe { peer_failed(s, HTTPStatus::BAD_GATEWAY, None) } {
                    return;
                }
            }
            Status::NGX_AGAIN => {
                // SAFETY: nginx made the connection, connecting; s outlives it (# Safety).
                unsafe {
                    let c = (*pc).connection;
                    (*c).data = ptr::from_mut(s).cast::<c_void>();
                    (*(*c).read).handler = Some(connect_handler);
                    (*(*c).write).handler = Some(connect_handler);
                    ngx_add_timer((*c).write, s.conf().connect_timeout);
                }
                return;
            }
            // NGX_OK, or NGX_DONE: a connected one from the keepalive cache.
            _ => {
                // SAFETY: the peer is connected.
                if rc == Status::NGX_DONE && unsafe { adopt_pool(s) }.is_err() {
                    // SAFETY: as for NGX_ERROR.
                    unsafe {
                        release_peer(s);
                        finalize(s, HTTPStatus::INTERNAL_SERVER_ERROR);
                    }
                    return;
                }
                // SAFETY: see # Safety; the peer is connected.
                return unsafe { connected(s) };
            }
        }
    }
}

/// Connects the peer the balancer chooses. A TLS connection from the group's keepalive
/// cache (left there by `proxy_pass https://`) is not taken: it was verified under that
/// location's settings, not this one's, and its TLS callbacks expect the upstream module's
/// request. It is closed as the keepalive module closes one, and the same peer connected
/// anew, as if the cache had been empty.
///
/// # Safety
/// `pc` is the request's upstream peer, with its balancer set up.
unsafe fn connect_peer(pc: *mut ngx_peer_connection_t) -> Status {
    // SAFETY: see # Safety.
    let rc = Status(unsafe { ngx_event_connect_peer(pc) });
    if rc != Status::NGX_DONE {
        return rc;
    }
    // SAFETY: NGX_DONE hands over a live connection in pc.
    let c = unsafe { (*pc).connection };
    // SAFETY: as above.
    if unsafe { (*c).ssl.is_null() } {
        return rc;
    }
    // SAFETY: the cached connection is ours alone now; its pool is the keepalive module's.
    unsafe {
        let pool = (*c).pool;
        setup::close(c, true);
        if !pool.is_null() {
            ngx_destroy_pool(pool);
        }
        (*pc).connection = ptr::null_mut();
        (*pc).set_cached(0);
        // The peer stays chosen: connect to it without asking the balancer again.
        let get = (*pc).get;
        (*pc).get = Some(ngx_event_get_peer);
        let rc = Status(ngx_event_connect_peer(pc));
        (*pc).get = get;
        rc
    }
}

/// A cached connection brings the pool the upstream module made for it; nothing else
/// destroys it once the relay closes the connection, so the request's pool does.
///
/// # Safety
/// The request's upstream exists and its peer is connected.
unsafe fn adopt_pool(s: &mut Session) -> Result<(), Local> {
    // SAFETY: see # Safety.
    let pool = unsafe { (*(*s.peer()).connection).pool };
    if pool.is_null() {
        return Ok(());
    }
    // SAFETY: r is live (Session invariant).
    let cln = unsafe { ngx_pool_cleanup_add((*s.r).pool, 0) };
    if cln.is_null() {
        return Err(Local);
    }
    // SAFETY: a fresh cleanup entry of the request's pool.
    unsafe {
        (*cln).handler = Some(destroy_pool);
        (*cln).data = pool.cast();
    }
    Ok(())
}

/// # Safety
/// nginx calls it with the pool adopt_pool registered, once, as the request's pool goes.
unsafe extern "C" fn destroy_pool(data: *mut c_void) {
    // SAFETY: see # Safety.
    unsafe { ngx_destroy_pool(data as *mut ngx_pool_t) };
}

/// Closes the peer connection, if any, and gives the peer back to the balancer without
/// blaming it.
///
/// # Safety
/// The request's upstream exists.
unsafe fn release_peer(s: &mut Session) {
    attempt::settle(s, 0);
    // SAFETY: see # Safety; the connection is null or live, the balancer's free its own.
    unsafe {
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
}

/// # Safety
/// nginx calls it with an event of the connecting target, whose `data` is the session.
unsafe extern "C" fn connect_handler(ev: *mut ngx_event_t) {
    // SAFETY: see # Safety.
    let (c, s) = unsafe {
        let c = (*ev).data as *mut ngx_connection_t;
        (c, &mut *((*c).data as *mut Session))
    };
    let client = s.client();
    // SAFETY: see # Safety; s is not touched afterwards.
    unsafe { connect_event(s, ev, c) };
    // As in the upstream module: requests ended from a peer's event run now.
    // SAFETY: the client connection outlives its requests.
    unsafe { ngx_http_run_posted_requests(client) };
}

/// # Safety
/// As for `connect`; `ev` is an event of `c`, the connecting target.
unsafe fn connect_event(s: &mut Session, ev: *mut ngx_event_t, c: *mut ngx_connection_t) {
    // SAFETY: see # Safety.
    let (close, timedout) = unsafe { ((*c).close(), (*ev).timedout()) };
    if close != 0 {
        // SAFETY: see # Safety.
        return unsafe { shutting_down(s) };
    }
    if timedout != 0 {
        // SAFETY: see # Safety.
        return unsafe {
            next_upstream(
                s,
                HTTPStatus::GATEWAY_TIME_OUT,
                Some("connection timed out"),
            )
        };
    }
    // connect() completes (or fails) with a write event; a read event may come first in
    // the same round (epoll), or alone from nginx itself.
    // SAFETY: see # Safety.
    if unsafe { (*(*c).write).ready() } == 0 {
        return;
    }
    // SAFETY: see # Safety.
    unsafe {
        if let Some(err) = socket_error(c) {
            next_upstream(s, HTTPStatus::BAD_GATEWAY, Some(&os_error(err)));
        } else {
            connected(s);
        }
    }
}

/// The TCP connection is up: the PROXY header, TLS, then the relay.
///
/// # Safety
/// As for `connect`, and the peer is connected.
unsafe fn connected(s: &mut Session) {
    // SAFETY: see # Safety.
    unsafe {
        (*setup::target_conn(s)).data = ptr::from_mut(s).cast();
        advance(s, Stage::ProxyHeader);
    }
}

/// Runs the setup steps from `stage` on until one waits or ends the attempt.
///
/// # Safety
/// As for `connected`.
unsafe fn advance(s: &mut Session, from: Stage) {
    let mut stage = from;
    loop {
        // SAFETY: see # Safety.
        let step = unsafe {
            match stage {
                Stage::ProxyHeader if setup::wants_proxy_header(s) => setup::send_proxy_header(s),
                Stage::ProxyHeader => Step::Ready,
                Stage::Tls => setup::start_tls(s),
                Stage::Login if s.login.is_some() => login::resume(s),
                Stage::Login => login::start(s),
                Stage::Done => return established(s),
            }
        };
        // SAFETY: see # Safety.
        if !unsafe { settle(s, stage, step) } {
            return;
        }
        stage = stage.next();
    }
}

/// Acts on how a step ended; true when the next step may run now.
///
/// # Safety
/// As for `connected`.
unsafe fn settle(s: &mut Session, stage: Stage, step: Step) -> bool {
    // SAFETY: see # Safety.
    unsafe {
        match step {
            Step::Ready => return true,
            Step::Pending => wait(s, stage),
            Step::Next { status, why } => next_upstream(s, status, why),
            Step::Local => {
                release_peer(s);
                finalize(s, HTTPStatus::INTERNAL_SERVER_ERROR);
            }
        }
    }
    false
}

/// A step waits for the target socket: its handler resumes it, and the connect timer,
/// as in the upstream module, bounds the PROXY header and the handshake too.
///
/// # Safety
/// As for `connected`.
unsafe fn wait(s: &mut Session, stage: Stage) {
    // SAFETY: see # Safety; TLS waits only once start_tls made t's TLS connection.
    unsafe {
        let t = setup::target_conn(s);
        match stage {
            Stage::ProxyHeader => {
                (*(*t).write).handler = Some(proxy_header_handler);
                // Target bytes wait for the relay: the event's ready flag keeps them.
                (*(*t).read).handler = Some(ngx_http_empty_handler);
            }
            Stage::Tls => (*(*t).ssl).handler = Some(handshake_handler),
            Stage::Login
                if !(*t).ssl.is_null() && s.login.as_ref().is_some_and(|l| l.handshaking()) =>
            {
                (*(*t).ssl).handler = Some(login_handshake_handler);
            }
            Stage::Login => {
                (*(*t).read).handler = Some(login_handler);
                (*(*t).write).handler = Some(login_handler);
            }
            Stage::Done => return,
        }
        if (*(*t).write).timer_set() == 0 {
            ngx_add_timer((*t).write, s.conf().connect_timeout);
        }
    }
}

/// # Safety
/// nginx calls it with the target's write event, its connection's `data` the session.
unsafe extern "C" fn proxy_header_handler(ev: *mut ngx_event_t) {
    // SAFETY: see # Safety.
    let (s, timedout) = unsafe {
        let t = (*ev).data as *mut ngx_connection_t;
        (&mut *((*t).data as *mut Session), (*ev).timedout())
    };
    let client = s.client();
    // SAFETY: see # Safety; s is not touched afterwards.
    unsafe {
        if timedout != 0 {
            let why = Some("timed out sending the PROXY protocol header");
            next_upstream(s, HTTPStatus::GATEWAY_TIME_OUT, why);
        } else {
            advance(s, Stage::ProxyHeader);
        }
        ngx_http_run_posted_requests(client);
    }
}

/// # Safety
/// nginx calls it with the target connection, its `data` the session.
unsafe extern "C" fn handshake_handler(t: *mut ngx_connection_t) {
    // SAFETY: see # Safety.
    let s = unsafe { &mut *((*t).data as *mut Session) };
    let client = s.client();
    // SAFETY: see # Safety; s is touched after settle only if the request lives.
    unsafe {
        let step = setup::handshake_done(s, t);
        if settle(s, Stage::Tls, step) {
            advance(s, Stage::Tls.next());
        }
        ngx_http_run_posted_requests(client);
    }
}

/// The target's socket during the RFB login.
///
/// # Safety
/// nginx calls it with an event of the target, its connection's `data` the session.
unsafe extern "C" fn login_handler(ev: *mut ngx_event_t) {
    // SAFETY: see # Safety.
    let (s, timedout, close) = unsafe {
        let t = (*ev).data as *mut ngx_connection_t;
        (
            &mut *((*t).data as *mut Session),
            (*ev).timedout(),
            (*t).close(),
        )
    };
    let client = s.client();
    // SAFETY: see # Safety; s is not touched afterwards.
    unsafe {
        if close != 0 {
            shutting_down(s);
        } else if timedout != 0 {
            s.login = None;
            let why = Some("timed out during the RFB handshake");
            next_upstream(s, HTTPStatus::GATEWAY_TIME_OUT, why);
        } else {
            advance(s, Stage::Login);
        }
        ngx_http_run_posted_requests(client);
    }
}

/// The TLS handshake that VeNCrypt started inside RFB.
///
/// # Safety
/// nginx calls it with the target connection, its `data` the session.
unsafe extern "C" fn login_handshake_handler(t: *mut ngx_connection_t) {
    // SAFETY: see # Safety.
    let s = unsafe { &mut *((*t).data as *mut Session) };
    let client = s.client();
    // SAFETY: see # Safety; s is touched after settle only if the request lives.
    unsafe {
        let step = match setup::handshake_done(s, t) {
            Step::Ready => login::tls_done(s),
            other => other,
        };
        if settle(s, Stage::Login, step) {
            advance(s, Stage::Login.next());
        }
        ngx_http_run_posted_requests(client);
    }
}

/// A worker's graceful shutdown outlasted `worker_shutdown_timeout`: nginx calls every
/// connection's read handler with `c->close` set (ngx_shutdown_timer_handler). The
/// connect is abandoned, its peer not blamed, and the client connection closed without
/// a response, as a request of the upstream module ends then.
///
/// # Safety
/// As for `finalize`, and the request's upstream exists.
unsafe fn shutting_down(s: &mut Session) {
    let log = s.log();
    // SAFETY: see # Safety.
    let name = unsafe { s.peer_name() }.unwrap_or_default();
    ngx_log_error!(
        NGX_LOG_INFO,
        log,
        "websockify: the worker is shutting down: connect to target \"{name}\" abandoned"
    );
    // SAFETY: see # Safety; s is not touched afterwards.
    unsafe {
        release_peer(s);
        // No response: the client connection closes, as an upstream request ends then.
        ngx_http_finalize_request(s.r, Status::NGX_ERROR.into());
    }
}

/// "(111: Connection refused)", the way nginx shows an errno.
fn os_error(err: i32) -> String {
    let why = std::io::Error::from_raw_os_error(err).to_string();
    let text = why.split(" (os error").next().unwrap_or_default();
    format!("({err}: {text})")
}

/// SO_ERROR of a socket whose non-blocking connect() finished.
///
/// # Safety
/// `c` is a live connection.
unsafe fn socket_error(c: *mut ngx_connection_t) -> Option<i32> {
    let mut err: i32 = 0;
    let mut len = mem::size_of::<i32>() as socklen_t;
    // SAFETY: see # Safety; err and len are the option's buffer and its size.
    let rc = unsafe {
        getsockopt(
            (*c).fd,
            SOL_SOCKET as i32,
            SO_ERROR as i32,
            ptr::from_mut(&mut err).cast(),
            &mut len,
        )
    };
    if rc == -1 {
        return Some(ngx::ffi::ngx_socket_errno());
    }
    (err != 0).then_some(err)
}

/// The one next-server decision (ngx_stream_proxy_next_upstream): the attempt failed
/// with `status`; the next peer is tried, or the request ends with `status`.
///
/// # Safety
/// As for `connect`.
unsafe fn next_upstream(s: &mut Session, status: HTTPStatus, why: Option<&str>) {
    // SAFETY: see # Safety; connect runs only while the request lives.
    unsafe {
        if peer_failed(s, status, why) {
            connect(s);
        }
    }
}

/// Logs a failed attempt naming the target (unless nginx did), tells the balancer, and
/// says whether another peer may be tried; when not, the request has been ended.
///
/// # Safety
/// As for `finalize`, and the request's upstream exists.
unsafe fn peer_failed(s: &mut Session, status: HTTPStatus, why: Option<&str>) -> bool {
    // The next server starts its login afresh (a failed VeNCrypt TLS leaves one behind).
    s.login = None;
    s.tls_anonymous = false;
    // SAFETY: see # Safety.
    let pc = unsafe { s.peer() };
    let log = s.log();
    if let Some(why) = why {
        // SAFETY: see # Safety.
        let name = unsafe { s.peer_name() }.unwrap_or_default();
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
    // SAFETY: the connection is null or live; the balancer's free is its own.
    let tries = unsafe {
        if !(*pc).connection.is_null() {
            setup::close((*pc).connection, false);
            (*pc).connection = ptr::null_mut();
        }
        if let Some(free) = (*pc).free {
            free(pc, (*pc).data, NGX_PEER_FAILED as usize);
        }
        (*pc).sockaddr = ptr::null_mut();
        (*pc).tries
    };
    if tries == 0 {
        // SAFETY: see # Safety.
        unsafe { finalize(s, status) };
        return false;
    }
    true
}

/// Connected, and the PROXY header and TLS handshake done: as in the upstream module,
/// `$upstream_connect_time` includes them.
///
/// # Safety
/// As for `connected`.
unsafe fn established(s: &mut Session) {
    // SAFETY: see # Safety; ngx_current_msec is written only by this worker's thread.
    let elapsed = unsafe {
        let c = (*s.peer()).connection;
        if (*(*c).write).timer_set() != 0 {
            ngx_del_timer((*c).write);
        }
        ngx_current_msec.wrapping_sub((*s.peer()).start_time)
    };
    if let Some(state) = attempt::current(s) {
        state.connect_time = elapsed;
        state.status = 101;
    }
    // SAFETY: see # Safety.
    unsafe { relay::start(s) };
}

/// # Safety
/// nginx calls it with a live request.
unsafe extern "C" fn check_client_read(r: *mut ngx_http_request_t) {
    // SAFETY: see # Safety.
    unsafe { check_client(r, (*(*r).connection).read) };
}

/// # Safety
/// nginx calls it with a live request.
unsafe extern "C" fn check_client_write(r: *mut ngx_http_request_t) {
    // SAFETY: see # Safety.
    unsafe { check_client(r, (*(*r).connection).write) };
}

/// While the target is resolved or connected: a client that left ends the request with
/// 499 at once (ngx_http_upstream_check_broken_connection). HTTP/2 and HTTP/3 need no
/// case here: a WebSocket handshake is HTTP/1.1 only.
///
/// # Safety
/// `r` is a live request, between begin and relay::start; `ev` an event of its
/// connection.
unsafe fn check_client(r: *mut ngx_http_request_t, ev: *mut ngx_event_t) {
    // SAFETY: see # Safety; nginx runs one handler at a time.
    let Some(s) = (unsafe { session_mut(r) }) else {
        return;
    };
    // SAFETY: see # Safety.
    let (c, ev) = unsafe { (&mut *(*r).connection, &mut *ev) };
    if c.error() != 0 {
        // Whoever set it has logged why.
        // SAFETY: the upstream exists (begin made it); s is not touched afterwards.
        unsafe { client_gone(s) };
        return;
    }
    // kqueue and epoll with EPOLLRDHUP report the peer's close with the event.
    #[cfg(ngx_feature = "have_kqueue")]
    // SAFETY: nginx's event flags, set once at startup.
    if unsafe { ngx::ffi::ngx_event_flags } & ngx::ffi::NGX_USE_KQUEUE_EVENT as usize != 0 {
        if ev.pending_eof() == 0 {
            return;
        }
        ev.set_eof(1);
        c.set_error(1);
        let err = ev.kq_errno;
        if err != 0 {
            ev.set_error(1);
        }
        log_gone(c, "kevent() reported that ", (err != 0).then_some(err));
        // SAFETY: as above.
        unsafe { client_gone(s) };
        return;
    }
    #[cfg(ngx_feature = "have_epollrdhup")]
    // SAFETY: nginx's event flags, set once at startup.
    if unsafe {
        ngx::ffi::ngx_event_flags & ngx::ffi::NGX_USE_EPOLL_EVENT as usize != 0
            && ngx::ffi::ngx_use_epoll_rdhup != 0
    } {
        if ev.pending_eof() == 0 {
            return;
        }
        ev.set_eof(1);
        c.set_error(1);
        // SAFETY: c is the live client connection.
        let err = unsafe { socket_error(c) };
        if err.is_some() {
            ev.set_error(1);
        }
        log_gone(c, "epoll_wait() reported that ", err);
        // SAFETY: as above.
        unsafe { client_gone(s) };
        return;
    }
    let mut byte = 0u8;
    // SAFETY: peeks one byte into `byte` from the client's socket.
    let n = unsafe { recv(c.fd, ptr::from_mut(&mut byte).cast(), 1, MSG_PEEK as i32) };
    let err = ngx_socket_errno();
    let again = n == -1 && err == NGX_EAGAIN as i32;
    if ev.write() != 0 && (n >= 0 || again) {
        return;
    }
    if n > 0 || again {
        // Still there. Level-triggered events would report pending bytes again and again:
        // stop reading until the relay starts.
        // SAFETY: r is live.
        unsafe { ngx_http_block_reading(r) };
        return;
    }
    let err = if n == -1 {
        ev.set_error(1);
        Some(err)
    } else {
        None
    };
    ev.set_eof(1);
    c.set_error(1);
    log_gone(c, "", err);
    // SAFETY: as above.
    unsafe { client_gone(s) };
}

fn log_gone(c: &ngx_connection_t, via: &str, err: Option<i32>) {
    let err = err.map(|e| format!(" {}", os_error(e))).unwrap_or_default();
    ngx_log_error!(
        NGX_LOG_INFO,
        c.log,
        "websockify: {via}client prematurely closed connection{err}"
    );
}

/// Ends the request with 499: the resolver context is released, the target connection
/// closed and its peer given back to the balancer, unblamed.
///
/// # Safety
/// As for `finalize`, and the request's upstream exists.
unsafe fn client_gone(s: &mut Session) {
    // SAFETY: see # Safety; a set resolving is the context resolve started.
    unsafe {
        if !s.resolving.is_null() {
            ngx_resolve_name_done(s.resolving);
            s.resolving = ptr::null_mut();
        }
        release_peer(s);
        finalize(s, HTTPStatus::CLIENT_CLOSED_REQUEST);
    }
}
