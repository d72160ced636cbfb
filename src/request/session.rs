//! The state one request's session keeps across events: the request, its configuration,
//! the relay once it runs, and its record in the zone.

use core::{mem, ptr};

use ngx::ffi::{
    ngx_connection_t, ngx_event_t, ngx_http_request_t, ngx_log_t, ngx_peer_connection_t,
    ngx_resolver_ctx_t, ngx_shm_zone_t,
};

use ngx::core::Status;
use ngx::ffi::{ngx_http_complex_value, ngx_http_complex_value_t, ngx_str_t};
use ngx::http::{HttpModule, Request};

use super::recfile::RecordFile;
use crate::conf::LocConf;
use crate::protocol::handshake::Accept;
use crate::protocol::rfb::login::Login as Machine;
use crate::protocol::rfb::{Secret, Security, Tls};
use crate::relay::core::{End, Relay, Stats};
use crate::zone::Record;
use crate::Websockify;

/// Invariant (upheld by `new`'s caller; `r` and `conf` are written only there): `r` is the
/// live request whose pool holds this session and `conf` its location configuration;
/// `zone` and `record` are null or a zone of this cycle and this session's record there.
///
/// The request's upstream (`peer`, `target`) exists only once `connect::begin` has made
/// it, and ending the request may free the session: functions that need the one or may
/// do the other stay `unsafe` and say so.
pub struct Session {
    pub r: *mut ngx_http_request_t,
    pub conf: *const LocConf,
    /// A per-request host name being resolved, and the port that goes with it.
    pub resolving: *mut ngx_resolver_ctx_t,
    pub port: u16,
    pub accept: Accept,
    /// Exists once the target is connected and the 101 produced.
    pub relay: Option<Relay>,
    /// The relay's one deadline.
    pub timer: ngx_event_t,
    /// `<worker pid>-<connection number>`: unique in the nginx instance.
    pub id: Option<String>,
    pub target_name: Option<String>,
    /// The `websockify_zone` that counted this session (null: none, or it ended), and
    /// its record there (null: the zone was full).
    pub zone: *mut ngx_shm_zone_t,
    pub record: *mut Record,
    /// Bytes read from the target, for `$upstream_bytes_received`.
    pub received: u64,
    /// The RFB login with the server while connecting (`websockify_rfb_*`).
    pub login: Option<Box<Login>>,
    /// The TLS started inside RFB is anonymous (VeNCrypt tls*): nothing to verify.
    pub tls_anonymous: bool,
    /// What the login settled, for the variables and the status.
    pub rfb: Option<RfbSession>,
    /// `websockify_record`'s file while the session is recorded.
    pub record_file: Option<RecordFile>,
}

/// The RFB login in progress (request/login.rs drives it): the machine, the server's bytes
/// it has not consumed yet, and what is still to be written (it may hold the password:
/// wiped when dropped).
pub struct Login {
    pub machine: Machine,
    pub input: Vec<u8>,
    pub out: Secret,
    pub sent: usize,
    /// The machine asked for TLS once the output is written.
    pub tls: Option<Tls>,
    /// TLS has started and its handshake is under way.
    pub handshaking: bool,
    /// Logged in with this type once the output is written (3.7's None choice is the
    /// last byte, with nothing to read after it).
    pub done: Option<Security>,
}

impl Login {
    /// Waiting for the TLS handshake (its handler resumes the login), not for the socket.
    pub fn handshaking(&self) -> bool {
        self.handshaking
    }
}

/// An RFB session the gateway logged in to.
pub struct RfbSession {
    pub security: Security,
    pub view_only: bool,
}

impl Session {
    /// # Safety
    /// `r` is a live request whose pool will hold the session, `conf` its location
    /// configuration.
    pub unsafe fn new(r: *mut ngx_http_request_t, conf: &LocConf, accept: Accept) -> Session {
        Session {
            r,
            conf,
            resolving: ptr::null_mut(),
            port: 0,
            accept,
            relay: None,
            // SAFETY: an all-zero ngx_event_t is nginx's idle event (ngx_pcalloc'd).
            timer: unsafe { mem::zeroed() },
            id: None,
            target_name: None,
            zone: ptr::null_mut(),
            record: ptr::null_mut(),
            received: 0,
            login: None,
            tls_anonymous: false,
            rfb: None,
            record_file: None,
        }
    }

    /// The peer connection: the request's upstream holds it, for the balancers.
    ///
    /// # Safety
    /// The request's upstream exists (`connect::begin` made it).
    pub unsafe fn peer(&self) -> *mut ngx_peer_connection_t {
        // SAFETY: r is live (invariant), its upstream exists (# Safety).
        unsafe { &mut (*(*self.r).upstream).peer }
    }

    /// The chosen peer's name (`host:port` or `unix:path`), for log lines and the zone.
    ///
    /// # Safety
    /// As for `peer`.
    pub unsafe fn peer_name(&self) -> Option<String> {
        // SAFETY: see # Safety; the peer's name is null or its balancer's string.
        unsafe { (*self.peer()).name.as_ref() }
            .map(|n| String::from_utf8_lossy(n.as_bytes()).into_owned())
    }

    /// # Safety
    /// As for `peer`.
    pub unsafe fn target(&self) -> *mut ngx_connection_t {
        // SAFETY: as for peer.
        unsafe { (*self.peer()).connection }
    }

    pub fn client(&self) -> *mut ngx_connection_t {
        // SAFETY: r is live (invariant).
        unsafe { (*self.r).connection }
    }

    pub fn log(&self) -> *mut ngx_log_t {
        // SAFETY: a live request's connection is live.
        unsafe { (*self.client()).log }
    }

    /// A value compiled in the location, evaluated for this request (in its pool); None
    /// when nginx could not (it has logged why).
    pub fn evaluate(&self, cv: &ngx_http_complex_value_t) -> Option<ngx_str_t> {
        let mut value = ngx_str_t::default();
        // SAFETY: r is live (invariant); nginx only reads the compiled value.
        let rc =
            unsafe { ngx_http_complex_value(self.r, ptr::from_ref(cv).cast_mut(), &mut value) };
        (rc == Status::NGX_OK.0).then_some(value)
    }

    pub fn conf(&self) -> &LocConf {
        // SAFETY: location configuration lives as long as the cycle.
        unsafe { &*self.conf }
    }

    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    pub fn target_name(&self) -> Option<&str> {
        self.target_name.as_deref()
    }

    pub fn stats(&self) -> Option<Stats> {
        self.relay.as_ref().map(Relay::stats)
    }

    /// The security type the gateway logged in with (`$websockify_rfb_security`).
    pub fn rfb_security(&self) -> Option<&'static str> {
        self.rfb.as_ref().map(|r| r.security.name())
    }

    /// The desktop name from ServerInit (`$websockify_rfb_desktop`).
    pub fn desktop(&self) -> Option<&str> {
        self.relay.as_ref().and_then(Relay::desktop)
    }

    pub fn end(&self) -> Option<End> {
        self.relay.as_ref().and_then(Relay::end)
    }
}

/// The session of a request, if it has one (variables are read in subrequests too).
///
/// # Safety
/// `r` is a live request.
pub unsafe fn session_of<'a>(r: *mut ngx_http_request_t) -> Option<&'a Session> {
    // SAFETY: the caller passes a live request; its main request's ctx slot holds a
    // Session or null.
    let main = unsafe { Request::from_ngx_http_request((*r).main) };
    main.get_module_ctx::<Session>(Websockify::module())
}

/// The session the request's event handlers work on. The crate's `get_module_ctx` gives a
/// shared reference only; an event handler is the one user of the session at that moment.
///
/// # Safety
/// `r` is a live request and no other reference to its session is in use.
pub unsafe fn session_mut<'a>(r: *mut ngx_http_request_t) -> Option<&'a mut Session> {
    // SAFETY: as in session_of; nginx runs one handler at a time per worker.
    unsafe { (*(*r).ctx.add(Websockify::module().ctx_index) as *mut Session).as_mut() }
}

/// Makes `s` the request's session, found again by session_of and session_mut.
///
/// # Safety
/// `r` is a live request and `s` a session that lives as long as it.
pub unsafe fn attach(r: *mut ngx_http_request_t, s: *mut Session) {
    // SAFETY: the caller passes a live request and a session that lives as long as it.
    let r = unsafe { Request::from_ngx_http_request(r) };
    r.set_module_ctx(s.cast(), Websockify::module());
}
