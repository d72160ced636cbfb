//! `websockify_status zone=NAME;`: a location that shows the zone's sessions (GET, JSON or
//! `?format=prometheus`) and ends one of them (`DELETE <location>/sessions/<id>`). It is
//! open to whoever reaches the location: protect it the nginx way (`allow`/`deny`, auth).

use core::ffi::{c_char, c_void};
use core::ptr;

use ngx::core::{Status, NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    ngx_buf_t, ngx_chain_t, ngx_command_t, ngx_conf_t, ngx_create_temp_buf,
    ngx_http_discard_request_body, ngx_http_output_filter, ngx_http_request_t,
    ngx_http_send_header, ngx_int_t, ngx_str_t, NGX_HTTP_DELETE, NGX_HTTP_GET, NGX_HTTP_HEAD,
    NGX_LOG_EMERG, NGX_LOG_ERR, NGX_LOG_INFO,
};
use ngx::http::HTTPStatus;
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};
use ngx::{ngx_conf_log_error, ngx_log_error};

use crate::conf::args::{arguments, duplicate};
use crate::conf::LocConf;
use crate::status::{self, Format};
use crate::zone::{self, Locked};
use crate::Websockify;

/// `websockify_status zone=NAME;`
///
/// # Safety
/// nginx calls it with the directive's `cf` and this module's location configuration as
/// `conf`.
pub unsafe extern "C" fn set_status(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: see # Safety.
    let (conf, (directive, args)) = unsafe { (&mut *(conf as *mut LocConf), arguments(cf, cmd)) };
    let Some(arg) = args.first() else {
        return NGX_CONF_ERROR;
    };
    let Some(name) = arg
        .as_bytes()
        .strip_prefix(b"zone=")
        .filter(|n| !n.is_empty())
    else {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "invalid parameter \"{}\" in \"websockify_status\" directive, it must be zone=NAME",
            String::from_utf8_lossy(arg.as_bytes())
        );
        return NGX_CONF_ERROR;
    };
    if !conf.status_zone.is_null() {
        // SAFETY: cf is the live configuration.
        return unsafe { duplicate(cf, directive) };
    }
    let mut name = ngx_str_t {
        len: name.len(),
        data: name.as_ptr().cast_mut(),
    };
    // SAFETY: cf is the live configuration.
    let zone = unsafe { zone::find(cf, &mut name) };
    if zone.is_null() {
        return NGX_CONF_ERROR;
    }
    conf.status_zone = zone;
    // SAFETY: as above.
    let Some(clcf) = NgxHttpCoreModule::location_conf_mut(unsafe { &*cf }) else {
        return NGX_CONF_ERROR;
    };
    clcf.handler = Some(handler);
    NGX_CONF_OK
}

/// The content handler of a `websockify_status` location.
///
/// # Safety
/// nginx calls it with a live request in its content phase.
pub unsafe extern "C" fn handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: see # Safety.
    let (conf, log) = unsafe { (Websockify::location_conf(&*r), (*(*r).connection).log) };
    let Some(conf) = conf else {
        return HTTPStatus::INTERNAL_SERVER_ERROR.0 as ngx_int_t;
    };
    if conf.status_zone.is_null() {
        ngx_log_error!(
            NGX_LOG_ERR,
            log,
            "websockify: no zone for websockify_status in this location"
        );
        return HTTPStatus::INTERNAL_SERVER_ERROR.0 as ngx_int_t;
    }
    // SAFETY: see # Safety.
    let rc = unsafe { ngx_http_discard_request_body(r) };
    if rc != Status::NGX_OK.0 {
        return rc;
    }
    // SAFETY: see # Safety.
    let (method, args, uri) = unsafe { ((*r).method, (*r).args, (*r).uri) };
    if method & (NGX_HTTP_GET | NGX_HTTP_HEAD) as usize != 0 {
        let Some(format) = Format::from_args(args.as_bytes()) else {
            return HTTPStatus::BAD_REQUEST.0 as ngx_int_t;
        };
        // SAFETY: status_zone is a zone that set_zone added (set_status found it).
        let Some(mut zone) = (unsafe { Locked::new(conf.status_zone) }) else {
            return HTTPStatus::INTERNAL_SERVER_ERROR.0 as ngx_int_t;
        };
        let snapshot = zone.snapshot();
        drop(zone);
        let (kind, body) = match format {
            Format::Json => ("application/json", snapshot.render(format)),
            Format::Prometheus => (
                "text/plain; version=0.0.4; charset=utf-8",
                snapshot.render(format),
            ),
        };
        // SAFETY: see # Safety.
        return unsafe { respond(r, HTTPStatus::OK, kind, body.as_bytes()) };
    }
    if method & NGX_HTTP_DELETE as usize != 0 {
        let Some(id) = status::session_id(uri.as_bytes()) else {
            return HTTPStatus::NOT_FOUND.0 as ngx_int_t;
        };
        // SAFETY: as for GET.
        let Some(mut zone) = (unsafe { Locked::new(conf.status_zone) }) else {
            return HTTPStatus::INTERNAL_SERVER_ERROR.0 as ngx_int_t;
        };
        let found = zone.revoke(id);
        drop(zone);
        let id = String::from_utf8_lossy(id).into_owned();
        if !found {
            return HTTPStatus::NOT_FOUND.0 as ngx_int_t;
        }
        ngx_log_error!(
            NGX_LOG_INFO,
            log,
            "websockify: session {id} revoked through the status location"
        );
        let body = format!("{{\"id\":\"{id}\",\"revoked\":true}}\n");
        // SAFETY: see # Safety.
        return unsafe { respond(r, HTTPStatus::ACCEPTED, "application/json", body.as_bytes()) };
    }
    HTTPStatus::NOT_ALLOWED.0 as ngx_int_t
}

/// Sends the whole response.
///
/// # Safety
/// `r` is a live request whose header is not sent yet.
unsafe fn respond(
    r: *mut ngx_http_request_t,
    status: HTTPStatus,
    kind: &'static str,
    body: &[u8],
) -> ngx_int_t {
    // SAFETY: see # Safety.
    let out = unsafe { &mut (*r).headers_out };
    out.status = status.into();
    out.content_length_n = body.len() as i64;
    out.content_type = ngx_str_t {
        len: kind.len(),
        data: kind.as_ptr().cast_mut(),
    };
    out.content_type_len = kind.find(';').unwrap_or(kind.len());
    out.content_type_lowcase = ptr::null_mut();
    // SAFETY: see # Safety.
    let rc = unsafe { ngx_http_send_header(r) };
    // SAFETY: see # Safety.
    if rc == Status::NGX_ERROR.0 || rc > Status::NGX_OK.0 || unsafe { (*r).header_only() } != 0 {
        return rc;
    }
    // SAFETY: the live request's pool, and its main request.
    let (b, main): (*mut ngx_buf_t, _) =
        unsafe { (ngx_create_temp_buf((*r).pool, body.len().max(1)), (*r).main) };
    if b.is_null() {
        return Status::NGX_ERROR.0;
    }
    // SAFETY: b is a fresh buffer of at least body.len() bytes.
    let b = unsafe {
        ptr::copy_nonoverlapping(body.as_ptr(), (*b).last, body.len());
        (*b).last = (*b).last.add(body.len());
        &mut *b
    };
    // Subrequests (SSI) get the body too, as from stub_status.
    b.set_last_buf(u32::from(r == main));
    b.set_last_in_chain(1);
    let mut out = ngx_chain_t {
        buf: b,
        next: ptr::null_mut(),
    };
    // SAFETY: see # Safety; nginx copies the chain link it keeps.
    unsafe { ngx_http_output_filter(r, &mut out) }
}
