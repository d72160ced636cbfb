//! The directives table: every `websockify_*` directive, its levels and arguments, and the
//! setter that parses it into the location configuration (`conf`), the zone (`zone`) or a
//! content handler (`request`).

use core::ffi::c_void;
use core::ptr;

use ngx::ffi::{
    ngx_command_t, ngx_conf_t, ngx_str_t, ngx_uint_t, NGX_CONF_1MORE, NGX_CONF_TAKE1,
    NGX_CONF_TAKE12, NGX_CONF_TAKE2, NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET,
    NGX_HTTP_MAIN_CONF, NGX_HTTP_MAIN_CONF_OFFSET, NGX_HTTP_SRV_CONF,
};
// The target-connection directives use nginx's own slots, as proxy_ssl_* and proxy_bind do.
use ngx::ffi::{
    ngx_conf_set_flag_slot, ngx_conf_set_num_slot, ngx_conf_set_str_slot,
    ngx_http_set_complex_value_slot, ngx_http_set_complex_value_zero_slot,
    ngx_http_upstream_bind_set_slot, NGX_CONF_FLAG,
};

use core::ffi::c_char;

use ngx::core::NGX_CONF_OK;
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};

use crate::conf::{self, Content, LocConf};
use crate::request::{handler, status_page};
use crate::zone;

const ANY_LEVEL: ngx_uint_t = (NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF) as _;

const fn command(
    name: &'static core::ffi::CStr,
    kind: ngx_uint_t,
    set: unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut i8,
    offset: usize,
) -> ngx_command_t {
    ngx_command_t {
        // nginx compares names with strcmp(): they need their NUL.
        name: ngx_str_t {
            len: name.count_bytes(),
            data: name.as_ptr() as *mut u8,
        },
        type_: kind,
        set: Some(set),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset,
        post: ptr::null_mut(),
    }
}

pub static mut COMMANDS: [ngx_command_t; 32] = [
    command(
        c"websockify_pass",
        (NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1) as _,
        set_pass,
        0,
    ),
    command(
        c"websockify_allow",
        ANY_LEVEL | NGX_CONF_TAKE12 as ngx_uint_t,
        conf::set_allow,
        0,
    ),
    command(
        c"websockify_allow_origin",
        ANY_LEVEL | NGX_CONF_1MORE as ngx_uint_t,
        conf::set_allow_origin,
        0,
    ),
    command(
        c"websockify_buffer_size",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        conf::set_size,
        core::mem::offset_of!(conf::LocConf, buffer_size),
    ),
    command(
        c"websockify_connect_timeout",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        conf::set_msec,
        core::mem::offset_of!(conf::LocConf, connect_timeout),
    ),
    command(
        c"websockify_read_timeout",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        conf::set_msec,
        core::mem::offset_of!(conf::LocConf, read_timeout),
    ),
    command(
        c"websockify_send_timeout",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        conf::set_msec,
        core::mem::offset_of!(conf::LocConf, send_timeout),
    ),
    command(
        c"websockify_ping_interval",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        conf::set_ping,
        core::mem::offset_of!(conf::LocConf, ping_interval),
    ),
    command(
        c"websockify_session_timeout",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        conf::set_session_timeout,
        0,
    ),
    ngx_command_t {
        conf: NGX_HTTP_MAIN_CONF_OFFSET,
        ..command(
            c"websockify_zone",
            (NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE2) as ngx_uint_t,
            zone::set_zone,
            0,
        )
    },
    command(
        c"websockify_status",
        (NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1) as ngx_uint_t,
        status_page::set_status,
        0,
    ),
    command(
        c"websockify_ssl",
        ANY_LEVEL | NGX_CONF_FLAG as ngx_uint_t,
        ngx_conf_set_flag_slot,
        core::mem::offset_of!(conf::LocConf, upstream.ssl_enable),
    ),
    command(
        c"websockify_ssl_protocols",
        ANY_LEVEL | NGX_CONF_1MORE as ngx_uint_t,
        conf::target::set_protocols,
        core::mem::offset_of!(conf::LocConf, upstream),
    ),
    command(
        c"websockify_ssl_ciphers",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        ngx_conf_set_str_slot,
        core::mem::offset_of!(conf::LocConf, upstream.ssl_ciphers),
    ),
    command(
        c"websockify_ssl_name",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        ngx_http_set_complex_value_slot,
        core::mem::offset_of!(conf::LocConf, upstream.ssl_name),
    ),
    command(
        c"websockify_ssl_server_name",
        ANY_LEVEL | NGX_CONF_FLAG as ngx_uint_t,
        ngx_conf_set_flag_slot,
        core::mem::offset_of!(conf::LocConf, upstream.ssl_server_name),
    ),
    command(
        c"websockify_ssl_verify",
        ANY_LEVEL | NGX_CONF_FLAG as ngx_uint_t,
        ngx_conf_set_flag_slot,
        core::mem::offset_of!(conf::LocConf, upstream.ssl_verify),
    ),
    command(
        c"websockify_ssl_verify_depth",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        ngx_conf_set_num_slot,
        core::mem::offset_of!(conf::LocConf, upstream.ssl_verify_depth),
    ),
    command(
        c"websockify_ssl_trusted_certificate",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        ngx_conf_set_str_slot,
        core::mem::offset_of!(conf::LocConf, upstream.ssl_trusted_certificate),
    ),
    command(
        c"websockify_ssl_certificate",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        ngx_http_set_complex_value_zero_slot,
        core::mem::offset_of!(conf::LocConf, upstream.ssl_certificate),
    ),
    command(
        c"websockify_ssl_certificate_key",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        ngx_http_set_complex_value_zero_slot,
        core::mem::offset_of!(conf::LocConf, upstream.ssl_certificate_key),
    ),
    command(
        c"websockify_ssl_session_reuse",
        ANY_LEVEL | NGX_CONF_FLAG as ngx_uint_t,
        ngx_conf_set_flag_slot,
        core::mem::offset_of!(conf::LocConf, upstream.ssl_session_reuse),
    ),
    command(
        c"websockify_proxy_protocol",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        conf::target::set_proxy_protocol,
        core::mem::offset_of!(conf::LocConf, upstream),
    ),
    command(
        c"websockify_bind",
        ANY_LEVEL | NGX_CONF_TAKE12 as ngx_uint_t,
        ngx_http_upstream_bind_set_slot,
        core::mem::offset_of!(conf::LocConf, upstream.local),
    ),
    command(
        c"websockify_rfb_password",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        conf::rfb::set_credential,
        0,
    ),
    command(
        c"websockify_rfb_username",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        conf::rfb::set_credential,
        0,
    ),
    command(
        c"websockify_rfb_security",
        ANY_LEVEL | NGX_CONF_1MORE as ngx_uint_t,
        conf::rfb::set_security,
        0,
    ),
    command(
        c"websockify_rfb_view_only",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        conf::rfb::set_view_only,
        0,
    ),
    command(
        c"websockify_record",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        conf::record::set_record,
        0,
    ),
    command(
        c"websockify_record_input",
        ANY_LEVEL | NGX_CONF_FLAG as ngx_uint_t,
        ngx_conf_set_flag_slot,
        core::mem::offset_of!(conf::LocConf, record.input),
    ),
    command(
        c"websockify_record_required",
        ANY_LEVEL | NGX_CONF_FLAG as ngx_uint_t,
        ngx_conf_set_flag_slot,
        core::mem::offset_of!(conf::LocConf, record.required),
    ),
    ngx_command_t::empty(),
];

/// `websockify_pass`: parsed by `conf`, and the location's content handler becomes ours.
///
/// # Safety
/// nginx calls it with the directive's `cf` and `cmd` and this module's location
/// configuration as `conf`.
unsafe extern "C" fn set_pass(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls a setter with the directive's cf, cmd and configuration.
    let rv = unsafe { conf::set_pass(cf, cmd, conf) };
    if rv != NGX_CONF_OK {
        return rv;
    }
    // SAFETY: cf is the location block being parsed.
    match NgxHttpCoreModule::location_conf_mut(unsafe { &*cf }) {
        Some(clcf) => {
            clcf.handler = Some(handler::handler);
            NGX_CONF_OK
        }
        None => ngx::core::NGX_CONF_ERROR,
    }
}

/// Methods that `limit_except` restricts use the block's configuration, content handler
/// included: the block gets the handler its inherited target or status zone needs.
pub fn inherit_handler(cf: &ngx_conf_t, conf: &LocConf) {
    let Some(clcf) = NgxHttpCoreModule::location_conf_mut(cf) else {
        return;
    };
    if clcf.lmt_excpt() == 0 || clcf.handler.is_some() {
        return;
    }
    clcf.handler = match conf.content() {
        Some(Content::Session) => Some(handler::handler),
        Some(Content::Status) => Some(status_page::handler),
        None => None,
    };
}
