//! The content handler: checks the WebSocket handshake, picks the target, and once the
//! target is connected answers 101 and hands both connections to the relay.

use core::ptr;

use ngx::ffi::{
    ngx_http_request_t, ngx_http_send_header, ngx_http_send_special, ngx_int_t, ngx_list_part_t,
    ngx_list_push, ngx_list_t, ngx_pnalloc, ngx_str_t, ngx_table_elt_t, NGX_HTTP_FLUSH,
    NGX_HTTP_GET, NGX_HTTP_VERSION_11, NGX_LOG_ERR, NGX_LOG_INFO,
};
use ngx::ngx_log_error;

use crate::allow;
use crate::config::LocConf;
use crate::handshake::{self, Accept};
use crate::module::ngx_http_websockify_module;
use crate::relay::Session;
use crate::target;

const NGX_DONE: ngx_int_t = -4;
const NGX_ERROR: ngx_int_t = -1;
const HTTP_BAD_REQUEST: ngx_int_t = 400;
const HTTP_FORBIDDEN: ngx_int_t = 403;
const HTTP_INTERNAL_SERVER_ERROR: ngx_int_t = 500;
const HTTP_SWITCHING_PROTOCOLS: usize = 101;

pub unsafe extern "C" fn handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    let conf = &*(*(*r).loc_conf.add(ngx_http_websockify_module.ctx_index) as *const LocConf);
    let log = (*(*r).connection).log;
    // Only the main request owns the client connection (as in ngx_http_upstream_upgrade).
    if r != (*r).main {
        ngx_log_error!(
            NGX_LOG_ERR,
            log,
            "websockify: a WebSocket session cannot run in a subrequest"
        );
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    // Every location this handler serves has a target, nameless ones inherit it
    // (config::merge_loc_conf); never decline to the static module.
    if conf.target.is_null() {
        ngx_log_error!(NGX_LOG_ERR, log, "websockify: no target for this location");
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    let accept = match check_handshake(r, conf) {
        Ok(accept) => accept,
        Err(rej) => {
            ngx_log_error!(
                NGX_LOG_INFO,
                log,
                "websockify: bad handshake: {}",
                rej.reason
            );
            if rej.status == 426 && add_header(r, "Sec-WebSocket-Version", b"13").is_err() {
                return NGX_ERROR;
            }
            return rej.status as ngx_int_t;
        }
    };
    let Some(s) = Session::create(r, conf, accept) else {
        return NGX_ERROR;
    };
    // The session's reference (ngx_http_read_client_request_body() takes it for the
    // upstream module): whatever begin() ends synchronously (a failure, a cached resolver
    // answer) finalizes the request while this reference keeps it alive, and NGX_DONE
    // drops it in the content phase. Nothing here touches the request after begin().
    (*(*r).main).set_count((*(*r).main).count() + 1);
    target::begin(&mut *s);
    NGX_DONE
}

unsafe fn check_handshake(
    r: *mut ngx_http_request_t,
    conf: &LocConf,
) -> Result<Accept, handshake::Reject> {
    let hin = &(*r).headers_in;
    if hin.content_length_n > 0 || hin.chunked() != 0 {
        return Err(handshake::Reject {
            status: HTTP_BAD_REQUEST as u16,
            reason: "request body on a WebSocket handshake",
        });
    }
    let is_get = (*r).method == NGX_HTTP_GET as usize;
    let http11 = (*r).http_version == NGX_HTTP_VERSION_11 as usize;
    let accept = handshake::check(is_get, http11, headers(&hin.headers))?;
    let origin = header(&hin.headers, b"origin");
    if !allow::origin_allowed(&conf.origins, origin, header(&hin.headers, b"host")) {
        return Err(handshake::Reject {
            status: HTTP_FORBIDDEN as u16,
            reason: "origin not allowed by websockify_allow_origin",
        });
    }
    Ok(accept)
}

/// The first header called `name` (lowercase).
unsafe fn header<'a>(list: &'a ngx_list_t, name: &[u8]) -> Option<&'a [u8]> {
    headers(list).find_map(|(k, v)| k.eq_ignore_ascii_case(name).then_some(v))
}

/// Every request header as (name, value), in order.
unsafe fn headers(list: &ngx_list_t) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
    let mut part = &list.part as *const ngx_list_part_t;
    let mut i = 0;
    core::iter::from_fn(move || loop {
        let p = part.as_ref()?;
        if i < p.nelts {
            let h = &*(p.elts as *const ngx_table_elt_t).add(i);
            i += 1;
            return Some((h.key.as_bytes(), h.value.as_bytes()));
        }
        part = p.next;
        i = 0;
    })
}

unsafe fn add_header(
    r: *mut ngx_http_request_t,
    key: &'static str,
    value: &[u8],
) -> Result<(), ()> {
    // The value first: a pushed element must never stay uninitialised on failure.
    let data = ngx_pnalloc((*r).pool, value.len()) as *mut u8;
    if data.is_null() {
        return Err(());
    }
    let h = ngx_list_push(&mut (*r).headers_out.headers) as *mut ngx_table_elt_t;
    if h.is_null() {
        return Err(());
    }
    ptr::copy_nonoverlapping(value.as_ptr(), data, value.len());
    // Zeroed first: the struct gained fields after 1.22 (`next`), all of which may be null.
    ptr::write_bytes(h, 0, 1);
    (*h).hash = 1;
    (*h).key = ngx_str_t {
        len: key.len(),
        data: key.as_ptr() as *mut u8,
    };
    (*h).value = ngx_str_t {
        len: value.len(),
        data,
    };
    Ok(())
}

/// Sends the 101 response once the target is connected.
pub unsafe fn switch_protocols(r: *mut ngx_http_request_t, accept: &Accept) -> Result<(), ()> {
    const STATUS_LINE: &str = "101 Switching Protocols";
    let out = &mut (*r).headers_out;
    out.status = HTTP_SWITCHING_PROTOCOLS;
    out.status_line = ngx_str_t {
        len: STATUS_LINE.len(),
        data: STATUS_LINE.as_ptr() as *mut u8,
    };
    add_header(r, "Upgrade", b"websocket")?;
    add_header(r, "Sec-WebSocket-Accept", &accept.accept)?;
    if let Some(protocol) = accept.protocol {
        add_header(r, "Sec-WebSocket-Protocol", protocol.as_bytes())?;
    }
    (*r).set_keepalive(0);
    let rc = ngx_http_send_header(r);
    if rc == NGX_ERROR || rc > 0 {
        return Err(());
    }
    // The header may stay queued in r->out; the relay flushes it before any frame.
    if ngx_http_send_special(r, NGX_HTTP_FLUSH as usize) == NGX_ERROR {
        return Err(());
    }
    Ok(())
}
