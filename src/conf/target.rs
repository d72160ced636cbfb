//! Directives for the connection to the target, named, parsed and merged like their
//! nginx counterparts: TLS (`websockify_ssl*`, the stream proxy's `proxy_ssl*`), the PROXY
//! protocol header (`websockify_proxy_protocol`, the stream proxy's `proxy_protocol`) and
//! the source address (`websockify_bind`, `proxy_bind`, parsed by nginx's own slot).

use core::ffi::{c_char, c_void};
use core::{mem, ptr};

use ngx::core::{Status, NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    ngx_command_t, ngx_conf_t, ngx_flag_t, ngx_http_complex_value_t, ngx_http_upstream_local_t,
    ngx_pcalloc, ngx_pool_cleanup_add, ngx_ssl_certificate, ngx_ssl_ciphers, ngx_ssl_cleanup_ctx,
    ngx_ssl_client_session_cache, ngx_ssl_create, ngx_ssl_t, ngx_ssl_trusted_certificate,
    ngx_str_t, ngx_uint_t, NGX_SSL_SSLv2, NGX_SSL_SSLv3, NGX_SSL_TLSv1, NGX_SSL_TLSv1_1,
    NGX_SSL_TLSv1_2, NGX_SSL_TLSv1_3, RAND_bytes, SSL_CTX_set_session_id_context,
    NGX_CONF_BITMASK_SET, NGX_LOG_EMERG,
};
use ngx::{ngx_conf_log_error, ngx_log_error};

use super::args::{arguments, duplicate, merge as merge_value, show};

const UNSET: ngx_flag_t = -1;
const UNSET_UINT: ngx_uint_t = ngx_uint_t::MAX;
const UNSET_PTR: *mut c_void = usize::MAX as *mut c_void;

/// nginx 1.23.4's default (`NGX_SSL_DEFAULT_PROTOCOLS`), for 1.22 too.
const DEFAULT_PROTOCOLS: ngx_uint_t =
    (NGX_CONF_BITMASK_SET | NGX_SSL_TLSv1_2 | NGX_SSL_TLSv1_3) as ngx_uint_t;
const PROTOCOLS: [(&str, u32); 6] = [
    ("SSLv2", NGX_SSL_SSLv2),
    ("SSLv3", NGX_SSL_SSLv3),
    ("TLSv1", NGX_SSL_TLSv1),
    ("TLSv1.1", NGX_SSL_TLSv1_1),
    ("TLSv1.2", NGX_SSL_TLSv1_2),
    ("TLSv1.3", NGX_SSL_TLSv1_3),
];

/// `websockify_proxy_protocol`: which header goes first to the target.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocol {
    Off,
    V1,
    V2,
}

/// A client TLS context and the id (the `sid_ctx`) that every session made under it
/// carries: the peer that keeps a saved session is shared by every location naming the
/// same target, so a session verified under one context must not be resumed under another
/// (target_setup::drop_foreign_session). Random: sessions in an upstream zone outlive a reload,
/// and an address could come back for another context.
#[repr(C)]
pub struct TargetSsl {
    pub ssl: ngx_ssl_t,
    pub session_context: [u8; 16],
}

/// How the module talks to its target, as `ngx_http_upstream_conf_t` holds it for
/// proxy_pass. Raw nginx types: nginx's own slots fill most fields.
pub struct UpstreamConf {
    pub ssl_enable: ngx_flag_t,
    /// Shared by levels whose TLS settings are all inherited (ngx_stream_proxy_merge_ssl).
    pub ssl: *mut TargetSsl,
    pub ssl_protocols: ngx_uint_t,
    pub ssl_ciphers: ngx_str_t,
    pub ssl_name: *mut ngx_http_complex_value_t,
    pub ssl_server_name: ngx_flag_t,
    pub ssl_verify: ngx_flag_t,
    pub ssl_verify_depth: ngx_uint_t,
    pub ssl_trusted_certificate: ngx_str_t,
    pub ssl_certificate: *mut ngx_http_complex_value_t,
    pub ssl_certificate_key: *mut ngx_http_complex_value_t,
    pub ssl_session_reuse: ngx_flag_t,
    pub proxy_protocol: Option<ProxyProtocol>,
    pub local: *mut ngx_http_upstream_local_t,
}

impl UpstreamConf {
    pub fn unset() -> UpstreamConf {
        UpstreamConf {
            ssl_enable: UNSET,
            ssl: ptr::null_mut(),
            ssl_protocols: 0,
            ssl_ciphers: ngx_str_t::default(),
            ssl_name: UNSET_PTR.cast(),
            ssl_server_name: UNSET,
            ssl_verify: UNSET,
            ssl_verify_depth: UNSET_UINT,
            ssl_trusted_certificate: ngx_str_t::default(),
            ssl_certificate: UNSET_PTR.cast(),
            ssl_certificate_key: UNSET_PTR.cast(),
            ssl_session_reuse: UNSET,
            proxy_protocol: None,
            local: UNSET_PTR.cast(),
        }
    }

    /// No TLS setting at this level: it can share its parent's TLS context.
    fn ssl_unset(&self) -> bool {
        self.ssl_protocols == 0
            && self.ssl_ciphers.data.is_null()
            && self.ssl_certificate == UNSET_PTR.cast()
            && self.ssl_certificate_key == UNSET_PTR.cast()
            && self.ssl_verify == UNSET
            && self.ssl_verify_depth == UNSET_UINT
            && self.ssl_trusted_certificate.data.is_null()
            && self.ssl_session_reuse == UNSET
    }
}

/// ngx_stream_proxy_merge_srv_conf's TLS part, `proxy_protocol` and `proxy_bind`.
/// `prev` may receive this level's TLS context (see `merge_ssl`). `rfb_tls`: a VeNCrypt
/// type may start TLS inside RFB, so the context is made without `websockify_ssl on`.
///
/// # Safety
/// `cf` is the configuration being merged.
pub unsafe fn merge(
    cf: *mut ngx_conf_t,
    conf: &mut UpstreamConf,
    prev: &mut UpstreamConf,
    rfb_tls: bool,
) -> bool {
    // SAFETY: see # Safety.
    if !unsafe { merge_ssl(cf, conf, prev) } {
        return false;
    }
    merge_value(&mut conf.ssl_enable, prev.ssl_enable, UNSET, 0);
    merge_value(
        &mut conf.ssl_session_reuse,
        prev.ssl_session_reuse,
        UNSET,
        1,
    );
    merge_value(
        &mut conf.ssl_protocols,
        prev.ssl_protocols,
        0,
        DEFAULT_PROTOCOLS,
    );
    merge_str(&mut conf.ssl_ciphers, prev.ssl_ciphers, c"DEFAULT");
    merge_ptr(&mut conf.ssl_name, prev.ssl_name);
    merge_value(&mut conf.ssl_server_name, prev.ssl_server_name, UNSET, 0);
    merge_value(&mut conf.ssl_verify, prev.ssl_verify, UNSET, 0);
    merge_value(
        &mut conf.ssl_verify_depth,
        prev.ssl_verify_depth,
        UNSET_UINT,
        1,
    );
    merge_str(
        &mut conf.ssl_trusted_certificate,
        prev.ssl_trusted_certificate,
        c"",
    );
    merge_ptr(&mut conf.ssl_certificate, prev.ssl_certificate);
    merge_ptr(&mut conf.ssl_certificate_key, prev.ssl_certificate_key);
    if conf.proxy_protocol.is_none() {
        conf.proxy_protocol = Some(prev.proxy_protocol.unwrap_or(ProxyProtocol::Off));
    }
    merge_ptr(&mut conf.local, prev.local);
    // SAFETY: see # Safety; merge_ssl has set conf.ssl.
    (conf.ssl_enable == 0 && !rfb_tls) || unsafe { set_ssl(cf, conf) }
}

/// ngx_stream_proxy_merge_ssl: a level without TLS settings of its own uses its parent's
/// context; the first such level below `http` leaves its (still empty) context there, so
/// that every server inherits the one that gets created.
///
/// # Safety
/// `cf` is the configuration being merged.
unsafe fn merge_ssl(cf: *mut ngx_conf_t, conf: &mut UpstreamConf, prev: &mut UpstreamConf) -> bool {
    let preserve = conf.ssl_unset();
    if preserve && !prev.ssl.is_null() {
        conf.ssl = prev.ssl;
        return true;
    }
    // SAFETY: cf is the live configuration.
    let (pool, log) = unsafe { ((*cf).pool, (*cf).log) };
    // SAFETY: a zeroed TargetSsl (nginx's own starts so) in the cycle's pool.
    conf.ssl = unsafe { ngx_pcalloc(pool, mem::size_of::<TargetSsl>()) }.cast();
    // SAFETY: null or the allocation just made.
    let Some(target_ssl) = (unsafe { conf.ssl.as_mut() }) else {
        return false;
    };
    target_ssl.ssl.log = log;
    if preserve {
        prev.ssl = conf.ssl;
    }
    true
}

/// ngx_stream_proxy_set_ssl: the client context, made once per distinct configuration.
///
/// # Safety
/// `cf` is the configuration being merged and `conf.ssl` was set by `merge_ssl`.
unsafe fn set_ssl(cf: *mut ngx_conf_t, conf: &mut UpstreamConf) -> bool {
    // SAFETY: see # Safety.
    let (target_ssl, log) = unsafe { (&mut *conf.ssl, (*cf).log) };
    let ssl: *mut ngx_ssl_t = &mut target_ssl.ssl;
    // SAFETY: ssl points into target_ssl, alive for the cycle.
    if !unsafe { (*ssl).ctx.is_null() } {
        return true;
    }
    // SAFETY: ssl is an unset context of the cycle's pool; nginx fills it.
    if unsafe { ngx_ssl_create(ssl, conf.ssl_protocols, ptr::null_mut()) } != Status::NGX_OK.0 {
        return false;
    }
    // SAFETY: cf is the live configuration.
    let cln = unsafe { ngx_pool_cleanup_add((*cf).pool, 0) };
    if cln.is_null() {
        // SAFETY: the context ngx_ssl_create just made.
        unsafe { ngx_ssl_cleanup_ctx(ssl.cast()) };
        return false;
    }
    // SAFETY: a fresh cleanup entry of the cycle's pool.
    unsafe {
        (*cln).handler = Some(ngx_ssl_cleanup_ctx);
        (*cln).data = ssl.cast();
    }
    // SAFETY: cf is live, ssl the context above, the ciphers a string of this level.
    if unsafe { ngx_ssl_ciphers(cf, ssl, &mut conf.ssl_ciphers, 0) } != Status::NGX_OK.0 {
        return false;
    }
    // SAFETY: after merging, the certificate pointers are null or values compiled by
    // nginx's complex value slot in the cycle's pool.
    let (cert, key) = unsafe {
        (
            conf.ssl_certificate.as_mut(),
            conf.ssl_certificate_key.as_mut(),
        )
    };
    if let Some(cert) = cert.filter(|c| c.value.len > 0) {
        let Some(key) = key else {
            let shown = String::from_utf8_lossy(cert.value.as_bytes());
            ngx_log_error!(
                NGX_LOG_EMERG,
                log,
                "no \"websockify_ssl_certificate_key\" is defined for certificate \"{shown}\""
            );
            return false;
        };
        // With variables, each connection loads its own (target_tls::certificate).
        if cert.lengths.is_null()
            && key.lengths.is_null()
            // SAFETY: cf is live, ssl the context above, cert and key its file names.
            && unsafe {
                ngx_ssl_certificate(cf, ssl, &mut cert.value, &mut key.value, ptr::null_mut())
            } != Status::NGX_OK.0
        {
            return false;
        }
    }
    if conf.ssl_verify != 0 {
        if conf.ssl_trusted_certificate.len == 0 {
            ngx_log_error!(
                NGX_LOG_EMERG,
                log,
                "no websockify_ssl_trusted_certificate for websockify_ssl_verify"
            );
            return false;
        }
        // SAFETY: cf is live, ssl the context above, the file name a string of this level.
        let rc = unsafe {
            ngx_ssl_trusted_certificate(
                cf,
                ssl,
                &mut conf.ssl_trusted_certificate,
                conf.ssl_verify_depth as isize,
            )
        };
        if rc != Status::NGX_OK.0 {
            return false;
        }
    }
    let id = &mut target_ssl.session_context;
    // SAFETY: id is a 16-byte buffer; (*ssl).ctx the context ngx_ssl_create made.
    if unsafe {
        RAND_bytes(id.as_mut_ptr(), id.len() as _) != 1
            || SSL_CTX_set_session_id_context((*ssl).ctx, id.as_ptr(), id.len() as _) != 1
    } {
        ngx_log_error!(
            NGX_LOG_EMERG,
            log,
            "websockify: cannot set the TLS session id context for the target"
        );
        return false;
    }
    // SAFETY: cf is live, ssl the context above.
    let rc = unsafe { ngx_ssl_client_session_cache(cf, ssl, conf.ssl_session_reuse as ngx_uint_t) };
    rc == Status::NGX_OK.0
}

/// ngx_conf_merge_str_value: unset strings have a NULL data pointer.
fn merge_str(cur: &mut ngx_str_t, prev: ngx_str_t, default: &'static core::ffi::CStr) {
    if cur.data.is_null() {
        *cur = if prev.data.is_null() {
            literal(default)
        } else {
            prev
        };
    }
}

/// ngx_conf_merge_ptr_value with a NULL default.
fn merge_ptr<T>(cur: &mut *mut T, prev: *mut T) {
    if *cur == UNSET_PTR.cast() {
        *cur = if prev == UNSET_PTR.cast() {
            ptr::null_mut()
        } else {
            prev
        };
    }
}

fn literal(s: &'static core::ffi::CStr) -> ngx_str_t {
    ngx_str_t {
        len: s.count_bytes(),
        data: s.as_ptr() as *mut u8,
    }
}

/// `websockify_ssl_protocols NAME ...;` as ngx_conf_set_bitmask_slot parses it.
///
/// # Safety
/// nginx calls it with the directive's `cf` and `cmd` and this module's location
/// configuration as `conf`; `cmd->offset` names its `upstream`.
pub unsafe extern "C" fn set_protocols(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: see # Safety.
    let (conf, (_, args)) = unsafe {
        (
            &mut *(conf.byte_add((*cmd).offset) as *mut UpstreamConf),
            arguments(cf, cmd),
        )
    };
    let mask = &mut conf.ssl_protocols;
    if *mask == 0 {
        *mask = NGX_CONF_BITMASK_SET as ngx_uint_t;
    }
    for arg in args {
        match PROTOCOLS
            .iter()
            .find(|(name, _)| name.as_bytes() == arg.as_bytes())
        {
            Some(&(_, bit)) => *mask |= bit as ngx_uint_t,
            None => {
                ngx_conf_log_error!(NGX_LOG_EMERG, cf, "invalid value \"{}\"", show(arg));
                return NGX_CONF_ERROR;
            }
        }
    }
    NGX_CONF_OK
}

/// `websockify_proxy_protocol on | off | v2;`
///
/// # Safety
/// nginx calls it with the directive's `cf` and `cmd` and this module's location
/// configuration as `conf`; `cmd->offset` names its `upstream`.
pub unsafe extern "C" fn set_proxy_protocol(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: see # Safety.
    let (conf, (name, args)) = unsafe {
        (
            &mut *(conf.byte_add((*cmd).offset) as *mut UpstreamConf),
            arguments(cf, cmd),
        )
    };
    let value = args.first().copied().unwrap_or_default();
    if conf.proxy_protocol.is_some() {
        // SAFETY: cf is the live configuration.
        return unsafe { duplicate(cf, name) };
    }
    conf.proxy_protocol = Some(match value.as_bytes() {
        b"on" => ProxyProtocol::V1,
        b"v2" => ProxyProtocol::V2,
        b"off" => ProxyProtocol::Off,
        _ => {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "invalid value \"{}\" in \"{name}\" directive, it must be \"on\", \"off\" or \"v2\"",
                show(&value)
            );
            return NGX_CONF_ERROR;
        }
    });
    NGX_CONF_OK
}
