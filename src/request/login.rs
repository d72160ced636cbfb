//! The connect chain's last step when a `websockify_rfb_*` directive is set: the gateway
//! logs in to the VNC server (protocol::rfb::login decides everything) before the client
//! gets its 101. This file only reads, writes and starts TLS when told.

use std::borrow::Cow;

use ngx::core::Status;
use ngx::ffi::{
    ngx_connection_t, ngx_handle_read_event, ngx_handle_write_event, ngx_http_get_flushed_variable,
    NGX_LOG_ERR,
};
use ngx::http::HTTPStatus;
use ngx::ngx_log_error;

use super::session::{Login, RfbSession, Session};
use super::setup::{self, Step};
use crate::conf::rfb::{Credential, ViewOnly};
use crate::protocol::rfb::login::{self as rfb, Credentials, Failure, Progress};
use crate::protocol::rfb::{Secret, Security, Tls};

/// The server's handshake is short: a reason string is at most 1 KiB (wire::MAX_REASON).
const READ: usize = 2048;

/// Starts the login when the location asks for it; Ready when it does not.
///
/// # Safety
/// The request's upstream exists and its peer is connected; `s` is the request's session.
pub unsafe fn start(s: &mut Session) -> Step {
    let rfb = &s.conf().rfb;
    if !rfb.enabled() {
        return Step::Ready;
    }
    // SAFETY: see # Safety; the values were compiled for this location.
    let creds = unsafe {
        let (Ok(username), Ok(password)) = (
            credential(s, rfb.username.as_ref()),
            credential(s, rfb.password.as_ref()),
        ) else {
            return Step::Local;
        };
        Credentials { username, password }
    };
    // SAFETY: the live client connection's log.
    unsafe { (*s.log()).action = c"logging in to the VNC server".as_ptr() as *mut _ };
    s.login = Some(Box::new(Login {
        machine: rfb::Login::new(rfb.policy(), creds),
        input: Vec::new(),
        out: Secret::default(),
        sent: 0,
        tls: None,
        handshaking: false,
        done: None,
    }));
    // SAFETY: see # Safety.
    unsafe { resume(s) }
}

/// A credential for this request, copied out of nginx's memory; an evaluated copy in the
/// request's pool is wiped at once (a variable's own value stays where its module keeps
/// it).
///
/// # Safety
/// `s` is the request's session and `c` configured in its location.
unsafe fn credential(s: &Session, c: Option<&Credential>) -> Result<Secret, ()> {
    match c {
        None => Ok(Secret::default()),
        Some(Credential::Var(index)) => {
            // SAFETY: see # Safety; the index was registered at configuration time.
            let v = unsafe { ngx_http_get_flushed_variable(s.r, *index).as_ref() };
            match v {
                Some(v) if v.not_found() == 0 && !v.data.is_null() => {
                    // SAFETY: a found variable's value is data..data + len.
                    let bytes = unsafe { core::slice::from_raw_parts(v.data, v.len() as usize) };
                    Ok(Secret::new(bytes.to_vec()))
                }
                Some(_) => Ok(Secret::default()),
                None => Err(()),
            }
        }
        Some(Credential::Value(cv)) => {
            let value = s.evaluate(cv).ok_or(())?;
            let secret = Secret::new(value.as_bytes().to_vec());
            if value.len > 0 && value.data != cv.value.data {
                // SAFETY: an evaluation result nginx allocated for this request.
                unsafe { core::ptr::write_bytes(value.data, 0, value.len) };
            }
            Ok(secret)
        }
    }
}

/// Moves the login on as far as the socket allows.
///
/// # Safety
/// As for `start`, and `s.login` is set.
pub unsafe fn resume(s: &mut Session) -> Step {
    // SAFETY: see # Safety.
    let t = unsafe { s.target() };
    loop {
        let Some(login) = s.login.as_mut() else {
            return Step::Local;
        };
        // SAFETY: t is the connected target.
        match unsafe { flush(t, login) } {
            Ok(true) => {}
            // SAFETY: as above.
            Ok(false) => return unsafe { wait_write(t) },
            Err(()) => {
                return fail(
                    s,
                    HTTPStatus::BAD_GATEWAY,
                    "sending to the VNC server failed",
                )
            }
        }
        if let Some(tls) = login.tls.take() {
            // Bytes that came in clear after the go-ahead are no part of the TLS session
            // (injected ones, as against STARTTLS).
            if !login.input.is_empty() {
                return fail(
                    s,
                    HTTPStatus::BAD_GATEWAY,
                    "the VNC server sent data before the VeNCrypt TLS handshake",
                );
            }
            // SAFETY: see # Safety.
            return unsafe { start_tls(s, tls) };
        }
        if let Some(security) = login.done {
            return done_with(s, security);
        }
        let mut buf = [0u8; READ];
        // SAFETY: t is the connected target.
        let n = match unsafe { setup::recv(t, &mut buf) } {
            Ok(Some(0)) => {
                return fail(
                    s,
                    HTTPStatus::BAD_GATEWAY,
                    "the VNC server closed the connection during the RFB handshake",
                )
            }
            Ok(Some(n)) => n,
            // SAFETY: t is the connected target.
            Ok(None) => return unsafe { wait_read(t) },
            Err(()) => {
                return fail(
                    s,
                    HTTPStatus::BAD_GATEWAY,
                    "reading from the VNC server failed",
                )
            }
        };
        login.input.extend_from_slice(&buf[..n]);
        let rc = login.machine.input(&login.input);
        match rc {
            Ok((used, progress)) => {
                login.input.drain(..used.min(login.input.len()));
                login.out = login.machine.take_output();
                login.sent = 0;
                match progress {
                    Progress::Reading => {}
                    Progress::StartTls(tls) => login.tls = Some(tls),
                    Progress::Done(done) => login.done = Some(done.security),
                }
            }
            Err(why) => return refused(s, why),
        }
    }
}

/// Writes what the machine queued; true when all of it went.
///
/// # Safety
/// `t` is the connected target.
unsafe fn flush(t: *mut ngx_connection_t, login: &mut Login) -> Result<bool, ()> {
    while let Some(rest) = login
        .out
        .as_bytes()
        .get(login.sent..)
        .filter(|r| !r.is_empty())
    {
        // SAFETY: see # Safety.
        match unsafe { setup::send(t, rest) }? {
            Some(n) => login.sent += n,
            None => return Ok(false),
        }
    }
    Ok(true)
}

/// # Safety
/// `t` is the connected target.
unsafe fn wait_read(t: *mut ngx_connection_t) -> Step {
    // SAFETY: see # Safety. With level-triggered events the write event, ready since the
    // connect, would fire on and on: it goes until there is something to write.
    if unsafe {
        ngx_handle_read_event((*t).read, 0) != Status::NGX_OK.0
            || ngx_handle_write_event((*t).write, 0) != Status::NGX_OK.0
    } {
        return Step::Local;
    }
    Step::Pending
}

/// # Safety
/// `t` is the connected target.
unsafe fn wait_write(t: *mut ngx_connection_t) -> Step {
    // SAFETY: see # Safety.
    if unsafe { ngx_handle_write_event((*t).write, 0) } != Status::NGX_OK.0 {
        return Step::Local;
    }
    Step::Pending
}

/// VeNCrypt's TLS on the target connection, with the location's TLS settings.
///
/// # Safety
/// As for `resume`.
unsafe fn start_tls(s: &mut Session, tls: Tls) -> Step {
    // SAFETY: see # Safety.
    if !unsafe { (*s.target()).ssl.is_null() } {
        return fail(
            s,
            HTTPStatus::BAD_GATEWAY,
            "VeNCrypt TLS inside websockify_ssl is not supported",
        );
    }
    s.tls_anonymous = tls == Tls::Anonymous;
    // SAFETY: see # Safety; a TLS type in the policy made the location's context.
    let step = unsafe { setup::begin_tls(s, false) };
    match step {
        Step::Ready => {
            // SAFETY: see # Safety.
            unsafe { tls_done(s) }
        }
        Step::Pending => {
            if let Some(login) = s.login.as_mut() {
                login.handshaking = true;
            }
            Step::Pending
        }
        other => other,
    }
}

/// The TLS handshake inside RFB ended well: the login goes on through it.
///
/// # Safety
/// As for `resume`.
pub unsafe fn tls_done(s: &mut Session) -> Step {
    // SAFETY: the live client connection's log.
    unsafe { (*s.log()).action = c"logging in to the VNC server".as_ptr() as *mut _ };
    let Some(login) = s.login.as_mut() else {
        return Step::Local;
    };
    login.handshaking = false;
    login.machine.tls_started();
    login.out = login.machine.take_output();
    login.sent = 0;
    // SAFETY: see # Safety.
    unsafe { resume(s) }
}

/// Logged in: the server waits for ClientInit, which the browser sends after the gate's
/// handshake. Bytes before it would be no RFB.
fn done_with(s: &mut Session, security: Security) -> Step {
    let early = s.login.as_ref().is_some_and(|l| !l.input.is_empty());
    s.login = None;
    if early {
        return fail(
            s,
            HTTPStatus::BAD_GATEWAY,
            "the VNC server sent data before ClientInit",
        );
    }
    s.rfb = Some(RfbSession {
        security,
        view_only: false,
    });
    Step::Ready
}

/// The server or the policy refused the login: one line naming the target and the type.
fn refused(s: &mut Session, why: Failure) -> Step {
    let security = s.login.as_ref().and_then(|l| l.machine.security());
    let what: Cow<str> = match (security, &why) {
        (Some(sec), Failure::VeNCrypt(_) | Failure::Malformed(_)) => {
            format!("{why} (security type {})", sec.name()).into()
        }
        _ => why.to_string().into(),
    };
    fail(s, HTTPStatus::BAD_GATEWAY, &what)
}

/// Ends the attempt: the login is dropped (its secrets wiped) and the error logged once.
fn fail(s: &mut Session, status: HTTPStatus, why: &str) -> Step {
    s.login = None;
    let log = s.log();
    // SAFETY: connecting, the request's upstream exists.
    let name = unsafe { s.peer_name() }.unwrap_or_default();
    ngx_log_error!(
        NGX_LOG_ERR,
        log,
        "websockify: cannot log in to VNC server \"{name}\": {why}"
    );
    Step::Next { status, why: None }
}

/// Whether this session is view-only (`websockify_rfb_view_only`).
///
/// # Safety
/// `s` is the request's session.
pub unsafe fn view_only(s: &Session) -> Result<bool, ()> {
    match &s.conf().rfb.view_only {
        None | Some(ViewOnly::Off) => Ok(false),
        Some(ViewOnly::On) => Ok(true),
        Some(ViewOnly::Var(cv)) => {
            let value = s.evaluate(cv).ok_or(())?;
            Ok(matches!(value.as_bytes(), b"on" | b"1" | b"yes"))
        }
    }
}
