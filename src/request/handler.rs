//! The content handler: checks the WebSocket handshake and the origin, creates the
//! session and starts connecting the target (`connect`).

use ngx::core::Status;
use ngx::ffi::{
    ngx_http_request_t, ngx_int_t, ngx_list_part_t, ngx_list_t, ngx_table_elt_t, NGX_HTTP_GET,
    NGX_HTTP_VERSION_11, NGX_LOG_ERR, NGX_LOG_INFO,
};
use ngx::http::HTTPStatus;
use ngx::http::HttpModuleLocationConf;
use ngx::ngx_log_error;

use super::upgrade::add_header;
use super::{connect, relay};
use crate::conf::LocConf;
use crate::protocol::allow;
use crate::protocol::handshake::{self, Accept};
use crate::Websockify;

/// The content handler of a `websockify_pass` location.
///
/// # Safety
/// nginx calls it with a live request in its content phase.
pub unsafe extern "C" fn handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: see # Safety.
    let (conf, log, main) = unsafe {
        (
            Websockify::location_conf(&*r),
            (*(*r).connection).log,
            (*r).main,
        )
    };
    let Some(conf) = conf else {
        return HTTPStatus::INTERNAL_SERVER_ERROR.0 as ngx_int_t;
    };
    // Only the main request owns the client connection (as in ngx_http_upstream_upgrade).
    if r != main {
        ngx_log_error!(
            NGX_LOG_ERR,
            log,
            "websockify: a WebSocket session cannot run in a subrequest"
        );
        return HTTPStatus::INTERNAL_SERVER_ERROR.0 as ngx_int_t;
    }
    // Every location this handler serves has a target, nameless ones inherit it
    // (config::merge_loc_conf); never decline to the static module.
    if conf.target.is_null() {
        ngx_log_error!(NGX_LOG_ERR, log, "websockify: no target for this location");
        return HTTPStatus::INTERNAL_SERVER_ERROR.0 as ngx_int_t;
    }

    // SAFETY: see # Safety.
    let accept = match unsafe { check_handshake(r, conf) } {
        Ok(accept) => accept,
        Err(rej) => {
            ngx_log_error!(
                NGX_LOG_INFO,
                log,
                "websockify: bad handshake: {}",
                rej.reason
            );
            // SAFETY: the live request, its header not sent yet.
            if rej.status == 426
                && unsafe { add_header(r, "Sec-WebSocket-Version", b"13") }.is_err()
            {
                return Status::NGX_ERROR.0;
            }
            return rej.status as ngx_int_t;
        }
    };
    // SAFETY: the live request and its location configuration.
    let Some(s) = (unsafe { relay::create(r, conf, accept) }) else {
        return Status::NGX_ERROR.0;
    };
    // The session's reference (ngx_http_read_client_request_body() takes it for the
    // upstream module): whatever begin() ends synchronously (a failure, a cached resolver
    // answer) finalizes the request while this reference keeps it alive, and Status::NGX_DONE.0
    // drops it in the content phase. Nothing here touches the request after begin().
    // SAFETY: r is its own main request (checked); s the session create made, begun once,
    // here, with the reference taken just before.
    unsafe {
        (*main).set_count((*main).count() + 1);
        connect::begin(&mut *s);
    }
    Status::NGX_DONE.0
}

/// # Safety
/// `r` is a live request.
unsafe fn check_handshake(
    r: *mut ngx_http_request_t,
    conf: &LocConf,
) -> Result<Accept, handshake::Reject> {
    // SAFETY: see # Safety.
    let r = unsafe { &*r };
    let hin = &r.headers_in;
    if hin.content_length_n > 0 || hin.chunked() != 0 {
        return Err(handshake::Reject {
            status: HTTPStatus::BAD_REQUEST.0 as ngx_int_t as u16,
            reason: "request body on a WebSocket handshake",
        });
    }
    let is_get = r.method == NGX_HTTP_GET as usize;
    let http11 = r.http_version == NGX_HTTP_VERSION_11 as usize;
    // SAFETY: the live request's header list, not changed meanwhile.
    let accept = handshake::check(is_get, http11, unsafe { headers(&hin.headers) })?;
    // SAFETY: as above.
    let (origin, host) = unsafe {
        (
            header(&hin.headers, b"origin"),
            header(&hin.headers, b"host"),
        )
    };
    if !allow::origin_allowed(&conf.origins, origin, host) {
        return Err(handshake::Reject {
            status: HTTPStatus::FORBIDDEN.0 as ngx_int_t as u16,
            reason: "origin not allowed by websockify_allow_origin",
        });
    }
    Ok(accept)
}

/// The first header called `name` (lowercase).
///
/// # Safety
/// As for `headers`.
unsafe fn header<'a>(list: &'a ngx_list_t, name: &[u8]) -> Option<&'a [u8]> {
    // SAFETY: see # Safety.
    unsafe { headers(list) }.find_map(|(k, v)| k.eq_ignore_ascii_case(name).then_some(v))
}

/// Every request header as (name, value), in order. Not the crate's `list_iterator`: on
/// reaching a next part it indexes that part without checking that it holds an element
/// (a panic on an empty part), and it yields `NgxStr` where the checks want bytes.
///
/// # Safety
/// `list` is a request's header list (of ngx_table_elt_t), unchanged while iterated.
unsafe fn headers(list: &ngx_list_t) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
    let mut part = &list.part as *const ngx_list_part_t;
    let mut i = 0;
    core::iter::from_fn(move || loop {
        // SAFETY: see # Safety; a part's next is null or the following part.
        let p = unsafe { part.as_ref() }?;
        if i < p.nelts {
            // SAFETY: i is below the part's element count.
            let h = unsafe { &*(p.elts as *const ngx_table_elt_t).add(i) };
            i += 1;
            return Some((h.key.as_bytes(), h.value.as_bytes()));
        }
        part = p.next;
        i = 0;
    })
}
