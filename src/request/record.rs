//! `websockify_record`'s file: opened before the 101 (a required recording that cannot
//! be opened refuses the session), its header written, then the relay's records written
//! in large chunks: with `aio threads` and `aio_write on` through the location's thread
//! pool (`pool.rs`), as nginx writes its temporary files, otherwise with write(2) as
//! nginx writes its logs. The relay core decides what is recorded; this file only writes.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{SystemTime, UNIX_EPOCH};

use ngx::core::Status;
use ngx::ffi::{ngx_http_complex_value, ngx_str_t, NGX_LOG_ERR};
use ngx::ngx_log_error;

use super::session::Session;
use crate::protocol::recording::Header;
use crate::relay::core::Msec;

/// Written once this much waits (and at least once a second while the session moves).
const FLUSH_AT: usize = 64 * 1024;
/// Never more than this waits in memory: the relay loop writes out first.
pub const MAX_PENDING: usize = 256 * 1024;
const FLUSH_EVERY: Msec = 1000;

/// A recording being written.
pub struct RecordFile {
    writer: Writer,
    path: String,
    required: bool,
    flushed_at: Msec,
}

enum Writer {
    Direct(File),
    /// Owned by the pool's write queue, which outlives the session if it must.
    #[cfg(ngx_feature = "threads")]
    Pool(*mut super::pool::Queue),
}

impl Drop for RecordFile {
    fn drop(&mut self) {
        #[cfg(ngx_feature = "threads")]
        if let Writer::Pool(q) = self.writer {
            // SAFETY: the queue this file made; it frees itself once its writes are done.
            unsafe { super::pool::Queue::release(q) };
        }
    }
}

/// The session may not start: its required recording could not be opened (logged).
pub struct Refused;

/// Opens the location's recording for this session, if it records.
///
/// # Safety
/// `s` is the request's session, its target connected and its id set.
pub unsafe fn open(s: &Session, location: &str, now: Msec) -> Result<Option<RecordFile>, Refused> {
    let conf = &s.conf().record;
    let Some(cv) = conf.path() else {
        return Ok(None);
    };
    let required = conf.required != 0;
    let mut value = ngx_str_t::default();
    // SAFETY: see # Safety; nginx only reads cv.
    if unsafe { ngx_http_complex_value(s.r, cv as *const _ as *mut _, &mut value) }
        != Status::NGX_OK.0
    {
        return if required { Err(Refused) } else { Ok(None) };
    }
    let path = String::from_utf8_lossy(value.as_bytes()).into_owned();
    let opened = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path);
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
    let result = opened.and_then(|mut f| f.write_all(&header).map(|()| f));
    match result {
        Ok(file) => Ok(Some(RecordFile {
            // SAFETY: see # Safety.
            writer: unsafe { writer(s, file, &path, required) },
            path,
            required,
            flushed_at: now,
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

/// Writes what the relay recorded when enough waits, a second has passed, or `all`.
/// A failed write ends the recording (and, when it is required, the session: true).
pub fn flush(s: &mut Session, now: Msec, all: bool) -> bool {
    let log = s.log();
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
    let failed = match file.writer {
        Writer::Direct(ref mut f) => f.write_all(&bytes).err().map(|e| os_error(&e)),
        // SAFETY: the queue this file made, alive while the file is.
        #[cfg(ngx_feature = "threads")]
        Writer::Pool(q) => match unsafe { (*q).write(bytes) } {
            Ok(behind) => {
                relay.record_behind(behind);
                None
            }
            Err(why) => Some(why),
        },
    };
    let Some(why) = failed else {
        return false;
    };
    failure(log, &file.path, &why, file.required);
    relay.record_failed(file.required);
    let ended = file.required;
    s.record_file = None;
    ended
}

/// The one line for a recording that cannot be written.
pub fn failure(log: *mut ngx::ffi::ngx_log_t, path: &str, why: &str, required: bool) {
    let then = if required {
        "ending the session (websockify_record_required)"
    } else {
        "recording stopped"
    };
    ngx_log_error!(
        NGX_LOG_ERR,
        log,
        "websockify: writing recording \"{path}\" failed: {why}, {then}"
    );
}

/// Where the records go: the location's thread pool with `aio threads; aio_write on;`,
/// else the file directly.
///
/// # Safety
/// `s` is the request's session.
#[cfg(ngx_feature = "threads")]
unsafe fn writer(s: &Session, file: File, path: &str, required: bool) -> Writer {
    use ngx::ffi::{ngx_flag_t, NGX_HTTP_AIO_THREADS};
    use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};
    // SAFETY: r is live (Session invariant).
    let pool = NgxHttpCoreModule::location_conf(unsafe { &*s.r })
        .filter(|c| c.aio == NGX_HTTP_AIO_THREADS as ngx_flag_t && c.aio_write != 0)
        .map(|c| c.thread_pool)
        .filter(|tp| !tp.is_null());
    let Some(tp) = pool else {
        return Writer::Direct(file);
    };
    // SAFETY: a thread pool of this cycle; s the live session.
    match unsafe { super::pool::Queue::new(file, tp, path, required, s) } {
        Ok(q) => Writer::Pool(q),
        Err(file) => Writer::Direct(file),
    }
}

/// # Safety
/// None: without thread support the file is written directly.
#[cfg(not(ngx_feature = "threads"))]
unsafe fn writer(_: &Session, file: File, _: &str, _: bool) -> Writer {
    Writer::Direct(file)
}

/// Whether the relay loop must write out before going on.
pub fn must_flush(s: &mut Session) -> bool {
    s.record_file.is_some()
        && s.relay
            .as_mut()
            .and_then(|r| r.recorder())
            .is_some_and(|r| r.pending() >= MAX_PENDING)
}

/// "(28: No space left on device)", the way nginx shows an errno.
pub fn os_error(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or_default();
    match e.raw_os_error() {
        Some(n) => format!("({n}: {text})"),
        None => format!("({text})"),
    }
}
