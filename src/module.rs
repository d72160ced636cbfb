//! Registration: the module's identity, its context and its configuration types.

use core::ffi::{c_char, c_void};
use core::ptr;

use ngx::core::{Status, NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    ngx_command_t, ngx_conf_t, ngx_http_module_t, ngx_int_t, ngx_module_t, ngx_uint_t,
    NGX_HTTP_MODULE,
};
use ngx::http::{HttpModule, HttpModuleLocationConf, HttpModuleMainConf};

use crate::{conf, directives, request, zone};

/// The module's identity: its configuration types and context callbacks.
pub struct Websockify;

static CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: Some(Websockify::preconfiguration),
    postconfiguration: None,
    create_main_conf: Some(Websockify::create_main_conf),
    init_main_conf: None,
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: Some(Websockify::create_loc_conf),
    merge_loc_conf: Some(merge_loc_conf),
};

#[used]
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_http_websockify_module: ngx_module_t = ngx_module_t {
    ctx: ptr::addr_of!(CTX) as *mut c_void,
    commands: ptr::addr_of_mut!(directives::COMMANDS) as *mut ngx_command_t,
    type_: NGX_HTTP_MODULE as ngx_uint_t,
    ..ngx_module_t::default()
};

ngx::ngx_modules!(ngx_http_websockify_module);

impl HttpModule for Websockify {
    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes the module's indexes once, while loading configuration.
        unsafe { &*ptr::addr_of!(ngx_http_websockify_module) }
    }

    unsafe extern "C" fn preconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        // SAFETY: nginx passes the http block being parsed.
        match unsafe { request::variables::add(cf) } {
            Ok(()) => Status::NGX_OK.into(),
            Err(_) => Status::NGX_ERROR.into(),
        }
    }
}

// SAFETY: MainConf is what create_main_conf makes for this module.
unsafe impl HttpModuleMainConf for Websockify {
    type MainConf = zone::MainConf;
}

// SAFETY: LocConf is what create_loc_conf makes for this module.
unsafe impl HttpModuleLocationConf for Websockify {
    type LocationConf = conf::LocConf;
}

/// Not HttpModule's merge_loc_conf: the crate's `Merge` trait gets no ngx_conf_t, and
/// merging needs it (TLS contexts, warnings with file and line, the content handler).
///
/// # Safety
/// nginx calls it with the configuration being merged and two of this module's location
/// configurations, the parent's and this level's.
unsafe extern "C" fn merge_loc_conf(
    cf: *mut ngx_conf_t,
    prev: *mut c_void,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes the configuration being merged and two of this module's
    // location configurations.
    let (cf, prev, conf) = unsafe { (&mut *cf, &mut *prev.cast(), &mut *conf.cast()) };
    match conf::merge_loc_conf(cf, prev, conf) {
        Ok(()) => {
            directives::inherit_handler(cf, conf);
            NGX_CONF_OK
        }
        Err(conf::Invalid) => NGX_CONF_ERROR,
    }
}
