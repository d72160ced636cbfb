//! `websockify_record`, `websockify_record_input`, `websockify_record_required`: a session
//! recorded to a file for audit (the format: protocol/recording.rs).

use core::ffi::{c_char, c_void};

use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{ngx_command_t, ngx_conf_t, ngx_flag_t, ngx_http_complex_value_t};

use super::args::{directive, duplicate, merge};
use super::compile;

const UNSET: ngx_flag_t = -1;

pub struct RecordConf {
    /// None: unset at this level; Some(None): `off`; else the file's path (variables
    /// allowed).
    pub path: Option<Option<ngx_http_complex_value_t>>,
    /// `websockify_record_input`: the client's bytes too.
    pub input: ngx_flag_t,
    /// `websockify_record_required`: no session without its recording.
    pub required: ngx_flag_t,
}

impl Default for RecordConf {
    fn default() -> Self {
        RecordConf {
            path: None,
            input: UNSET,
            required: UNSET,
        }
    }
}

impl RecordConf {
    pub fn merge(&mut self, prev: &RecordConf) {
        if self.path.is_none() {
            self.path = Some(prev.path.flatten());
        }
        merge(&mut self.input, prev.input, UNSET, 0);
        merge(&mut self.required, prev.required, UNSET, 0);
    }

    /// The path to evaluate, when this location records.
    pub fn path(&self) -> Option<&ngx_http_complex_value_t> {
        self.path.as_ref().and_then(Option::as_ref)
    }
}

/// `websockify_record path | off;`
///
/// # Safety
/// nginx calls it with the directive's `cf` and `cmd` and this module's location
/// configuration as `conf`.
pub unsafe extern "C" fn set_record(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: see # Safety.
    let (rec, (name, mut value)) = unsafe {
        (
            &mut (*(conf as *mut super::LocConf)).record,
            directive(cf, cmd),
        )
    };
    if rec.path.is_some() {
        // SAFETY: cf is the live configuration.
        return unsafe { duplicate(cf, name) };
    }
    if value.as_bytes() == b"off" {
        rec.path = Some(None);
        return NGX_CONF_OK;
    }
    // SAFETY: cf is the live configuration; value its argument.
    match unsafe { compile(cf, &mut value) } {
        Some(cv) => {
            rec.path = Some(Some(cv));
            NGX_CONF_OK
        }
        None => NGX_CONF_ERROR,
    }
}
