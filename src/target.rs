//! Choosing and connecting to the target. Every target becomes an upstream peer set:
//! configured ones (addresses, host names, `upstream {}` groups) through the upstream
//! module and its balancers; per-request ones from an address or a name resolved with
//! nginx's `resolver`, after the `websockify_allow` check. Peers are tried in turn until
//! one connects. Meanwhile the client is watched, as `ngx_http_upstream_module` does: a
//! client that leaves ends the request with 499 at once.

use core::ffi::c_void;
use core::{mem, ptr};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use ngx::ffi::{
    getsockopt, ngx_add_timer, ngx_array_create, ngx_array_push, ngx_connection_t,
    ngx_current_msec, ngx_del_timer, ngx_destroy_pool, ngx_event_connect_peer, ngx_event_t,
    ngx_http_block_reading, ngx_http_complex_value, ngx_http_core_loc_conf_t, ngx_http_core_module,
    ngx_http_request_t, ngx_http_run_posted_requests, ngx_http_upstream_create,
    ngx_http_upstream_create_round_robin_peer, ngx_http_upstream_main_conf_t,
    ngx_http_upstream_module, ngx_http_upstream_resolved_t, ngx_http_upstream_srv_conf_t,
    ngx_http_upstream_state_t, ngx_int_t, ngx_parse_url, ngx_pcalloc, ngx_pool_cleanup_add,
    ngx_pool_t, ngx_resolve_name, ngx_resolve_name_done, ngx_resolve_start, ngx_resolver_addr_t,
    ngx_resolver_ctx_t, ngx_resolver_strerror, ngx_socket_errno, ngx_str_t, ngx_url_t, recv,
    sockaddr, sockaddr_in, sockaddr_in6, sockaddr_un, socklen_t, AF_INET, AF_INET6, AF_UNIX,
    MSG_PEEK, NGX_EAGAIN, NGX_HTTP_UPSTREAM_CREATE, NGX_LOG_ERR, NGX_LOG_INFO, NGX_PEER_FAILED,
    SOL_SOCKET, SO_ERROR,
};
use ngx::ngx_log_error;

use crate::allow::{self, Peer};
use crate::config::{cstr, LocConf, Target, DEFAULT_PORT};
use crate::module::ngx_http_websockify_module;
use crate::relay::{self, Session};
use crate::target_setup;

const NGX_OK: ngx_int_t = 0;
const NGX_ERROR: ngx_int_t = -1;
const NGX_AGAIN: ngx_int_t = -2;
const NGX_BUSY: ngx_int_t = -3;
const NGX_DONE: ngx_int_t = -4;
const NGX_DECLINED: ngx_int_t = -5;
pub const HTTP_FORBIDDEN: ngx_int_t = 403;
const HTTP_CLIENT_CLOSED_REQUEST: ngx_int_t = 499;
pub const HTTP_INTERNAL_SERVER_ERROR: ngx_int_t = 500;
pub const HTTP_BAD_GATEWAY: ngx_int_t = 502;
pub const HTTP_GATEWAY_TIMEOUT: ngx_int_t = 504;

/// Sets up the peers for this request and starts connecting; failures end the request
/// with their status.
pub unsafe fn begin(s: &mut Session) {
    let r = s.r;
    if ngx_http_upstream_create(r) != NGX_OK {
        relay::fail(s, HTTP_INTERNAL_SERVER_ERROR);
        return;
    }
    // The client's read event stays registered from reading the request (with
    // EPOLLRDHUP / EV_EOF): it reports a client that leaves; relay::start replaces these.
    (*r).read_event_handler = Some(check_client_read);
    (*r).write_event_handler = Some(check_client_write);
    if let Err(status) = target_setup::set_local(s) {
        relay::fail(s, status);
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
        None => Err(HTTP_INTERNAL_SERVER_ERROR),
    };
    match rc {
        Ok(true) => connect(s),
        Ok(false) => {} // resolving; connect() follows
        Err(status) => relay::fail(s, status),
    }
}

unsafe fn init_group(
    r: *mut ngx_http_request_t,
    uscf: *mut ngx_http_upstream_srv_conf_t,
) -> Result<bool, ngx_int_t> {
    let init = (*uscf).peer.init.ok_or(HTTP_INTERNAL_SERVER_ERROR)?;
    if init(r, uscf) != NGX_OK {
        return Err(HTTP_INTERNAL_SERVER_ERROR);
    }
    Ok(true)
}

/// A per-request target: an `upstream {}` group by name, an address, or a host name to
/// resolve. Ok(false) while the resolver works.
unsafe fn choose(
    s: &mut Session,
    conf: &LocConf,
    cv: &ngx::ffi::ngx_http_complex_value_t,
) -> Result<bool, ngx_int_t> {
    let r = s.r;
    let log = (*(*r).connection).log;
    let mut value = ngx_str_t::default();
    if ngx_http_complex_value(r, ptr::from_ref(cv).cast_mut(), &mut value) != NGX_OK {
        return Err(HTTP_INTERNAL_SERVER_ERROR);
    }
    let shown = String::from_utf8_lossy(value.as_bytes()).into_owned();
    if value.len == 0 {
        ngx_log_error!(
            NGX_LOG_ERR,
            log,
            "websockify: the target evaluated to an empty value"
        );
        return Err(HTTP_BAD_GATEWAY);
    }
    let mut u: ngx_url_t = mem::zeroed();
    u.url = value;
    u.default_port = DEFAULT_PORT;
    u.set_no_resolve(1);
    if ngx_parse_url((*r).pool, &mut u) != NGX_OK {
        let why = cstr(u.err).unwrap_or("invalid");
        ngx_log_error!(
            NGX_LOG_ERR,
            log,
            "websockify: invalid target \"{shown}\": {why}"
        );
        return Err(HTTP_BAD_GATEWAY);
    }
    (*(*r).upstream).ssl_name = u.host;
    // A group is reached only when a rule names it: a value from the client must not
    // reach upstreams meant for proxy_pass or fastcgi.
    if let Some(uscf) = find_group(r, &u) {
        if !allow::group_allowed(&conf.allow, u.host.as_bytes()) {
            deny(log, &shown, conf);
            return Err(HTTP_FORBIDDEN);
        }
        return init_group(r, uscf);
    }
    if u.naddrs == 0 {
        if !allow::may_resolve(&conf.allow, u.host.as_bytes(), u.port) {
            deny(log, &shown, conf);
            return Err(HTTP_FORBIDDEN);
        }
        return resolve(s, &u, &shown);
    }
    let addr = &*u.addrs;
    let Some(peer) = peer_of(addr.sockaddr, addr.socklen) else {
        return Err(HTTP_BAD_GATEWAY);
    };
    if !allow::allowed(&conf.allow, None, peer) {
        deny(log, &shown, conf);
        return Err(HTTP_FORBIDDEN);
    }
    peers_from(r, |ur| {
        ur.sockaddr = addr.sockaddr;
        ur.socklen = addr.socklen;
        ur.name = addr.name;
        ur.naddrs = 1;
    })?;
    Ok(true)
}

/// Round-robin peers for this request from addresses that `fill` describes (copied).
unsafe fn peers_from(
    r: *mut ngx_http_request_t,
    fill: impl FnOnce(&mut ngx_http_upstream_resolved_t),
) -> Result<(), ngx_int_t> {
    let ur = ngx_pcalloc((*r).pool, mem::size_of::<ngx_http_upstream_resolved_t>())
        as *mut ngx_http_upstream_resolved_t;
    let Some(ur) = ur.as_mut() else {
        return Err(HTTP_INTERNAL_SERVER_ERROR);
    };
    fill(ur);
    if ngx_http_upstream_create_round_robin_peer(r, ur) != NGX_OK {
        return Err(HTTP_INTERNAL_SERVER_ERROR);
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
    let umcf = *(*r).main_conf.add(ngx_http_upstream_module.ctx_index)
        as *const ngx_http_upstream_main_conf_t;
    let list = &(*umcf).upstreams;
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
unsafe fn resolve(s: &mut Session, u: &ngx_url_t, shown: &str) -> Result<bool, ngx_int_t> {
    let r = s.r;
    let log = (*(*r).connection).log;
    let clcf =
        *(*r).loc_conf.add(ngx_http_core_module.ctx_index) as *const ngx_http_core_loc_conf_t;
    let mut temp: ngx_resolver_ctx_t = mem::zeroed();
    temp.name = u.host;
    let ctx = ngx_resolve_start((*clcf).resolver, &mut temp);
    if ctx.is_null() {
        return Err(HTTP_INTERNAL_SERVER_ERROR);
    }
    // NGX_NO_RESOLVER
    if ctx as isize == -1 {
        ngx_log_error!(
            NGX_LOG_ERR,
            log,
            "websockify: no resolver defined to resolve target \"{shown}\""
        );
        return Err(HTTP_BAD_GATEWAY);
    }
    (*ctx).name = u.host;
    (*ctx).handler = Some(resolved);
    (*ctx).data = ptr::from_mut(s).cast();
    (*ctx).timeout = (*clcf).resolver_timeout;
    s.port = u.port;
    s.resolving = ctx;
    // A cached answer runs resolved() inside this call: the session may have started or
    // ended on return (the content handler's reference keeps the request alive).
    if ngx_resolve_name(ctx) != NGX_OK {
        s.resolving = ptr::null_mut();
        return Err(HTTP_INTERNAL_SERVER_ERROR);
    }
    Ok(false)
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
        Err(status) => relay::fail(s, status),
    }
    if run_posted {
        ngx_http_run_posted_requests(c);
    }
}

unsafe fn use_resolved(s: &mut Session, ctx: *mut ngx_resolver_ctx_t) -> Result<(), ngx_int_t> {
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
        return Err(HTTP_BAD_GATEWAY);
    }
    let found = core::slice::from_raw_parts((*ctx).addrs, (*ctx).naddrs);
    let list = ngx_pcalloc((*r).pool, mem::size_of_val(found)) as *mut ngx_resolver_addr_t;
    if list.is_null() {
        return Err(HTTP_INTERNAL_SERVER_ERROR);
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
        return Err(HTTP_FORBIDDEN);
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

/// A socket address as the allow-list sees it.
pub(crate) unsafe fn peer_of<'a>(sa: *const sockaddr, len: socklen_t) -> Option<Peer<'a>> {
    match i32::from((*sa).sa_family) {
        f if f == AF_INET as i32 => {
            let sin = &*(sa as *const sockaddr_in);
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            let port = u16::from_be(sin.sin_port);
            Some(Peer::Inet(SocketAddr::V4(SocketAddrV4::new(ip, port))))
        }
        f if f == AF_INET6 as i32 => {
            let sin6 = &*(sa as *const sockaddr_in6);
            let ip = Ipv6Addr::from(sin6.sin6_addr.__in6_u.__u6_addr8);
            let port = u16::from_be(sin6.sin6_port);
            Some(Peer::Inet(SocketAddr::V6(SocketAddrV6::new(
                ip, port, 0, 0,
            ))))
        }
        f if f == AF_UNIX as i32 => {
            let sun = &*(sa as *const sockaddr_un);
            let max = (len as usize).saturating_sub(mem::size_of_val(&sun.sun_family));
            let path = core::slice::from_raw_parts(sun.sun_path.as_ptr().cast::<u8>(), max);
            let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
            path.get(..end).map(Peer::Unix)
        }
        _ => None,
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
        let rc = ngx_event_connect_peer(pc);
        if rc == NGX_ERROR {
            // A local failure (no free connection, no socket), logged by nginx: not the
            // peer's fault, so it is not marked failed.
            release_peer(s);
            relay::fail(s, HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
        if push_state(s).is_err() {
            release_peer(s);
            relay::fail(s, HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
        match rc {
            NGX_BUSY => {
                ngx_log_error!(NGX_LOG_ERR, log, "websockify: no live upstreams");
                if let Some(state) = current_state(s) {
                    state.status = HTTP_BAD_GATEWAY as usize;
                }
                relay::fail(s, HTTP_BAD_GATEWAY);
                return;
            }
            // connect() failed at once; nginx logged it naming the peer.
            NGX_DECLINED => {
                if !failed(s, None, HTTP_BAD_GATEWAY) {
                    return;
                }
            }
            NGX_AGAIN => {
                let c = (*pc).connection;
                (*c).data = ptr::from_mut(s).cast::<c_void>();
                (*(*c).read).handler = Some(connect_handler);
                (*(*c).write).handler = Some(connect_handler);
                ngx_add_timer((*c).write, (*s.conf).connect_timeout);
                return;
            }
            // NGX_OK, or NGX_DONE: a connected one from the keepalive cache.
            _ => {
                if rc == NGX_DONE && adopt_pool(s).is_err() {
                    release_peer(s);
                    relay::fail(s, HTTP_INTERNAL_SERVER_ERROR);
                    return;
                }
                target_setup::connected(s);
                return;
            }
        }
    }
}

/// A cached connection brings the pool the upstream module made for it; nothing else
/// destroys it once the relay closes the connection, so the request's pool does.
unsafe fn adopt_pool(s: &mut Session) -> Result<(), ()> {
    let pool = (*(*s.peer()).connection).pool;
    if pool.is_null() {
        return Ok(());
    }
    let cln = ngx_pool_cleanup_add((*s.r).pool, 0);
    if cln.is_null() {
        return Err(());
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
pub(crate) unsafe fn release_peer(s: &mut Session) {
    settle(s, 0);
    let pc = s.peer();
    if !(*pc).connection.is_null() {
        target_setup::close((*pc).connection, true);
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
    let more = if (*ev).timedout() != 0 {
        failed(s, Some("connection timed out"), HTTP_GATEWAY_TIMEOUT)
    } else if (*(*c).write).ready() == 0 {
        // connect() completes (or fails) with a write event; a read event may come first
        // in the same round (epoll), or alone from nginx itself.
        return;
    } else if let Some(err) = socket_error(c) {
        failed(s, Some(&os_error(err)), HTTP_BAD_GATEWAY)
    } else {
        target_setup::connected(s);
        return;
    };
    if more {
        connect(s);
    }
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
    relay::fail(s, NGX_ERROR);
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

/// Logs a failed attempt naming the target (unless nginx did), tells the balancer, and
/// says whether another peer may be tried; when not, the request has been ended.
pub(crate) unsafe fn failed(s: &mut Session, why: Option<&str>, status: ngx_int_t) -> bool {
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
    if let Some(state) = current_state(s) {
        state.status = status as usize;
    }
    settle(s, 0);
    if !(*pc).connection.is_null() {
        target_setup::close((*pc).connection, false);
        (*pc).connection = ptr::null_mut();
    }
    if let Some(free) = (*pc).free {
        free(pc, (*pc).data, NGX_PEER_FAILED as usize);
    }
    (*pc).sockaddr = ptr::null_mut();
    if (*pc).tries == 0 {
        relay::fail(s, status);
        return false;
    }
    true
}

/// Connected, and the PROXY header and TLS handshake done (target_setup): as in the
/// upstream module, `$upstream_connect_time` includes them.
pub(crate) unsafe fn established(s: &mut Session) {
    let c = (*s.peer()).connection;
    if (*(*c).write).timer_set() != 0 {
        ngx_del_timer((*c).write);
    }
    let elapsed = ngx_current_msec.saturating_sub((*s.peer()).start_time);
    if let Some(state) = current_state(s) {
        state.connect_time = elapsed;
        state.status = 101;
    }
    relay::start(s);
}

/// Records the attempt for `$upstream_addr`, `$upstream_status` and
/// `$upstream_connect_time`.
unsafe fn push_state(s: &mut Session) -> Result<(), ()> {
    let r = s.r;
    if (*r).upstream_states.is_null() {
        (*r).upstream_states =
            ngx_array_create((*r).pool, 1, mem::size_of::<ngx_http_upstream_state_t>());
        if (*r).upstream_states.is_null() {
            return Err(());
        }
    }
    let state = ngx_array_push((*r).upstream_states) as *mut ngx_http_upstream_state_t;
    if state.is_null() {
        return Err(());
    }
    ptr::write_bytes(state, 0, 1);
    (*state).peer = (*s.peer()).name;
    (*state).connect_time = ngx::ffi::ngx_msec_t::MAX;
    (*state).response_time = ngx::ffi::ngx_msec_t::MAX;
    (*state).header_time = ngx::ffi::ngx_msec_t::MAX;
    Ok(())
}

/// The attempt ends, before its connection closes: `$upstream_response_time` since its
/// connect began, `$upstream_bytes_received` (`received`: read from the target) and
/// `$upstream_bytes_sent` (the connection's `sent`, a PROXY header included), as
/// ngx_http_upstream_finalize_request and ngx_http_upstream_next fill them. Once.
pub(crate) unsafe fn settle(s: &mut Session, received: u64) {
    if (*s.r).upstream.is_null() {
        return;
    }
    let pc = s.peer();
    let (start, c) = ((*pc).start_time, (*pc).connection);
    let Some(state) = current_state(s) else {
        return;
    };
    if state.response_time != ngx::ffi::ngx_msec_t::MAX {
        return;
    }
    state.response_time = ngx_current_msec.saturating_sub(start);
    state.bytes_received = received.try_into().unwrap_or(ngx::ffi::off_t::MAX);
    if let Some(c) = c.as_ref() {
        state.bytes_sent = c.sent;
    }
}

unsafe fn current_state(s: &mut Session) -> Option<&mut ngx_http_upstream_state_t> {
    let states = (*s.r).upstream_states.as_ref()?;
    let n = states.nelts.checked_sub(1)?;
    Some(&mut *(states.elts as *mut ngx_http_upstream_state_t).add(n))
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
    let Some(s) = (*(*r).ctx.add(ngx_http_websockify_module.ctx_index) as *mut Session).as_mut()
    else {
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
    relay::fail(s, HTTP_CLIENT_CLOSED_REQUEST);
}
