//! The RFB security proxy's directives: `websockify_rfb_password`, `_username`,
//! `_security` and `_view_only`. With any of them the gateway logs in to the VNC server
//! itself and offers the browser security type None.

use core::ffi::{c_char, c_void};

use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    ngx_command_t, ngx_conf_t, ngx_http_complex_value_t, ngx_http_get_variable_index,
    ngx_http_script_variables_count, ngx_str_t, NGX_ERROR, NGX_LOG_EMERG,
};
use ngx::ngx_conf_log_error;

use super::args::{arguments, directive, duplicate, show};
use super::compile;
use crate::protocol::rfb::Security;

/// `websockify_rfb_view_only`.
#[derive(Clone)]
pub enum ViewOnly {
    Off,
    On,
    /// Evaluated per request: "on" or "1" is view-only, anything else is not.
    Var(ngx_http_complex_value_t),
}

/// A credential as configured.
#[derive(Clone)]
pub enum Credential {
    /// A value with variables around text, or text alone.
    Value(ngx_http_complex_value_t),
    /// One variable, read by its index: nginx's script engine would write its value to
    /// the debug log.
    Var(usize),
}

#[derive(Clone, Default)]
pub struct RfbConf {
    /// None: unset at this level.
    pub password: Option<Credential>,
    pub username: Option<Credential>,
    pub security: Option<Vec<Security>>,
    pub view_only: Option<ViewOnly>,
}

impl RfbConf {
    /// The gateway speaks RFB for this location.
    pub fn enabled(&self) -> bool {
        self.password.is_some() || matches!(self.view_only, Some(ViewOnly::On | ViewOnly::Var(_)))
    }

    /// The types allowed with the server, most preferred first.
    pub fn policy(&self) -> &[Security] {
        self.security.as_deref().unwrap_or(&Security::DEFAULT)
    }

    /// Whether a VeNCrypt type that starts TLS may be used: the location then needs a
    /// client TLS context even without `websockify_ssl on`.
    pub fn may_start_tls(&self) -> bool {
        self.enabled() && self.policy().iter().any(|s| s.tls().is_some())
    }

    /// ngx_conf_merge_*: every setting not given here is the parent's.
    pub fn merge(&mut self, prev: &RfbConf) {
        if self.password.is_none() {
            self.password.clone_from(&prev.password);
        }
        if self.username.is_none() {
            self.username.clone_from(&prev.username);
        }
        if self.security.is_none() {
            self.security.clone_from(&prev.security);
        }
        if self.view_only.is_none() {
            self.view_only.clone_from(&prev.view_only);
        }
    }
}

/// The location's RFB configuration, from a setter's `conf`.
///
/// # Safety
/// `conf` is this module's location configuration.
unsafe fn rfb<'a>(conf: *mut c_void) -> &'a mut RfbConf {
    // SAFETY: see # Safety.
    unsafe { &mut (*(conf as *mut super::LocConf)).rfb }
}

/// `websockify_rfb_password VALUE;` and `websockify_rfb_username VALUE;` (variables
/// allowed): which one, by the directive's name.
///
/// # Safety
/// nginx calls it with the directive's `cf` and `cmd` and this module's location
/// configuration as `conf`.
pub unsafe extern "C" fn set_credential(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: see # Safety.
    let (rfb, (name, mut value)) = unsafe { (rfb(conf), directive(cf, cmd)) };
    let slot = if name.ends_with("password") {
        &mut rfb.password
    } else {
        &mut rfb.username
    };
    if slot.is_some() {
        // SAFETY: cf is the live configuration.
        return unsafe { duplicate(cf, name) };
    }
    let credential = match variable_name(value.as_bytes()) {
        Some(mut name) => {
            // SAFETY: cf is the live configuration; nginx copies the name.
            let index = unsafe { ngx_http_get_variable_index(cf, &mut name) };
            if index == NGX_ERROR as isize {
                return NGX_CONF_ERROR;
            }
            Credential::Var(index as usize)
        }
        // SAFETY: cf is the live configuration; value its argument.
        None => match unsafe { compile(cf, &mut value) } {
            Some(cv) => Credential::Value(cv),
            None => return NGX_CONF_ERROR,
        },
    };
    *slot = Some(credential);
    NGX_CONF_OK
}

/// `$name` or `${name}` alone: the variable's name.
fn variable_name(value: &[u8]) -> Option<ngx_str_t> {
    let name = value.strip_prefix(b"$")?;
    let name = match name.strip_prefix(b"{") {
        Some(braced) => braced.strip_suffix(b"}")?,
        None => name,
    };
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    (!name.is_empty() && name.iter().all(word)).then(|| ngx_str_t {
        len: name.len(),
        data: name.as_ptr().cast_mut(),
    })
}

/// `websockify_rfb_security TYPE ...;`
///
/// # Safety
/// As for `set_credential`.
pub unsafe extern "C" fn set_security(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: see # Safety.
    let (rfb, (name, args)) = unsafe { (rfb(conf), arguments(cf, cmd)) };
    if rfb.security.is_some() {
        // SAFETY: cf is the live configuration.
        return unsafe { duplicate(cf, name) };
    }
    let mut list = Vec::with_capacity(args.len());
    for arg in args {
        match Security::parse(arg.as_bytes()) {
            Some(s) if !list.contains(&s) => list.push(s),
            Some(_) => {
                ngx_conf_log_error!(
                    NGX_LOG_EMERG,
                    cf,
                    "security type \"{}\" is listed twice in \"{name}\" directive",
                    show(arg)
                );
                return NGX_CONF_ERROR;
            }
            None => {
                let known: Vec<_> = Security::ALL.iter().map(|s| s.name()).collect();
                ngx_conf_log_error!(
                    NGX_LOG_EMERG,
                    cf,
                    "invalid value \"{}\" in \"{name}\" directive, it must be one of: {}",
                    show(arg),
                    known.join(" ")
                );
                return NGX_CONF_ERROR;
            }
        }
    }
    rfb.security = Some(list);
    NGX_CONF_OK
}

/// `websockify_rfb_view_only on | off | $variable;`
///
/// # Safety
/// As for `set_credential`.
pub unsafe extern "C" fn set_view_only(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: see # Safety.
    let (rfb, (name, mut value)) = unsafe { (rfb(conf), directive(cf, cmd)) };
    if rfb.view_only.is_some() {
        // SAFETY: cf is the live configuration.
        return unsafe { duplicate(cf, name) };
    }
    let word = value.as_bytes().to_vec();
    let view_only = match word.as_slice() {
        b"on" => ViewOnly::On,
        b"off" => ViewOnly::Off,
        // SAFETY: value is the directive's argument, a string in the cycle's pool.
        _ if unsafe { ngx_http_script_variables_count(&mut value) } > 0 => {
            // SAFETY: cf is the live configuration.
            match unsafe { compile(cf, &mut value) } {
                Some(cv) => ViewOnly::Var(cv),
                None => return NGX_CONF_ERROR,
            }
        }
        _ => {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "invalid value \"{}\" in \"{name}\" directive, it must be \"on\", \"off\" or a variable",
                show(&value)
            );
            return NGX_CONF_ERROR;
        }
    };
    rfb.view_only = Some(view_only);
    NGX_CONF_OK
}
