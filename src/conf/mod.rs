//! Directive parsing and merging: `websockify_pass`, `websockify_allow`,
//! `websockify_allow_origin`, `websockify_buffer_size`, the three timeouts and
//! `websockify_ping_interval`; nameless locations (`if`, `limit_except`) inherit the
//! target, and legal but useless combinations draw an `nginx -t` warning. The target
//! connection's directives (TLS, PROXY protocol, bind) are in `target`, the argument
//! helpers in `args`.

pub mod args;
pub mod record;
pub mod rfb;
pub mod target;

use core::ffi::{c_char, c_void};
use core::{mem, ptr};

use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    ngx_command_t, ngx_conf_t, ngx_http_compile_complex_value, ngx_http_compile_complex_value_t,
    ngx_http_complex_value_t, ngx_http_core_loc_conf_t, ngx_http_location_queue_t,
    ngx_http_script_variables_count, ngx_http_upstream_add, ngx_http_upstream_srv_conf_t,
    ngx_msec_t, ngx_parse_size, ngx_parse_time, ngx_parse_url, ngx_pcalloc, ngx_shm_zone_t,
    ngx_str_t, ngx_url_t, NGX_LOG_EMERG, NGX_LOG_WARN,
};
use ngx::{ngx_conf_log_error, ngx_log_error};

use crate::protocol::allow::{Origin, Rule};
use ngx::http::{HttpModule, HttpModuleLocationConf, NgxHttpCoreModule};

use self::target::UpstreamConf;
use crate::Websockify;
use args::{arguments, cstr, directive, duplicate, merge, show};

pub const DEFAULT_PORT: u16 = 5900;
/// 65535 + 4 + 4, the original module's default: one maximal 16-bit frame and headers.
const DEFAULT_BUFFER: usize = 65543;
const DEFAULT_TIMEOUT: ngx_msec_t = 60_000;
/// Half the idle timeout: a browser's pongs keep a quiet console alive, a vanished client
/// still ends after `websockify_read_timeout`.
const DEFAULT_PING: ngx_msec_t = 30_000;
const MIN_BUFFER: usize = 256;
const MAX_BUFFER: usize = 16 * 1024 * 1024;

const UNSET_SIZE: usize = usize::MAX;
const UNSET_MSEC: ngx_msec_t = ngx_msec_t::MAX;

/// Where a location relays to.
pub enum Target {
    /// An address, a host name or an `upstream {}` group, written in the configuration:
    /// an upstream (implicit for addresses), so nginx's balancers pick the peer.
    Static(*mut ngx_http_upstream_srv_conf_t),
    /// Has variables: evaluated for each request, then checked against `allow`.
    Dynamic(ngx_http_complex_value_t),
}

/// Where a directive was written: warnings found while merging point there.
struct Pos {
    file: String,
    line: usize,
}

impl Pos {
    /// # Safety
    /// `cf` is the configuration being parsed.
    unsafe fn here(cf: *mut ngx_conf_t) -> Option<Pos> {
        // SAFETY: while parsing, cf->conf_file is null or the file being read.
        let file = unsafe { (*cf).conf_file.as_ref() }?;
        Some(Pos {
            file: String::from_utf8_lossy(file.file.name.as_bytes()).into_owned(),
            line: file.line,
        })
    }
}

pub struct LocConf {
    pub target: *const Target,
    /// The location's own `websockify_pass`.
    pass_at: Option<Pos>,
    /// Targets a request may choose through variables; none allowed when empty.
    pub allow: Vec<Rule>,
    /// The first `websockify_allow` of this level.
    allow_at: Option<Pos>,
    /// Browser origins that may open a session; any when empty.
    pub origins: Vec<Origin>,
    pub buffer_size: usize,
    pub connect_timeout: ngx_msec_t,
    pub read_timeout: ngx_msec_t,
    pub send_timeout: ngx_msec_t,
    /// Heartbeat pings to the client; 0 = off.
    pub ping_interval: ngx_msec_t,
    /// TLS, PROXY protocol and source address for the target.
    pub upstream: UpstreamConf,
    /// `websockify_session_timeout`; None: unset (off).
    pub session_timeout: Option<Lifetime>,
    /// `websockify_status zone=NAME`: this location serves that zone's status.
    pub status_zone: *mut ngx_shm_zone_t,
    /// The RFB security proxy (`websockify_rfb_*`).
    pub rfb: rfb::RfbConf,
    /// `websockify_record*`.
    pub record: record::RecordConf,
}

/// How long a session may live after its 101.
#[derive(Clone)]
pub enum Lifetime {
    Off,
    Fixed(ngx_msec_t),
    /// Evaluated when the session starts: a time, or `off`.
    Var(ngx_http_complex_value_t),
}

impl Default for LocConf {
    fn default() -> Self {
        LocConf {
            target: ptr::null(),
            pass_at: None,
            allow: Vec::new(),
            allow_at: None,
            origins: Vec::new(),
            buffer_size: UNSET_SIZE,
            connect_timeout: UNSET_MSEC,
            read_timeout: UNSET_MSEC,
            send_timeout: UNSET_MSEC,
            ping_interval: UNSET_MSEC,
            session_timeout: None,
            status_zone: ptr::null_mut(),
            upstream: UpstreamConf::unset(),
            rfb: rfb::RfbConf::default(),
            record: record::RecordConf::default(),
        }
    }
}

/// A configuration error, already logged with the directive's file and line.
pub struct Invalid;

impl LocConf {
    /// The content handler a location needs, if any.
    pub fn content(&self) -> Option<Content> {
        if !self.target.is_null() {
            Some(Content::Session)
        } else if !self.status_zone.is_null() {
            Some(Content::Status)
        } else {
            None
        }
    }
}

/// What a location serves.
pub enum Content {
    Session,
    Status,
}

/// Merges a location's configuration with its parent's.
pub fn merge_loc_conf(
    cf: &mut ngx_conf_t,
    prev: &mut LocConf,
    conf: &mut LocConf,
) -> Result<(), Invalid> {
    let Some(clcf) = NgxHttpCoreModule::location_conf(cf) else {
        return Err(Invalid);
    };
    let own_allow = !conf.allow.is_empty();
    // Like proxy_pass, the target is not inherited: it belongs to its location. But an
    // `if` or `limit_except` block inside it is a nameless location of its own that keeps
    // serving the same requests: it carries the target (ngx_http_proxy_merge_loc_conf).
    if clcf.noname() != 0 && conf.target.is_null() {
        conf.target = prev.target;
    }
    // The same for a status location.
    if clcf.noname() != 0 && conf.status_zone.is_null() {
        conf.status_zone = prev.status_zone;
    }
    // Lists are inherited whole unless the level has its own, like allow/deny.
    if !own_allow {
        conf.allow.clone_from(&prev.allow);
    }
    if conf.origins.is_empty() {
        conf.origins.clone_from(&prev.origins);
    }
    merge(
        &mut conf.buffer_size,
        prev.buffer_size,
        UNSET_SIZE,
        DEFAULT_BUFFER,
    );
    for (cur, prev) in [
        (&mut conf.connect_timeout, prev.connect_timeout),
        (&mut conf.read_timeout, prev.read_timeout),
        (&mut conf.send_timeout, prev.send_timeout),
    ] {
        merge(cur, prev, UNSET_MSEC, DEFAULT_TIMEOUT);
    }
    merge(
        &mut conf.ping_interval,
        prev.ping_interval,
        UNSET_MSEC,
        DEFAULT_PING,
    );
    conf.rfb.merge(&prev.rfb);
    conf.record.merge(&prev.record);
    // SAFETY: cf is the live configuration nginx is merging.
    let rfb_tls = conf.rfb.may_start_tls();
    if !unsafe { target::merge(cf, &mut conf.upstream, &mut prev.upstream, rfb_tls) } {
        return Err(Invalid);
    }
    if conf.session_timeout.is_none() {
        conf.session_timeout.clone_from(&prev.session_timeout);
    }
    // A nameless location repeats its parent's configuration: warned about there.
    if clcf.noname() == 0 {
        warn_useless(cf, clcf, conf, own_allow);
    }
    Ok(())
}

/// This module's configuration of a location not merged yet. The crate's accessors take a
/// request or a configuration context, not a core location's own array.
fn own_conf(clcf: &ngx_http_core_loc_conf_t) -> Option<&LocConf> {
    // SAFETY: loc_conf holds one configuration per HTTP module, ours at our ctx_index.
    unsafe { (*clcf.loc_conf.add(Websockify::module().ctx_index) as *const LocConf).as_ref() }
}

/// Warnings for a location with a target whose merged configuration is legal but cannot
/// do what it says. Only where it is certain: rules at http or server level may serve
/// some other location.
fn warn_useless(cf: &ngx_conf_t, clcf: &ngx_http_core_loc_conf_t, conf: &LocConf, own_allow: bool) {
    // SAFETY: a set target points to the Target that set_pass wrote in the cycle's pool.
    let Some(target) = (unsafe { conf.target.as_ref() }) else {
        return;
    };
    if conf.ping_interval != 0 && conf.ping_interval >= conf.read_timeout {
        warn(
            cf,
            conf.pass_at.as_ref(),
            format_args!(
                "websockify_ping_interval {} is not below websockify_read_timeout {}: \
                 an idle session ends before its first heartbeat ping",
                show_msec(conf.ping_interval),
                show_msec(conf.read_timeout)
            ),
        );
    }
    match target {
        Target::Static(_) if own_allow && !allow_used_below(clcf) => warn(
            cf,
            conf.allow_at.as_ref(),
            format_args!(
                "websockify_allow is never used here: websockify_pass has no variables, \
                 its target is trusted"
            ),
        ),
        Target::Dynamic(_) if conf.allow.is_empty() => warn(
            cf,
            conf.pass_at.as_ref(),
            format_args!(
                "websockify_pass has variables but no websockify_allow rule applies: \
                 every request will be refused"
            ),
        ),
        _ => {}
    }
}

/// Whether a location nested below uses this level's `websockify_allow` rules: a variable
/// target that inherits them, at any depth, without rules of its own in between.
fn allow_used_below(clcf: &ngx_http_core_loc_conf_t) -> bool {
    // SAFETY: a location's `locations` is null or the queue of its nested locations
    // (ngx_http_add_location), each entry an ngx_http_location_queue_t.
    let Some(head) = (unsafe { clcf.locations.as_ref() }) else {
        return false;
    };
    let mut q = head.next;
    while !q.is_null() && !ptr::eq(q, head) {
        // SAFETY: as above; the entry's exact or inclusive is its location's core conf.
        let (lq, child) = unsafe {
            let lq = &*(q as *const ngx_http_location_queue_t);
            let child = if lq.exact.is_null() {
                lq.inclusive
            } else {
                lq.exact
            };
            (lq, child.as_ref())
        };
        q = lq.queue.next;
        let Some(child) = child else {
            continue;
        };
        // Not merged yet: a nested location's own directives only.
        let Some(conf) = own_conf(child) else {
            continue;
        };
        if !conf.allow.is_empty() {
            continue;
        }
        // SAFETY: a set target points to the Target that set_pass wrote in the cycle's pool.
        let target = unsafe { conf.target.as_ref() };
        if matches!(target, Some(Target::Dynamic(_))) || allow_used_below(child) {
            return true;
        }
    }
    false
}

/// A warning about a directive found while merging, in `ngx_conf_log_error`'s format.
fn warn(cf: &ngx_conf_t, at: Option<&Pos>, message: core::fmt::Arguments) {
    match at {
        Some(at) => {
            ngx_log_error!(NGX_LOG_WARN, cf.log, "{message} in {}:{}", at.file, at.line);
        }
        None => {
            // nginx only reads cf here.
            ngx_conf_log_error!(NGX_LOG_WARN, ptr::from_ref(cf).cast_mut(), "{message}");
        }
    }
}

/// A time as the configuration writes it.
fn show_msec(ms: ngx_msec_t) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A value with variables, compiled.
///
/// # Safety
/// `cf` is the configuration being parsed.
unsafe fn compile(cf: *mut ngx_conf_t, value: &mut ngx_str_t) -> Option<ngx_http_complex_value_t> {
    // SAFETY: both are plain C structs that nginx zero-fills before use.
    let (mut cv, mut ccv): (ngx_http_complex_value_t, ngx_http_compile_complex_value_t) =
        unsafe { (mem::zeroed(), mem::zeroed()) };
    ccv.cf = cf;
    ccv.value = value;
    ccv.complex_value = &mut cv;
    // SAFETY: ccv names the live cf, the value and where the result goes.
    (unsafe { ngx_http_compile_complex_value(&mut ccv) } == 0).then_some(cv)
}

/// `websockify_session_timeout off | TIME | $variable;`
///
/// # Safety
/// nginx calls it with the directive's `cf` and `cmd` and this module's location
/// configuration as `conf`.
pub unsafe extern "C" fn set_session_timeout(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: see # Safety.
    let (conf, (name, mut value)) = unsafe { (&mut *(conf as *mut LocConf), directive(cf, cmd)) };
    if conf.session_timeout.is_some() {
        // SAFETY: cf is the live configuration.
        return unsafe { duplicate(cf, name) };
    }
    // SAFETY: value is the directive's argument, a string in the cycle's pool.
    let lifetime = if value.as_bytes() == b"off" {
        Lifetime::Off
    } else if unsafe { ngx_http_script_variables_count(&mut value) } > 0 {
        // SAFETY: cf is the live configuration.
        let Some(cv) = (unsafe { compile(cf, &mut value) }) else {
            return NGX_CONF_ERROR;
        };
        Lifetime::Var(cv)
    } else {
        // SAFETY: as for ngx_http_script_variables_count.
        match ngx_msec_t::try_from(unsafe { ngx_parse_time(&mut value, 0) }) {
            Ok(ms) if ms > 0 => Lifetime::Fixed(ms),
            _ => {
                ngx_conf_log_error!(
                    NGX_LOG_EMERG,
                    cf,
                    "invalid value \"{}\" in \"{name}\" directive, it must be \"off\", a time above 0 or a variable",
                    show(&value)
                );
                return NGX_CONF_ERROR;
            }
        }
    };
    conf.session_timeout = Some(lifetime);
    NGX_CONF_OK
}

/// ngx_conf_merge_*_value: the level's own value, else the parent's, else the default.
///
/// # Safety
/// nginx calls it with the directive's `cf` and `cmd` and this module's location
/// configuration as `conf`.
pub unsafe extern "C" fn set_pass(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: see # Safety.
    let (conf, (name, mut value)) = unsafe { (&mut *(conf as *mut LocConf), directive(cf, cmd)) };
    if !conf.target.is_null() {
        // SAFETY: cf is the live configuration.
        return unsafe { duplicate(cf, name) };
    }
    // SAFETY: value is the directive's argument, a string in the cycle's pool.
    let target = if unsafe { ngx_http_script_variables_count(&mut value) } > 0 {
        // SAFETY: cf is the live configuration.
        let Some(cv) = (unsafe { compile(cf, &mut value) }) else {
            return NGX_CONF_ERROR;
        };
        Target::Dynamic(cv)
    } else {
        let url = || {
            // SAFETY: ngx_url_t is a plain C struct that nginx zero-fills before use.
            let mut u: ngx_url_t = unsafe { mem::zeroed() };
            u.url = value;
            u.default_port = DEFAULT_PORT;
            // Host names and groups are resolved by the upstream module, like proxy_pass.
            u.set_no_resolve(1);
            u
        };
        // Parsed here first so that a bad value is reported with the directive's name.
        let mut check = url();
        // SAFETY: cf is the live configuration; check is a filled ngx_url_t.
        if unsafe { ngx_parse_url((*cf).pool, &mut check) } != 0 {
            // SAFETY: err is null or one of ngx_parse_url's static texts.
            let why = unsafe { cstr(check.err) }.unwrap_or("invalid address");
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "invalid target \"{}\" in \"{name}\" directive: {why}",
                show(&value)
            );
            return NGX_CONF_ERROR;
        }
        let mut u = url();
        // SAFETY: as for ngx_parse_url.
        let uscf = unsafe { ngx_http_upstream_add(cf, &mut u, 0) };
        if uscf.is_null() {
            return NGX_CONF_ERROR;
        }
        Target::Static(uscf)
    };
    // SAFETY: cf is the live configuration; its pool lives as long as the cycle.
    let slot = unsafe { ngx_pcalloc((*cf).pool, mem::size_of::<Target>()) } as *mut Target;
    if slot.is_null() {
        return NGX_CONF_ERROR;
    }
    // SAFETY: a fresh allocation of a Target's size (pcalloc aligns to a word).
    unsafe { slot.write(target) };
    conf.target = slot;
    // SAFETY: cf is the live configuration.
    conf.pass_at = unsafe { Pos::here(cf) };
    NGX_CONF_OK
}

/// `websockify_buffer_size SIZE;`
///
/// # Safety
/// nginx calls it with the directive's `cf` and `cmd` and this module's location
/// configuration as `conf`.
pub unsafe extern "C" fn set_size(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let parse = |v: &mut ngx_str_t| {
        // SAFETY: v is the directive's argument, a string in the cycle's pool.
        usize::try_from(unsafe { ngx_parse_size(v) })
            .ok()
            .filter(|size| (MIN_BUFFER..=MAX_BUFFER).contains(size))
    };
    // SAFETY: nginx's setter arguments; cmd->offset names a usize field of LocConf.
    unsafe { set_value(cf, cmd, conf, UNSET_SIZE, "a size from 256 to 16m", parse) }
}

/// The three `websockify_*_timeout TIME;`.
///
/// # Safety
/// nginx calls it with the directive's `cf` and `cmd` and this module's location
/// configuration as `conf`.
pub unsafe extern "C" fn set_msec(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let parse = |v: &mut ngx_str_t| {
        // SAFETY: v is the directive's argument, a string in the cycle's pool.
        ngx_msec_t::try_from(unsafe { ngx_parse_time(v, 0) })
            .ok()
            .filter(|&ms| ms > 0)
    };
    // SAFETY: nginx's setter arguments; cmd->offset names an ngx_msec_t field of LocConf.
    unsafe { set_value(cf, cmd, conf, UNSET_MSEC, "a time above 0", parse) }
}

/// `websockify_ping_interval off | TIME;`
///
/// # Safety
/// nginx calls it with the directive's `cf` and `cmd` and this module's location
/// configuration as `conf`.
pub unsafe extern "C" fn set_ping(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let parse = |v: &mut ngx_str_t| {
        if v.as_bytes() == b"off" {
            return Some(0);
        }
        // SAFETY: v is the directive's argument, a string in the cycle's pool.
        ngx_msec_t::try_from(unsafe { ngx_parse_time(v, 0) })
            .ok()
            .filter(|&ms| ms > 0)
    };
    // SAFETY: nginx's setter arguments; cmd->offset names an ngx_msec_t field of LocConf.
    unsafe {
        set_value(
            cf,
            cmd,
            conf,
            UNSET_MSEC,
            "\"off\" or a time above 0",
            parse,
        )
    }
}

/// Stores the directive's parsed argument in the field at `cmd->offset`; a value that
/// does not parse is reported with the directive's name and what it must be.
///
/// # Safety
/// As for a setter, and `cmd->offset` names a field of type `T` in `conf`.
unsafe fn set_value<T: Copy + PartialEq>(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
    unset: T,
    must_be: &str,
    parse: impl FnOnce(&mut ngx_str_t) -> Option<T>,
) -> *mut c_char {
    // SAFETY: see # Safety.
    let (name, mut value) = unsafe { directive(cf, cmd) };
    // SAFETY: see # Safety.
    let field = unsafe { &mut *((conf as *mut u8).add((*cmd).offset) as *mut T) };
    if *field != unset {
        // SAFETY: cf is the live configuration.
        return unsafe { duplicate(cf, name) };
    }
    match parse(&mut value) {
        Some(v) => {
            *field = v;
            NGX_CONF_OK
        }
        None => {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "invalid value \"{}\" in \"{name}\" directive, it must be {must_be}",
                show(&value)
            );
            NGX_CONF_ERROR
        }
    }
}

/// `websockify_allow HOST [PORTS];`
///
/// # Safety
/// nginx calls it with the directive's `cf` and `cmd` and this module's location
/// configuration as `conf`.
pub unsafe extern "C" fn set_allow(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: see # Safety.
    let (conf, (name, args)) = unsafe { (&mut *(conf as *mut LocConf), arguments(cf, cmd)) };
    let host = args.first().map(show).unwrap_or_default();
    let ports = args.get(1).map(show);
    match Rule::parse(&host, ports.as_deref()) {
        Ok(rule) => {
            if conf.allow.is_empty() {
                // SAFETY: cf is the live configuration.
                conf.allow_at = unsafe { Pos::here(cf) };
            }
            conf.allow.push(rule);
            NGX_CONF_OK
        }
        Err(why) => {
            let all: Vec<_> = args.iter().map(show).collect();
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "invalid value \"{}\" in \"{name}\" directive: {why}",
                all.join(" ")
            );
            NGX_CONF_ERROR
        }
    }
}

/// `websockify_allow_origin ORIGIN ...;`
///
/// # Safety
/// nginx calls it with the directive's `cf` and `cmd` and this module's location
/// configuration as `conf`.
pub unsafe extern "C" fn set_allow_origin(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: see # Safety.
    let (conf, (name, args)) = unsafe { (&mut *(conf as *mut LocConf), arguments(cf, cmd)) };
    for arg in args {
        match Origin::parse(&show(arg)) {
            Ok(origin) => conf.origins.push(origin),
            Err(why) => {
                ngx_conf_log_error!(
                    NGX_LOG_EMERG,
                    cf,
                    "invalid value \"{}\" in \"{name}\" directive: {why}",
                    show(arg)
                );
                return NGX_CONF_ERROR;
            }
        }
    }
    NGX_CONF_OK
}
