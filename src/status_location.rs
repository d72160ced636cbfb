//! `websockify_status zone=NAME;`: a location that shows the zone's sessions (GET, JSON or
//! `?format=prometheus`) and ends one of them (`DELETE <location>/sessions/<id>`). It is
//! open to whoever reaches the location: protect it the nginx way (`allow`/`deny`, auth).

use core::ffi::{c_char, c_void};
use core::ptr;

use ngx::ffi::{
    ngx_buf_t, ngx_chain_t, ngx_command_t, ngx_conf_t, ngx_create_temp_buf,
    ngx_http_core_loc_conf_t, ngx_http_core_module, ngx_http_discard_request_body,
    ngx_http_output_filter, ngx_http_request_t, ngx_http_send_header, ngx_int_t, ngx_str_t,
    NGX_HTTP_DELETE, NGX_HTTP_GET, NGX_HTTP_HEAD, NGX_LOG_EMERG, NGX_LOG_ERR, NGX_LOG_INFO,
};
use ngx::{ngx_conf_log_error, ngx_log_error};

use crate::config::LocConf;
use crate::module::ngx_http_websockify_module;
use crate::status::{self, Format};
use crate::zone::{self, Locked};

const NGX_OK: ngx_int_t = 0;
const NGX_ERROR: ngx_int_t = -1;
const HTTP_OK: usize = 200;
const HTTP_ACCEPTED: usize = 202;
const HTTP_BAD_REQUEST: ngx_int_t = 400;
const HTTP_NOT_FOUND: ngx_int_t = 404;
const HTTP_NOT_ALLOWED: ngx_int_t = 405;
const HTTP_INTERNAL_SERVER_ERROR: ngx_int_t = 500;
const CONF_OK: *mut c_char = ptr::null_mut();
const CONF_ERROR: *mut c_char = usize::MAX as *mut c_char;

/// `websockify_status zone=NAME;`
pub unsafe extern "C" fn set_status(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let conf = &mut *(conf as *mut LocConf);
    let args = &*(*cf).args;
    let args = core::slice::from_raw_parts(args.elts as *const ngx_str_t, args.nelts);
    let Some(arg) = args.get(1) else {
        return CONF_ERROR;
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
        return CONF_ERROR;
    };
    if !conf.status_zone.is_null() {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "\"websockify_status\" directive is duplicate"
        );
        return CONF_ERROR;
    }
    let mut name = ngx_str_t {
        len: name.len(),
        data: name.as_ptr().cast_mut(),
    };
    let zone = zone::find(cf, &mut name);
    if zone.is_null() {
        return CONF_ERROR;
    }
    conf.status_zone = zone;
    let clcf = *(*(*cf).ctx.cast::<ngx::ffi::ngx_http_conf_ctx_t>())
        .loc_conf
        .add(ngx_http_core_module.ctx_index) as *mut ngx_http_core_loc_conf_t;
    (*clcf).handler = Some(handler);
    CONF_OK
}

pub unsafe extern "C" fn handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    let conf = &*(*(*r).loc_conf.add(ngx_http_websockify_module.ctx_index) as *const LocConf);
    if conf.status_zone.is_null() {
        ngx_log_error!(
            NGX_LOG_ERR,
            (*(*r).connection).log,
            "websockify: no zone for websockify_status in this location"
        );
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    let rc = ngx_http_discard_request_body(r);
    if rc != NGX_OK {
        return rc;
    }
    let method = (*r).method;
    if method & (NGX_HTTP_GET | NGX_HTTP_HEAD) as usize != 0 {
        let Some(format) = Format::from_args((*r).args.as_bytes()) else {
            return HTTP_BAD_REQUEST;
        };
        let Some(mut zone) = Locked::new(conf.status_zone) else {
            return HTTP_INTERNAL_SERVER_ERROR;
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
        return respond(r, HTTP_OK, kind, body.as_bytes());
    }
    if method & NGX_HTTP_DELETE as usize != 0 {
        let Some(id) = status::session_id((*r).uri.as_bytes()) else {
            return HTTP_NOT_FOUND;
        };
        let Some(mut zone) = Locked::new(conf.status_zone) else {
            return HTTP_INTERNAL_SERVER_ERROR;
        };
        let found = zone.revoke(id);
        drop(zone);
        let id = String::from_utf8_lossy(id).into_owned();
        if !found {
            return HTTP_NOT_FOUND;
        }
        ngx_log_error!(
            NGX_LOG_INFO,
            (*(*r).connection).log,
            "websockify: session {id} revoked through the status location"
        );
        let body = format!("{{\"id\":\"{id}\",\"revoked\":true}}\n");
        return respond(r, HTTP_ACCEPTED, "application/json", body.as_bytes());
    }
    HTTP_NOT_ALLOWED
}

unsafe fn respond(
    r: *mut ngx_http_request_t,
    status: usize,
    kind: &'static str,
    body: &[u8],
) -> ngx_int_t {
    let out = &mut (*r).headers_out;
    out.status = status;
    out.content_length_n = body.len() as i64;
    out.content_type = ngx_str_t {
        len: kind.len(),
        data: kind.as_ptr().cast_mut(),
    };
    out.content_type_len = kind.find(';').unwrap_or(kind.len());
    out.content_type_lowcase = ptr::null_mut();
    let rc = ngx_http_send_header(r);
    if rc == NGX_ERROR || rc > NGX_OK || (*r).header_only() != 0 {
        return rc;
    }
    let b: *mut ngx_buf_t = ngx_create_temp_buf((*r).pool, body.len().max(1));
    if b.is_null() {
        return NGX_ERROR;
    }
    ptr::copy_nonoverlapping(body.as_ptr(), (*b).last, body.len());
    (*b).last = (*b).last.add(body.len());
    // Subrequests (SSI) get the body too, as from stub_status.
    (*b).set_last_buf(u32::from(r == (*r).main));
    (*b).set_last_in_chain(1);
    let mut out = ngx_chain_t {
        buf: b,
        next: ptr::null_mut(),
    };
    ngx_http_output_filter(r, &mut out)
}
