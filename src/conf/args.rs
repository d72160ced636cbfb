//! Helpers every directive setter uses: its arguments, duplicate checks, merging a value.

use core::ffi::c_char;

use ngx::core::NGX_CONF_ERROR;
use ngx::ffi::{ngx_command_t, ngx_conf_t, ngx_str_t, NGX_LOG_EMERG};
use ngx::ngx_conf_log_error;

/// A value left unset at this level takes the parent's, or else the default.
pub fn merge<T: PartialEq + Copy>(cur: &mut T, prev: T, unset: T, default: T) {
    if *cur == unset {
        *cur = if prev == unset { default } else { prev };
    }
}

/// The directive's name and its arguments.
///
/// # Safety
/// `cf` and `cmd` are what nginx passes to the directive's setter, during that call.
pub unsafe fn arguments(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
) -> (&'static str, &'static [ngx_str_t]) {
    // SAFETY: while a directive is parsed, cf->args holds its words, the name first.
    let (all, name) = unsafe {
        let args = &*(*cf).args;
        (
            core::slice::from_raw_parts(args.elts as *const ngx_str_t, args.nelts),
            (*cmd).name.as_bytes(),
        )
    };
    let name = core::str::from_utf8(name).unwrap_or("websockify");
    (name, all.get(1..).unwrap_or_default())
}

/// The directive's name and its single argument.
///
/// # Safety
/// As for `arguments`.
pub unsafe fn directive(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t) -> (&'static str, ngx_str_t) {
    // SAFETY: as for arguments.
    let (name, args) = unsafe { arguments(cf, cmd) };
    (name, args.first().copied().unwrap_or_default())
}

/// Reports a directive given twice at one level, as nginx's slots do.
///
/// # Safety
/// `cf` is the configuration being parsed (the log macro reads it).
pub unsafe fn duplicate(cf: *mut ngx_conf_t, name: &str) -> *mut c_char {
    ngx_conf_log_error!(NGX_LOG_EMERG, cf, "\"{name}\" directive is duplicate");
    NGX_CONF_ERROR
}

/// A C string from nginx (an error text), when there is one.
///
/// # Safety
/// `p` is null or a NUL-terminated string that outlives `'a`.
pub unsafe fn cstr<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        return None;
    }
    // SAFETY: see # Safety; nginx's error texts are static.
    unsafe { core::ffi::CStr::from_ptr(p) }.to_str().ok()
}

/// A configuration word for a message.
pub fn show(value: &ngx_str_t) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(value.as_bytes())
}
