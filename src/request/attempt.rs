//! Each connection attempt's `$upstream_*` state (`r->upstream_states`), filled as
//! nginx's upstream module fills it.

use core::{mem, ptr};

use ngx::ffi::{ngx_array_create, ngx_array_push, ngx_current_msec, ngx_http_upstream_state_t};

use super::session::Session;

/// The request's pool is exhausted; nginx has logged it.
pub struct NoMemory;

/// Records the attempt for `$upstream_addr`, `$upstream_status` and
/// `$upstream_connect_time`.
pub unsafe fn push(s: &mut Session) -> Result<(), NoMemory> {
    let r = s.r;
    if (*r).upstream_states.is_null() {
        (*r).upstream_states =
            ngx_array_create((*r).pool, 1, mem::size_of::<ngx_http_upstream_state_t>());
        if (*r).upstream_states.is_null() {
            return Err(NoMemory);
        }
    }
    let state = ngx_array_push((*r).upstream_states) as *mut ngx_http_upstream_state_t;
    if state.is_null() {
        return Err(NoMemory);
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
pub unsafe fn settle(s: &mut Session, received: u64) {
    if (*s.r).upstream.is_null() {
        return;
    }
    let pc = s.peer();
    let (start, c) = ((*pc).start_time, (*pc).connection);
    let Some(state) = current(s) else {
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

pub unsafe fn current(s: &mut Session) -> Option<&mut ngx_http_upstream_state_t> {
    let states = (*s.r).upstream_states.as_ref()?;
    let n = states.nelts.checked_sub(1)?;
    Some(&mut *(states.elts as *mut ngx_http_upstream_state_t).add(n))
}
