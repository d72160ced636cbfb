//! Per-session variables for `log_format` (the access log line is written when the session
//! ends): `$websockify_session_id`, `$websockify_bytes_from_client`,
//! `$websockify_bytes_to_client`, `$websockify_frames_from_client`,
//! `$websockify_close_code`, `$websockify_close_cause`, `$websockify_target`,
//! `$websockify_rfb_security`, `$websockify_rfb_desktop`.

use core::ptr;

use ngx::core::Status;
use ngx::ffi::{
    ngx_conf_t, ngx_http_add_variable, ngx_http_request_t, ngx_http_variable_value_t, ngx_int_t,
    ngx_pnalloc, ngx_str_t, NGX_HTTP_VAR_NOCACHEABLE,
};

use super::session::{self, Session};

type Get = fn(&Session) -> Option<String>;

const VARIABLES: [(&str, Get); 9] = [
    ("websockify_session_id", |s| s.id().map(str::to_owned)),
    ("websockify_bytes_from_client", |s| {
        s.stats().map(|st| st.from_client.to_string())
    }),
    ("websockify_bytes_to_client", |s| {
        s.stats().map(|st| st.to_client.to_string())
    }),
    ("websockify_frames_from_client", |s| {
        s.stats().map(|st| st.frames_from_client.to_string())
    }),
    ("websockify_close_code", |s| {
        s.end().and_then(|e| e.code).map(|c| c.to_string())
    }),
    ("websockify_close_cause", |s| {
        s.end().map(|e| e.cause.as_str().to_owned())
    }),
    ("websockify_target", |s| s.target_name().map(str::to_owned)),
    ("websockify_rfb_security", |s| {
        s.rfb_security().map(str::to_owned)
    }),
    ("websockify_rfb_desktop", |s| s.desktop().map(str::to_owned)),
];

/// nginx could not allocate a variable; it has logged why.
pub struct NoMemory;

/// Preconfiguration: registers the variables.
///
/// # Safety
/// `cf` is the http block being parsed.
pub unsafe fn add(cf: *mut ngx_conf_t) -> Result<(), NoMemory> {
    for (i, (name, _)) in VARIABLES.iter().enumerate() {
        let mut name = ngx_str_t {
            len: name.len(),
            data: name.as_ptr().cast_mut(),
        };
        // SAFETY: see # Safety; nginx copies the name.
        let v = unsafe { ngx_http_add_variable(cf, &mut name, NGX_HTTP_VAR_NOCACHEABLE as usize) };
        // SAFETY: null or the variable nginx just added.
        let Some(v) = (unsafe { v.as_mut() }) else {
            return Err(NoMemory);
        };
        v.get_handler = Some(get);
        v.data = i;
    }
    Ok(())
}

/// # Safety
/// nginx calls it with a live request and the value to fill.
unsafe extern "C" fn get(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    data: usize,
) -> ngx_int_t {
    // SAFETY: see # Safety.
    let (s, v) = unsafe { (session::session_of(r), &mut *v) };
    let value = s.zip(VARIABLES.get(data)).and_then(|(s, (_, get))| get(s));
    let Some(value) = value else {
        v.set_not_found(1);
        return Status::NGX_OK.0;
    };
    // SAFETY: the live request's pool.
    let p = unsafe { ngx_pnalloc((*r).pool, value.len()) } as *mut u8;
    if p.is_null() {
        return Status::NGX_ERROR.0;
    }
    // SAFETY: p has value.len() bytes.
    unsafe { ptr::copy_nonoverlapping(value.as_ptr(), p, value.len()) };
    v.set_len(value.len() as u32);
    v.set_valid(1);
    v.set_no_cacheable(1);
    v.set_not_found(0);
    v.data = p;
    Status::NGX_OK.0
}
