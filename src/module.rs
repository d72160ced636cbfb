//! Registration: the module, its context and its directives.

use core::ffi::c_void;
use core::ptr;

use ngx::ffi::{
    ngx_command_t, ngx_conf_t, ngx_http_module_t, ngx_module_t, ngx_str_t, ngx_uint_t,
    NGX_CONF_1MORE, NGX_CONF_TAKE1, NGX_CONF_TAKE12, NGX_CONF_TAKE2, NGX_HTTP_LOC_CONF,
    NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MAIN_CONF, NGX_HTTP_MAIN_CONF_OFFSET, NGX_HTTP_MODULE,
    NGX_HTTP_SRV_CONF,
};
// The target-connection directives use nginx's own slots, as proxy_ssl_* and proxy_bind do.
use ngx::ffi::{
    ngx_conf_set_flag_slot, ngx_conf_set_num_slot, ngx_conf_set_str_slot,
    ngx_http_set_complex_value_slot, ngx_http_set_complex_value_zero_slot,
    ngx_http_upstream_bind_set_slot, NGX_CONF_FLAG,
};

use crate::{config, config_target, status_location, variables, zone};

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

static mut COMMANDS: [ngx_command_t; 25] = [
    command(
        c"websockify_pass",
        (NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1) as _,
        config::set_pass,
        0,
    ),
    command(
        c"websockify_allow",
        ANY_LEVEL | NGX_CONF_TAKE12 as ngx_uint_t,
        config::set_allow,
        0,
    ),
    command(
        c"websockify_allow_origin",
        ANY_LEVEL | NGX_CONF_1MORE as ngx_uint_t,
        config::set_allow_origin,
        0,
    ),
    command(
        c"websockify_buffer_size",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        config::set_size,
        core::mem::offset_of!(config::LocConf, buffer_size),
    ),
    command(
        c"websockify_connect_timeout",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        config::set_msec,
        core::mem::offset_of!(config::LocConf, connect_timeout),
    ),
    command(
        c"websockify_read_timeout",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        config::set_msec,
        core::mem::offset_of!(config::LocConf, read_timeout),
    ),
    command(
        c"websockify_send_timeout",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        config::set_msec,
        core::mem::offset_of!(config::LocConf, send_timeout),
    ),
    command(
        c"websockify_ping_interval",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        config::set_ping,
        core::mem::offset_of!(config::LocConf, ping_interval),
    ),
    command(
        c"websockify_session_timeout",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        config::set_session_timeout,
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
        status_location::set_status,
        0,
    ),
    command(
        c"websockify_ssl",
        ANY_LEVEL | NGX_CONF_FLAG as ngx_uint_t,
        ngx_conf_set_flag_slot,
        core::mem::offset_of!(config::LocConf, upstream.ssl_enable),
    ),
    command(
        c"websockify_ssl_protocols",
        ANY_LEVEL | NGX_CONF_1MORE as ngx_uint_t,
        config_target::set_protocols,
        0,
    ),
    command(
        c"websockify_ssl_ciphers",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        ngx_conf_set_str_slot,
        core::mem::offset_of!(config::LocConf, upstream.ssl_ciphers),
    ),
    command(
        c"websockify_ssl_name",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        ngx_http_set_complex_value_slot,
        core::mem::offset_of!(config::LocConf, upstream.ssl_name),
    ),
    command(
        c"websockify_ssl_server_name",
        ANY_LEVEL | NGX_CONF_FLAG as ngx_uint_t,
        ngx_conf_set_flag_slot,
        core::mem::offset_of!(config::LocConf, upstream.ssl_server_name),
    ),
    command(
        c"websockify_ssl_verify",
        ANY_LEVEL | NGX_CONF_FLAG as ngx_uint_t,
        ngx_conf_set_flag_slot,
        core::mem::offset_of!(config::LocConf, upstream.ssl_verify),
    ),
    command(
        c"websockify_ssl_verify_depth",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        ngx_conf_set_num_slot,
        core::mem::offset_of!(config::LocConf, upstream.ssl_verify_depth),
    ),
    command(
        c"websockify_ssl_trusted_certificate",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        ngx_conf_set_str_slot,
        core::mem::offset_of!(config::LocConf, upstream.ssl_trusted_certificate),
    ),
    command(
        c"websockify_ssl_certificate",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        ngx_http_set_complex_value_zero_slot,
        core::mem::offset_of!(config::LocConf, upstream.ssl_certificate),
    ),
    command(
        c"websockify_ssl_certificate_key",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        ngx_http_set_complex_value_zero_slot,
        core::mem::offset_of!(config::LocConf, upstream.ssl_certificate_key),
    ),
    command(
        c"websockify_ssl_session_reuse",
        ANY_LEVEL | NGX_CONF_FLAG as ngx_uint_t,
        ngx_conf_set_flag_slot,
        core::mem::offset_of!(config::LocConf, upstream.ssl_session_reuse),
    ),
    command(
        c"websockify_proxy_protocol",
        ANY_LEVEL | NGX_CONF_TAKE1 as ngx_uint_t,
        config_target::set_proxy_protocol,
        0,
    ),
    command(
        c"websockify_bind",
        ANY_LEVEL | NGX_CONF_TAKE12 as ngx_uint_t,
        ngx_http_upstream_bind_set_slot,
        core::mem::offset_of!(config::LocConf, upstream.local),
    ),
    ngx_command_t::empty(),
];

static CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: Some(variables::add),
    postconfiguration: None,
    create_main_conf: Some(zone::create_main_conf),
    init_main_conf: None,
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: Some(config::create_loc_conf),
    merge_loc_conf: Some(config::merge_loc_conf),
};

#[used]
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_http_websockify_module: ngx_module_t = ngx_module_t {
    ctx: ptr::addr_of!(CTX) as *mut c_void,
    commands: ptr::addr_of_mut!(COMMANDS) as *mut ngx_command_t,
    type_: NGX_HTTP_MODULE as ngx_uint_t,
    ..ngx_module_t::default()
};

ngx::ngx_modules!(ngx_http_websockify_module);
