//! The steps around connect(): the source address before (ngx_http_upstream_set_local),
//! then the PROXY protocol header in clear and the TLS handshake (as the stream proxy
//! orders them). Each step reports a `Step`; `connect` decides what follows, so that a
//! target that refuses either is a 502 and the next server of a group is tried, never a
//! WebSocket that opens and dies.

use core::mem;
use core::ptr;
use std::net::SocketAddr;

use ngx::core::Status;
use ngx::ffi::{
    ngx_addr_t, ngx_connection_local_sockaddr, ngx_connection_t, ngx_handle_write_event,
    ngx_http_complex_value, ngx_http_request_t, ngx_inet_addr, ngx_palloc, ngx_parse_addr_port,
    ngx_pnalloc, ngx_proxy_protocol_write, ngx_ssl_check_host, ngx_ssl_connection_certificate,
    ngx_ssl_create_connection, ngx_ssl_error, ngx_ssl_handshake, ngx_ssl_shutdown, ngx_str_t,
    ngx_tcp_nodelay, SSL_SESSION_get0_id_context, SSL_ctrl, SSL_get_session, SSL_get_verify_result,
    SSL_set_session, TLSEXT_NAMETYPE_host_name, X509_verify_cert_error_string, NGX_LOG_ERR,
    NGX_SSL_BUFFER, NGX_SSL_CLIENT, SSL_CTRL_SET_TLSEXT_HOSTNAME, X509_V_OK,
};
use ngx::http::{HTTPStatus, HttpModuleLocationConf, NgxHttpCoreModule};
use ngx::ngx_log_error;

use super::addr::peer_of;
use super::session::Session;
use crate::conf::args::cstr;
use crate::conf::target::{ProxyProtocol, TargetSsl, UpstreamConf};
use crate::protocol::allow::Peer;
use crate::protocol::proxy_protocol;

const INADDR_NONE: u32 = u32::MAX;
/// NGX_PROXY_PROTOCOL_V1_MAX_HEADER (nginx 1.22 calls it NGX_PROXY_PROTOCOL_MAX_HEADER);
/// a v2 header is shorter.
const V1_MAX: usize = 107;
const _: () = assert!(proxy_protocol::V2_MAX <= V1_MAX);

/// Location configuration lives as long as the cycle, longer than any session.
///
/// # Safety
/// The reference is not kept past the configuration cycle.
unsafe fn upstream_conf<'a>(s: &Session) -> &'a UpstreamConf {
    // SAFETY: conf is the location's configuration (Session invariant).
    unsafe { &(*s.conf).upstream }
}

/// # Safety
/// The request's upstream exists.
pub unsafe fn target_conn(s: &Session) -> *mut ngx_connection_t {
    // SAFETY: see # Safety.
    unsafe { (*s.peer()).connection }
}

/// `websockify_bind`: the source address of every connection attempt.
///
/// # Safety
/// The request's upstream exists.
pub unsafe fn set_local(s: &mut Session) -> Result<(), Local> {
    let r = s.r;
    // SAFETY: see # Safety; local is null or nginx's bind slot's value in the cycle's pool.
    let (pc, local) = unsafe { (&mut *s.peer(), upstream_conf(s).local.as_ref()) };
    let Some(local) = local else {
        pc.local = ptr::null_mut();
        return Ok(());
    };
    pc.set_transparent(local.transparent as u32);
    if local.value.is_null() {
        pc.local = local.addr;
        return Ok(());
    }
    let mut val = ngx_str_t::default();
    // SAFETY: r is live (Session invariant); local.value a compiled complex value.
    if unsafe { ngx_http_complex_value(r, local.value, &mut val) } != Status::NGX_OK.0 {
        return Err(Local);
    }
    if val.len == 0 {
        return Ok(());
    }
    // SAFETY: r is live; the address goes into its pool.
    let pool = unsafe { (*r).pool };
    // SAFETY: as above.
    let addr = unsafe { ngx_palloc(pool, mem::size_of::<ngx_addr_t>()) } as *mut ngx_addr_t;
    if addr.is_null() {
        return Err(Local);
    }
    // SAFETY: addr is a fresh ngx_addr_t for nginx to fill; val the evaluated value.
    match Status(unsafe { ngx_parse_addr_port(pool, addr, val.data, val.len) }) {
        Status::NGX_OK => {
            // SAFETY: filled by ngx_parse_addr_port.
            unsafe { (*addr).name = val };
            pc.local = addr;
            Ok(())
        }
        Status::NGX_ERROR => Err(Local),
        _ => {
            // As proxy_bind: the connection goes out from the default address.
            let shown = String::from_utf8_lossy(val.as_bytes());
            ngx_log_error!(
                NGX_LOG_ERR,
                s.log(),
                "websockify: invalid local address \"{shown}\""
            );
            Ok(())
        }
    }
}

/// How a step of setting up the target connection ended; `connect` decides what follows.
pub enum Step {
    /// Done (or not needed): on to the next step.
    Ready,
    /// Waits for the socket; `connect` installs the handler and the timer.
    Pending,
    /// The target failed it: the next server is tried. `why` is logged naming the target
    /// (None: nginx has logged it).
    Next {
        status: HTTPStatus,
        why: Option<&'static str>,
    },
    /// Our side failed (memory, a certificate file, a socket call): 500, nobody blamed.
    Local,
}

/// A failure on our side; nginx has logged it where it says why.
pub struct Local;

impl From<Local> for Step {
    fn from(_: Local) -> Step {
        Step::Local
    }
}

/// Whether this connection gets a PROXY header: a connection from an upstream keepalive
/// cache has carried bytes already (as ngx_http_upstream_connect).
///
/// # Safety
/// The request's upstream exists.
pub unsafe fn wants_proxy_header(s: &Session) -> bool {
    // SAFETY: see # Safety; the configuration outlives this call.
    let (fresh, conf) = unsafe { ((*s.peer()).cached() == 0, upstream_conf(s)) };
    fresh
        && matches!(
            conf.proxy_protocol,
            Some(ProxyProtocol::V1 | ProxyProtocol::V2)
        )
}

/// Sends the PROXY header in one piece (the specification asks for it); on EAGAIN the
/// whole header is tried again once the socket is writable, as in
/// ngx_stream_proxy_send_proxy_protocol.
///
/// # Safety
/// The request's upstream exists and its peer is connected (`pc->connection` set).
pub unsafe fn send_proxy_header(s: &mut Session) -> Step {
    // SAFETY: see # Safety.
    let (c, t) = (s.client(), unsafe { target_conn(s) });
    let mut buf = [0u8; V1_MAX];
    // SAFETY: c is the live request's client connection.
    let Some(len) = (unsafe { header(s, c, &mut buf) }) else {
        return Step::Local;
    };
    // SAFETY: t is the connected target (# Safety).
    let Some(send) = (unsafe { (*t).send }) else {
        return Step::Local;
    };
    // SAFETY: as above; buf holds len bytes.
    let n = unsafe { send(t, buf.as_mut_ptr(), len) };
    if n == Status::NGX_AGAIN.0 {
        // SAFETY: as above.
        if unsafe { ngx_handle_write_event((*t).write, 0) } != Status::NGX_OK.0 {
            return Step::Local;
        }
        return Step::Pending;
    }
    if n < 0 {
        // nginx logged the send error.
        return Step::Next {
            status: HTTPStatus::BAD_GATEWAY,
            why: None,
        };
    }
    if n as usize != len {
        ngx_log_error!(
            NGX_LOG_ERR,
            s.log(),
            "websockify: could not send PROXY protocol header at once"
        );
        return Step::Local;
    }
    Step::Ready
}

/// The header for the client connection `c` (after realip, its sockaddr is the real
/// client's) to nginx's own address.
///
/// # Safety
/// `c` is a live client connection.
unsafe fn header(s: &Session, c: *mut ngx_connection_t, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: the configuration outlives this call.
    if unsafe { upstream_conf(s) }.proxy_protocol == Some(ProxyProtocol::V1) {
        let start = buf.as_mut_ptr();
        // SAFETY: c is live; nginx writes at most buf.len() bytes from start and returns
        // where it stopped, or null.
        unsafe {
            let end = ngx_proxy_protocol_write(c, start, start.add(buf.len()));
            return (!end.is_null()).then(|| end.offset_from(start) as usize);
        }
    }
    // SAFETY: c is live.
    if unsafe { ngx_connection_local_sockaddr(c, ptr::null_mut(), 0) } != Status::NGX_OK.0 {
        return None;
    }
    // SAFETY: c's addresses, the local one just filled in.
    let h = unsafe {
        proxy_protocol::v2(
            inet((*c).sockaddr, (*c).socklen),
            inet((*c).local_sockaddr, (*c).local_socklen),
        )
    };
    let bytes = h.as_bytes();
    buf.get_mut(..bytes.len())?.copy_from_slice(bytes);
    Some(bytes.len())
}

/// # Safety
/// As for `peer_of`.
unsafe fn inet(sa: *const ngx::ffi::sockaddr, len: ngx::ffi::socklen_t) -> Option<SocketAddr> {
    // SAFETY: see # Safety.
    match unsafe { peer_of(sa, len) }? {
        Peer::Inet(a) => Some(a),
        Peer::Unix(_) => None,
    }
}

/// Reads from a setup step's connection: the byte count (0: end of stream), None when
/// it would block.
///
/// # Safety
/// `c` is a live connection.
pub unsafe fn recv(c: *mut ngx_connection_t, buf: &mut [u8]) -> Result<Option<usize>, ()> {
    // SAFETY: see # Safety.
    let recv = unsafe { (*c).recv }.ok_or(())?;
    // SAFETY: see # Safety; buf is writable for its length.
    match unsafe { recv(c, buf.as_mut_ptr(), buf.len()) } {
        n if n == Status::NGX_AGAIN.0 => Ok(None),
        n if n < 0 => Err(()),
        n => Ok(Some(n as usize)),
    }
}

/// Writes for a setup step: the byte count, None when it would block.
///
/// # Safety
/// `c` is a live connection.
pub unsafe fn send(c: *mut ngx_connection_t, bytes: &[u8]) -> Result<Option<usize>, ()> {
    // SAFETY: see # Safety.
    let send = unsafe { (*c).send }.ok_or(())?;
    // SAFETY: see # Safety; nginx only reads the bytes.
    match unsafe { send(c, bytes.as_ptr().cast_mut(), bytes.len()) } {
        n if n == Status::NGX_AGAIN.0 => Ok(None),
        n if n < 0 => Err(()),
        n => Ok(Some(n as usize)),
    }
}

/// ngx_stream_proxy_ssl_init_connection.
///
/// # Safety
/// The request's upstream exists and its peer is connected (`pc->connection` set).
pub unsafe fn start_tls(s: &mut Session) -> Step {
    // SAFETY: see # Safety; the configuration outlives this call.
    let (conf, t) = unsafe { (upstream_conf(s), target_conn(s)) };
    // SAFETY: t is the connected target.
    if conf.ssl_enable == 0 || !unsafe { (*t).ssl.is_null() } {
        return Step::Ready;
    }
    // SAFETY: see # Safety; with TLS on, merging made the context.
    unsafe { begin_tls(s, conf.ssl_session_reuse != 0) }
}

/// The TLS handshake on the target connection with the location's context: for
/// `websockify_ssl`, or inside RFB for a VeNCrypt type (no session reuse: a resumed
/// session would be the plain TLS one's).
///
/// # Safety
/// As for `start_tls`; the location has a TLS context (`websockify_ssl on`, or a
/// VeNCrypt type in `websockify_rfb_security`) and `t` no TLS connection yet.
pub unsafe fn begin_tls(s: &mut Session, reuse: bool) -> Step {
    // SAFETY: see # Safety; the configuration outlives this call.
    let (conf, t, pc) = unsafe { (upstream_conf(s), target_conn(s), s.peer()) };
    let r = s.r;
    if conf.ssl.is_null() {
        return Step::Local;
    }
    // As the stream proxy: target connections are never cached, the request's pool
    // holds the TLS state (a cached one brings its own).
    // SAFETY: t is the connected target, r the live request (Session invariant).
    unsafe {
        if (*t).pool.is_null() {
            (*t).pool = (*r).pool;
        }
    }
    // SAFETY: with TLS on, merging made conf.ssl a context (set_ssl).
    if unsafe {
        ngx_ssl_create_connection(
            &mut (*conf.ssl).ssl,
            t,
            (NGX_SSL_BUFFER | NGX_SSL_CLIENT) as usize,
        )
    } != Status::NGX_OK.0
    {
        return Step::Local;
    }
    // SAFETY: t now has its TLS connection.
    if (conf.ssl_server_name != 0 || conf.ssl_verify != 0) && unsafe { ssl_name(s, t) }.is_err() {
        return Step::Local;
    }
    // SAFETY: null or values compiled by nginx's complex value slot in the cycle's pool.
    let (cert, key) = unsafe {
        (
            conf.ssl_certificate.as_mut(),
            conf.ssl_certificate_key.as_mut(),
        )
    };
    if let (Some(cert), Some(key)) = (cert, key) {
        if cert.value.len > 0
            && (!cert.lengths.is_null() || !key.lengths.is_null())
            // SAFETY: t has its TLS connection.
            && unsafe { certificate(s, t, cert, key) }.is_err()
        {
            return Step::Local;
        }
    }
    if reuse {
        // SAFETY: t has its TLS connection; pc is the request's peer.
        unsafe {
            (*(*t).ssl).save_session = Some(save_session);
            if let Some(set) = (*pc).set_session {
                if set(pc, (*pc).data) != Status::NGX_OK.0
                    || drop_foreign_session(t, &*conf.ssl).is_err()
                {
                    return Step::Local;
                }
            }
        }
        // An abbreviated handshake may interact badly with Nagle.
        // SAFETY: r is the live request.
        let nodelay =
            NgxHttpCoreModule::location_conf(unsafe { &*r }).is_some_and(|c| c.tcp_nodelay != 0);
        // SAFETY: t is the connected target.
        if nodelay && unsafe { ngx_tcp_nodelay(t) } != Status::NGX_OK.0 {
            return Step::Local;
        }
    }
    // SAFETY: the live client connection's log.
    unsafe { (*s.log()).action = c"SSL handshaking to websockify target".as_ptr() as *mut _ };
    // SAFETY: t has its TLS connection.
    if unsafe { ngx_ssl_handshake(t) } == Status::NGX_AGAIN.0 {
        return Step::Pending;
    }
    // SAFETY: as above.
    unsafe { handshake_done(s, t) }
}

/// ngx_stream_proxy_ssl_handshake: a handshake that failed, timed out or ended with a
/// certificate that does not verify moves on to the next server.
///
/// # Safety
/// As for `start_tls`, and `t` is the target connection, its TLS connection created.
pub unsafe fn handshake_done(s: &mut Session, t: *mut ngx_connection_t) -> Step {
    // SAFETY: see # Safety.
    let (ssl, timedout) = unsafe { (&*(*t).ssl, (*(*t).write).timedout()) };
    if ssl.handshaked() != 0 {
        // SAFETY: see # Safety.
        // Anonymous TLS (VeNCrypt tls*) has no certificate to verify.
        if unsafe { upstream_conf(s).ssl_verify == 0 || s.tls_anonymous || verified(s, t) } {
            return Step::Ready;
        }
    } else if timedout != 0 {
        return Step::Next {
            status: HTTPStatus::GATEWAY_TIME_OUT,
            why: Some("SSL handshake timed out"),
        };
    }
    // nginx logged why the handshake failed; verified() logged its reason.
    Step::Next {
        status: HTTPStatus::BAD_GATEWAY,
        why: None,
    }
}

/// The certificate chains to a trusted one and names the target (ngx_ssl_check_host).
///
/// # Safety
/// As for `handshake_done`.
unsafe fn verified(s: &mut Session, t: *mut ngx_connection_t) -> bool {
    let log = s.log();
    // SAFETY: see # Safety.
    let peer = unsafe { s.peer_name() }.unwrap_or_default();
    // SAFETY: t's TLS connection, its handshake done.
    let rc = unsafe { SSL_get_verify_result((*(*t).ssl).connection) };
    if rc != X509_V_OK as _ {
        // SAFETY: OpenSSL's static text for rc.
        let why = unsafe { cstr(X509_verify_cert_error_string(rc)) }.unwrap_or("unknown");
        ngx_log_error!(
            NGX_LOG_ERR,
            log,
            "websockify: target \"{peer}\" SSL certificate verify error: ({rc}:{why})"
        );
        return false;
    }
    // SAFETY: the upstream exists; ssl_name is the name ssl_name() stored.
    let name = unsafe { &mut (*(*s.r).upstream).ssl_name };
    // SAFETY: as above.
    if unsafe { ngx_ssl_check_host(t, name) } != Status::NGX_OK.0 {
        let shown = String::from_utf8_lossy(name.as_bytes());
        ngx_log_error!(
            NGX_LOG_ERR,
            log,
            "websockify: target \"{peer}\" SSL certificate does not match \"{shown}\""
        );
        return false;
    }
    true
}

/// ngx_http_upstream_ssl_name: `websockify_ssl_name` or the host of the target, without
/// a port; sent as SNI when `websockify_ssl_server_name` is on and it is not an address.
///
/// # Safety
/// As for `handshake_done`.
unsafe fn ssl_name(s: &mut Session, t: *mut ngx_connection_t) -> Result<(), Local> {
    let r = s.r;
    // SAFETY: see # Safety; the configuration outlives this call.
    let (conf, u) = unsafe { (upstream_conf(s), &mut *(*r).upstream) };
    let mut name = u.ssl_name;
    // SAFETY: null or a value compiled by nginx's complex value slot.
    if let Some(cv) = unsafe { conf.ssl_name.as_mut() } {
        // SAFETY: r is the live request.
        if unsafe { ngx_http_complex_value(r, cv, &mut name) } != Status::NGX_OK.0 {
            return Err(Local);
        }
    }
    name.len = host_len(name.as_bytes());
    if conf.ssl_server_name != 0
        && name.len > 0
        && name.as_bytes()[0] != b'['
        // SAFETY: name.data has name.len bytes.
        && unsafe { ngx_inet_addr(name.data, name.len) } == INADDR_NONE
    {
        // SSL_set_tlsext_host_name() needs a NUL-terminated string.
        // SAFETY: r is the live request.
        let p = unsafe { ngx_pnalloc((*r).pool, name.len + 1) } as *mut u8;
        if p.is_null() {
            return Err(Local);
        }
        // SAFETY: p has name.len + 1 bytes.
        unsafe {
            ptr::copy_nonoverlapping(name.data, p, name.len);
            *p.add(name.len) = 0;
        }
        name.data = p;
        // SSL_set_tlsext_host_name() is a macro around SSL_ctrl().
        // SAFETY: t's TLS connection; p a NUL-terminated string in the request's pool.
        if unsafe {
            SSL_ctrl(
                (*(*t).ssl).connection,
                SSL_CTRL_SET_TLSEXT_HOSTNAME as i32,
                TLSEXT_NAMETYPE_host_name as _,
                p.cast(),
            )
        } == 0
        {
            // SAFETY: the live client connection's log.
            unsafe {
                ngx_ssl_error(
                    NGX_LOG_ERR as usize,
                    s.log(),
                    0,
                    c"SSL_set_tlsext_host_name() failed".as_ptr() as *mut _,
                )
            };
            return Err(Local);
        }
    }
    u.ssl_name = name;
    Ok(())
}

/// The length of `name` without a port (`host:port`, `[v6]:port`).
fn host_len(name: &[u8]) -> usize {
    let from = if name.first() == Some(&b'[') {
        name.iter().position(|&b| b == b']').unwrap_or(0)
    } else {
        0
    };
    name[from..]
        .iter()
        .position(|&b| b == b':')
        .map_or(name.len(), |i| from + i)
}

/// ngx_http_upstream_ssl_certificate: a client certificate named with variables.
///
/// # Safety
/// As for `handshake_done`.
unsafe fn certificate(
    s: &mut Session,
    t: *mut ngx_connection_t,
    cert_cv: &mut ngx::ffi::ngx_http_complex_value_t,
    key_cv: &mut ngx::ffi::ngx_http_complex_value_t,
) -> Result<(), Local> {
    let r: *mut ngx_http_request_t = s.r;
    let mut cert = ngx_str_t::default();
    // SAFETY: r is the live request (Session invariant).
    if unsafe { ngx_http_complex_value(r, cert_cv, &mut cert) } != Status::NGX_OK.0 {
        return Err(Local);
    }
    // The directive's zero slot ends values with a NUL: an empty one means none.
    // SAFETY: a value of len > 0 has its first byte.
    if cert.len == 0 || unsafe { *cert.data } == 0 {
        return Ok(());
    }
    let mut key = ngx_str_t::default();
    // SAFETY: as for the certificate.
    if unsafe { ngx_http_complex_value(r, key_cv, &mut key) } != Status::NGX_OK.0 {
        return Err(Local);
    }
    // SAFETY: t's TLS connection; the file names evaluated into the request's pool.
    #[cfg(ngx_ssl_cache)]
    let rc = unsafe {
        ngx_ssl_connection_certificate(
            t,
            (*r).pool,
            &mut cert,
            &mut key,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    // SAFETY: as above.
    #[cfg(not(ngx_ssl_cache))]
    let rc = unsafe {
        ngx_ssl_connection_certificate(t, (*r).pool, &mut cert, &mut key, ptr::null_mut())
    };
    if rc != Status::NGX_OK.0 {
        return Err(Local);
    }
    Ok(())
}

/// The balancer's peer is shared by every location that names the target, each with its
/// own TLS context: a session it saved under another one was verified with another trust
/// (its verify result would become this connection's), so it goes for a full handshake.
/// nginx's proxy module shares peers alike and resumes such sessions.
///
/// # Safety
/// `t` is a live connection with its TLS connection created.
unsafe fn drop_foreign_session(t: *mut ngx_connection_t, ssl: &TargetSsl) -> Result<(), Local> {
    // SAFETY: see # Safety; the session is null or the one the balancer set.
    let (conn, session) = unsafe {
        let conn = (*(*t).ssl).connection;
        (conn, SSL_get_session(conn))
    };
    if session.is_null() {
        return Ok(());
    }
    let mut len = 0;
    // SAFETY: OpenSSL returns the session's id context and its length.
    let same = unsafe {
        let id = SSL_SESSION_get0_id_context(session, &mut len);
        !id.is_null() && core::slice::from_raw_parts(id, len as usize) == ssl.session_context
    };
    if same {
        return Ok(());
    }
    // SAFETY: see # Safety.
    if unsafe { SSL_set_session(conn, ptr::null_mut()) } != 1 {
        // SAFETY: see # Safety.
        unsafe {
            ngx_ssl_error(
                NGX_LOG_ERR as usize,
                (*t).log,
                0,
                c"SSL_set_session() failed".as_ptr() as *mut _,
            )
        };
        return Err(Local);
    }
    Ok(())
}

/// A new TLS session from the target: the balancer keeps it for the next connection
/// (ngx_http_upstream_ssl_save_session).
///
/// # Safety
/// nginx calls it with a target connection whose `data` is null or its session
/// (`connect::connected`), the upstream made.
unsafe extern "C" fn save_session(c: *mut ngx_connection_t) {
    // SAFETY: see # Safety.
    if unsafe { (*c).idle() } != 0 {
        return;
    }
    // SAFETY: see # Safety.
    let Some(s) = (unsafe { ((*c).data as *mut Session).as_mut() }) else {
        return;
    };
    // SAFETY: the request's upstream exists; its balancer's own callback and data.
    unsafe {
        let pc = s.peer();
        if let Some(save) = (*pc).save_session {
            save(pc, (*pc).data);
        }
    }
}

/// Closes a target connection, shutting TLS down first as ngx_http_upstream_next
/// (`notify` false: a failed attempt) and ngx_http_upstream_finalize_request (true: the
/// close_notify alert is sent, the target's is not awaited) do.
///
/// # Safety
/// `c` is a live target connection; it is freed here and must not be used afterwards.
pub unsafe fn close(c: *mut ngx_connection_t, notify: bool) {
    // SAFETY: see # Safety; its ssl is null or its TLS connection.
    if let Some(ssl) = unsafe { (*c).ssl.as_mut() } {
        ssl.set_no_wait_shutdown(1);
        ssl.set_no_send_shutdown(u32::from(!notify));
        // SAFETY: see # Safety.
        if unsafe { ngx_ssl_shutdown(c) } == Status::NGX_AGAIN.0 {
            // The alert cannot go out now and nobody will wait for it: a quiet shutdown
            // frees the TLS state, which closing the socket alone would leak.
            // SAFETY: see # Safety.
            unsafe {
                (*c).set_error(1);
                ngx_ssl_shutdown(c);
            }
        }
    }
    // SAFETY: see # Safety.
    unsafe { ngx::ffi::ngx_close_connection(c) };
}
