//! The 101 response that opens a session, sent once the target is connected.

use core::ptr;

use ngx::core::Status;
use ngx::ffi::{
    ngx_http_request_t, ngx_http_send_header, ngx_http_send_special, ngx_list_push, ngx_pnalloc,
    ngx_str_t, ngx_table_elt_t, NGX_HTTP_FLUSH,
};
use ngx::http::HTTPStatus;

use crate::protocol::handshake::Accept;

/// nginx's output failed; it has logged why.
pub struct SendFailed;

/// Adds a response header.
///
/// # Safety
/// `r` is a live request whose header is not sent yet.
pub unsafe fn add_header(
    r: *mut ngx_http_request_t,
    key: &'static str,
    value: &[u8],
) -> Result<(), SendFailed> {
    // SAFETY: see # Safety.
    let r = unsafe { &mut *r };
    // The value first: a pushed element must never stay uninitialised on failure.
    // SAFETY: the request's pool.
    let data = unsafe { ngx_pnalloc(r.pool, value.len()) } as *mut u8;
    if data.is_null() {
        return Err(SendFailed);
    }
    // SAFETY: the request's own header list.
    let h = unsafe { ngx_list_push(&mut r.headers_out.headers) } as *mut ngx_table_elt_t;
    if h.is_null() {
        return Err(SendFailed);
    }
    // Zeroed first: the struct gained fields after 1.22 (`next`), all of which may be null.
    // SAFETY: data has value.len() bytes; h is the fresh element.
    let h = unsafe {
        ptr::copy_nonoverlapping(value.as_ptr(), data, value.len());
        ptr::write_bytes(h, 0, 1);
        &mut *h
    };
    h.hash = 1;
    h.key = ngx_str_t {
        len: key.len(),
        data: key.as_ptr() as *mut u8,
    };
    h.value = ngx_str_t {
        len: value.len(),
        data,
    };
    Ok(())
}

/// Sends the 101 response once the target is connected.
///
/// # Safety
/// As for `add_header`.
pub unsafe fn switch_protocols(
    r: *mut ngx_http_request_t,
    accept: &Accept,
) -> Result<(), SendFailed> {
    const STATUS_LINE: &str = "101 Switching Protocols";
    // SAFETY: see # Safety.
    let out = unsafe { &mut (*r).headers_out };
    out.status = HTTPStatus::SWITCHING_PROTOCOLS.into();
    out.status_line = ngx_str_t {
        len: STATUS_LINE.len(),
        data: STATUS_LINE.as_ptr() as *mut u8,
    };
    // SAFETY: see # Safety.
    unsafe {
        add_header(r, "Upgrade", b"websocket")?;
        add_header(r, "Sec-WebSocket-Accept", &accept.accept)?;
        if let Some(protocol) = accept.protocol {
            add_header(r, "Sec-WebSocket-Protocol", protocol.as_bytes())?;
        }
        (*r).set_keepalive(0);
    }
    // SAFETY: see # Safety.
    let rc = unsafe { ngx_http_send_header(r) };
    if rc == Status::NGX_ERROR.into() || rc > 0 {
        return Err(SendFailed);
    }
    // The header may stay queued in r->out; the relay flushes it before any frame.
    // SAFETY: the live request, its header sent.
    if unsafe { ngx_http_send_special(r, NGX_HTTP_FLUSH as usize) } == Status::NGX_ERROR.into() {
        return Err(SendFailed);
    }
    Ok(())
}
