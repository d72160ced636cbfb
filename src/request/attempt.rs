//! Each connection attempt's `$upstream_*` state (`r->upstream_states`), filled as
//! nginx's upstream module fills it.

use core::{mem, ptr};

use ngx::ffi::{ngx_array_create, ngx_array_push, ngx_current_msec, ngx_http_upstream_state_t};

use super::session::Session;

/// The request's pool is exhausted; nginx has logged it.
pub struct NoMemory;

/// Records the attempt for `$upstream_addr`, `$upstream_status` and
/// `$upstream_connect_time`.
///
/// # Safety
/// The request's upstream exists.
pub unsafe fn push(s: &mut Session) -> Result<(), NoMemory> {
    // SAFETY: r is live (Session invariant); upstream_states is null or an array of
    // states in its pool.
    let r = unsafe { &mut *s.r };
    if r.upstream_states.is_null() {
        // SAFETY: as above.
        r.upstream_states =
            unsafe { ngx_array_create(r.pool, 1, mem::size_of::<ngx_http_upstream_state_t>()) };
        if r.upstream_states.is_null() {
            return Err(NoMemory);
        }
    }
    // SAFETY: as above.
    let state = unsafe { ngx_array_push(r.upstream_states) } as *mut ngx_http_upstream_state_t;
    if state.is_null() {
        return Err(NoMemory);
    }
    // SAFETY: the fresh element, zeroed before use (all its fields may be zero).
    let state = unsafe {
        ptr::write_bytes(state, 0, 1);
        &mut *state
    };
    // SAFETY: the upstream exists (# Safety).
    state.peer = unsafe { (*s.peer()).name };
    state.connect_time = ngx::ffi::ngx_msec_t::MAX;
    state.response_time = ngx::ffi::ngx_msec_t::MAX;
    state.header_time = ngx::ffi::ngx_msec_t::MAX;
    Ok(())
}

/// The attempt ends, before its connection closes: `$upstream_response_time` since its
/// connect began, `$upstream_bytes_received` (`received`: read from the target) and
/// `$upstream_bytes_sent` (the connection's `sent`, a PROXY header included), as
/// ngx_http_upstream_finalize_request and ngx_http_upstream_next fill them. Once.
pub fn settle(s: &mut Session, received: u64) {
    // SAFETY: r is live (Session invariant).
    if unsafe { (*s.r).upstream.is_null() } {
        return;
    }
    // SAFETY: the upstream exists (checked); its peer's connection is null or live.
    let (start, c) = unsafe {
        let pc = s.peer();
        ((*pc).start_time, (*pc).connection.as_ref())
    };
    let Some(state) = current(s) else {
        return;
    };
    if state.response_time != ngx::ffi::ngx_msec_t::MAX {
        return;
    }
    // SAFETY: nginx's cached clock, written only by this worker's thread.
    state.response_time = unsafe { ngx_current_msec }.wrapping_sub(start);
    state.bytes_received = received.try_into().unwrap_or(ngx::ffi::off_t::MAX);
    if let Some(c) = c {
        state.bytes_sent = c.sent;
    }
}

/// The state of the latest attempt.
pub fn current(s: &mut Session) -> Option<&mut ngx_http_upstream_state_t> {
    // SAFETY: r is live (Session invariant); upstream_states is null or push's array.
    unsafe {
        let states = (*s.r).upstream_states.as_ref()?;
        let n = states.nelts.checked_sub(1)?;
        Some(&mut *(states.elts as *mut ngx_http_upstream_state_t).add(n))
    }
}
