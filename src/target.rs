//! Choosing and connecting to the target: static addresses from the configuration or a
//! value with variables evaluated per request, tried in order until one connects.

use core::ffi::c_void;
use core::{mem, ptr};

use ngx::ffi::{
    getsockopt, ngx_add_timer, ngx_addr_t, ngx_array_create, ngx_array_push, ngx_close_connection,
    ngx_current_msec, ngx_del_timer, ngx_event_connect_peer, ngx_event_get_peer, ngx_event_t,
    ngx_http_complex_value, ngx_http_request_t, ngx_http_upstream_state_t, ngx_int_t,
    ngx_parse_url, ngx_str_t, ngx_url_t, socklen_t, NGX_LOG_ERR, SOL_SOCKET, SO_ERROR,
};
use ngx::ngx_log_error;

use crate::config::{Target, DEFAULT_PORT};
use crate::relay::{self, Session};

const NGX_OK: ngx_int_t = 0;
const NGX_AGAIN: ngx_int_t = -2;
pub const HTTP_BAD_GATEWAY: ngx_int_t = 502;
pub const HTTP_GATEWAY_TIMEOUT: ngx_int_t = 504;
const HTTP_INTERNAL_SERVER_ERROR: ngx_int_t = 500;

/// The addresses to try, in order.
#[derive(Clone, Copy)]
pub struct Addrs {
    pub list: *mut ngx_addr_t,
    pub len: usize,
}

pub unsafe fn addresses(r: *mut ngx_http_request_t, target: &Target) -> Result<Addrs, ngx_int_t> {
    match target {
        Target::Static { addrs, naddrs } => Ok(Addrs {
            list: *addrs,
            len: *naddrs,
        }),
        Target::Dynamic(cv) => {
            let log = (*(*r).connection).log;
            let mut value = ngx_str_t::default();
            if ngx_http_complex_value(r, ptr::from_ref(cv).cast_mut(), &mut value) != NGX_OK {
                return Err(HTTP_INTERNAL_SERVER_ERROR);
            }
            let shown = String::from_utf8_lossy(value.as_bytes());
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
                let why = if u.err.is_null() {
                    "invalid"
                } else {
                    core::ffi::CStr::from_ptr(u.err)
                        .to_str()
                        .unwrap_or("invalid")
                };
                ngx_log_error!(
                    NGX_LOG_ERR,
                    log,
                    "websockify: invalid target \"{shown}\": {why}"
                );
                return Err(HTTP_BAD_GATEWAY);
            }
            if u.naddrs == 0 {
                ngx_log_error!(
                    NGX_LOG_ERR,
                    log,
                    "websockify: target \"{shown}\" is a host name; a per-request target must be an IP address or a unix: path"
                );
                return Err(HTTP_BAD_GATEWAY);
            }
            Ok(Addrs {
                list: u.addrs,
                len: u.naddrs,
            })
        }
    }
}

/// Starts connecting to the next address; on success the relay takes over, when none is
/// left the request ends with the last failure's status.
pub unsafe fn connect(s: *mut Session) {
    let s = &mut *s;
    loop {
        let Some(addr) = s.next_addr() else {
            relay::fail(s, s.failure);
            return;
        };
        let log = (*(*s.r).connection).log;
        (*log).action = c"connecting to websockify target".as_ptr() as *mut _;
        s.peer.sockaddr = (*addr).sockaddr;
        s.peer.socklen = (*addr).socklen;
        s.peer.name = &mut (*addr).name;
        s.peer.get = Some(ngx_event_get_peer);
        s.peer.log = log;
        s.peer.set_log_error(NGX_ERROR_ERR);
        s.peer.tries = 1;
        s.peer.start_time = ngx_current_msec;
        if push_state(s).is_err() {
            relay::fail(s, HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
        match ngx_event_connect_peer(&mut s.peer) {
            NGX_OK => {
                connected(s);
                return;
            }
            NGX_AGAIN => {
                let c = s.peer.connection;
                (*c).data = ptr::from_mut(s).cast::<c_void>();
                (*(*c).read).handler = Some(connect_handler);
                (*(*c).write).handler = Some(connect_handler);
                ngx_add_timer((*c).write, (*s.conf).connect_timeout);
                return;
            }
            _ => {
                refused(s, "connection failed");
                s.failure = HTTP_BAD_GATEWAY;
            }
        }
    }
}

const NGX_ERROR_ERR: u32 = 1;

unsafe extern "C" fn connect_handler(ev: *mut ngx_event_t) {
    let c = (*ev).data as *mut ngx::ffi::ngx_connection_t;
    let s = &mut *((*c).data as *mut Session);
    if (*ev).timedout() != 0 {
        refused(s, "connection timed out");
        s.failure = HTTP_GATEWAY_TIMEOUT;
    } else if let Some(err) = socket_error(c) {
        refused(s, &std::io::Error::from_raw_os_error(err).to_string());
        s.failure = HTTP_BAD_GATEWAY;
    } else {
        if (*(*c).write).timer_set() != 0 {
            ngx_del_timer((*c).write);
        }
        connected(s);
        return;
    }
    connect(s);
}

/// SO_ERROR of a socket whose non-blocking connect() finished.
unsafe fn socket_error(c: *mut ngx::ffi::ngx_connection_t) -> Option<i32> {
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

/// Logs a failed attempt (naming the target) and drops its connection.
unsafe fn refused(s: &mut Session, why: &str) {
    let log = (*(*s.r).connection).log;
    let name = String::from_utf8_lossy((*s.peer.name).as_bytes());
    ngx_log_error!(
        NGX_LOG_ERR,
        log,
        "websockify: cannot connect to target \"{name}\": {why}"
    );
    if !s.peer.connection.is_null() {
        ngx_close_connection(s.peer.connection);
        s.peer.connection = ptr::null_mut();
    }
}

unsafe fn connected(s: &mut Session) {
    let elapsed = ngx_current_msec.saturating_sub(s.peer.start_time);
    if let Some(state) = current_state(s) {
        state.connect_time = elapsed;
    }
    relay::start(s);
}

/// Records the attempt for `$upstream_addr` and `$upstream_connect_time`.
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
    (*state).peer = s.peer.name;
    (*state).connect_time = ngx::ffi::ngx_msec_t::MAX;
    Ok(())
}

unsafe fn current_state(s: &mut Session) -> Option<&mut ngx_http_upstream_state_t> {
    let states = (*s.r).upstream_states.as_ref()?;
    let n = states.nelts.checked_sub(1)?;
    Some(&mut *(states.elts as *mut ngx_http_upstream_state_t).add(n))
}
