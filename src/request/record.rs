//! `websockify_record` for a session: the file opened before the 101 (a required
//! recording that cannot be opened refuses the session) with its header, then the
//! relay's records handed to it in large chunks (`recfile` writes them), and what the
//! thread pool reports acted on. The relay core decides what is recorded.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{SystemTime, UNIX_EPOCH};

use ngx::ffi::NGX_LOG_ERR;
use ngx::ngx_log_error;

use super::recfile::{failure, os_error, PoolEvent, RecordFile, MAX_PENDING};
use super::session::Session;
use crate::protocol::recording::Header;
use crate::relay::core::Msec;

/// Written once this much waits (and at least once a second while the session moves).
const FLUSH_AT: usize = 64 * 1024;
const FLUSH_EVERY: Msec = 1000;

/// The session may not start: its required recording could not be opened (logged).
pub struct Refused;

/// Opens the location's recording for this session, if it records.
///
/// # Safety
/// `s` is the request's session, its target connected, its id and timer set up (the
/// thread pool posts the timer's event), and it stays where it is.
pub unsafe fn open(
    s: &mut Session,
    location: &str,
    now: Msec,
) -> Result<Option<RecordFile>, Refused> {
    let conf = &s.conf().record;
    let Some(cv) = conf.path() else {
        return Ok(None);
    };
    let required = conf.required != 0;
    let Some(value) = s.evaluate(cv) else {
        return if required { Err(Refused) } else { Ok(None) };
    };
    let os_path = std::ffi::OsStr::from_bytes(value.as_bytes()).to_owned();
    let path = String::from_utf8_lossy(value.as_bytes()).into_owned();
    let header = Header {
        session: s.id().unwrap_or_default(),
        // SAFETY: see # Safety: the upstream exists.
        target: &unsafe { s.peer_name() }.unwrap_or_default(),
        location,
        start_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        input: conf.input != 0,
    }
    .encode();
    let opened = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&os_path)
        .and_then(|mut f| f.write_all(&header).map(|()| f));
    match opened {
        // SAFETY: see # Safety; the pool is null or this cycle's.
        Ok(file) => Ok(Some(unsafe {
            RecordFile::new(file, path, required, now, thread_pool(s), &mut s.timer)
        })),
        Err(e) => {
            let then = if required {
                "refusing the session (websockify_record_required)"
            } else {
                "the session goes on unrecorded"
            };
            ngx_log_error!(
                NGX_LOG_ERR,
                s.log(),
                "websockify: cannot open recording \"{path}\": {}, {then}",
                os_error(&e)
            );
            if required {
                Err(Refused)
            } else {
                Ok(None)
            }
        }
    }
}

/// The location's thread pool when it has `aio threads; aio_write on;`, as nginx's own
/// file writes go through it; null otherwise.
#[cfg(ngx_feature = "threads")]
fn thread_pool(s: &Session) -> *mut ngx::ffi::ngx_thread_pool_t {
    use ngx::ffi::{ngx_flag_t, NGX_HTTP_AIO_THREADS};
    use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};
    // SAFETY: r is live (Session invariant).
    NgxHttpCoreModule::location_conf(unsafe { &*s.r })
        .filter(|c| c.aio == NGX_HTTP_AIO_THREADS as ngx_flag_t && c.aio_write != 0)
        .map_or(core::ptr::null_mut(), |c| c.thread_pool)
}

#[cfg(not(ngx_feature = "threads"))]
fn thread_pool(_: &Session) -> *mut ngx::ffi::ngx_thread_pool_t {
    core::ptr::null_mut()
}

/// Hands what the relay recorded to the file when enough waits, a second has passed, or
/// `all`. A failed write ends the recording (and, when it is required, the session: true).
pub fn flush(s: &mut Session, now: Msec, all: bool) -> bool {
    let (Some(relay), Some(file)) = (s.relay.as_mut(), s.record_file.as_mut()) else {
        return false;
    };
    let Some(rec) = relay.recorder() else {
        return false;
    };
    let due = all || rec.pending() >= FLUSH_AT || now >= file.flushed_at + FLUSH_EVERY;
    if rec.pending() == 0 || !due {
        return false;
    }
    let bytes = rec.take();
    file.flushed_at = now;
    match file.write(bytes) {
        Ok(behind) => {
            relay.record_behind(behind);
            false
        }
        Err(why) => give_up(s, &why),
    }
}

/// The recording cannot be written (why): one line, then the session goes on without it,
/// or ends when it is required (true).
fn give_up(s: &mut Session, why: &str) -> bool {
    let log = s.log();
    let Some(file) = s.record_file.take() else {
        return false;
    };
    failure(log, &file.path, why, file.required);
    if let Some(relay) = s.relay.as_mut() {
        relay.record_failed(file.required);
    }
    file.required
}

/// Acts on what the thread pool reported: a failed write (logged here, once), or writes
/// that caught up (the relay reads again).
pub fn check(s: &mut Session) {
    let (Some(relay), Some(file)) = (s.relay.as_mut(), s.record_file.as_mut()) else {
        return;
    };
    match file.take_event() {
        Some(PoolEvent::Failed(why)) => {
            give_up(s, &why);
        }
        Some(PoolEvent::CaughtUp) => relay.record_behind(false),
        None => {}
    }
}

/// Whether the relay loop must write out before going on.
pub fn must_flush(s: &mut Session) -> bool {
    s.record_file.is_some()
        && s.relay
            .as_mut()
            .and_then(|r| r.recorder())
            .is_some_and(|r| r.pending() >= MAX_PENDING)
}
