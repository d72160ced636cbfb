//! `websockify_zone name size;`: a shared memory zone that records every live session of
//! every worker, as `limit_conn_zone` and the upstream `zone` keep theirs (slab allocator,
//! the pool's mutex, a zone reused across reloads when its name and size stay the same).
//! Each record belongs to the worker that owns the session: only that worker writes its
//! bytes and removes it. Other workers reach a session through its record's `revoke`
//! flag, which the owner reads on its sync timer.

use core::ffi::{c_char, c_void};
use core::mem;
use core::ptr::{self, NonNull};

use ngx::collections::queue::{NgxQueue, NgxQueueEntry};
use ngx::core::{Status, NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    ngx_command_t, ngx_conf_t, ngx_int_t, ngx_log_t, ngx_parse_size, ngx_pid, ngx_queue_init,
    ngx_queue_insert_before, ngx_queue_remove, ngx_queue_t, ngx_shared_memory_add, ngx_shm_zone_t,
    ngx_shmtx_lock, ngx_shmtx_unlock, ngx_slab_alloc, ngx_slab_alloc_locked, ngx_slab_free_locked,
    ngx_slab_pool_t, ngx_str_t, ngx_time, NGX_LOG_EMERG, NGX_LOG_WARN,
};
use ngx::{ngx_conf_log_error, ngx_log_error};

use ngx::http::HttpModule;

use crate::conf::args::{arguments, duplicate};
use crate::relay::core::{Cause, Stats};
use crate::status::{self, Probe, Session, Snapshot, Text, Totals};
use crate::Websockify;

/// A full zone is reported at most this often per worker.
const FULL_WARNING_EVERY: i64 = 60;

pub struct MainConf {
    pub zone: *mut ngx_shm_zone_t,
}

impl Default for MainConf {
    fn default() -> Self {
        MainConf {
            zone: ptr::null_mut(),
        }
    }
}

/// What the zone holds, at the start of its slab pool's memory.
#[repr(C)]
struct Shared {
    sessions: ngx_queue_t,
    totals: Totals,
}

#[repr(C)]
pub struct Record {
    /// First: a queue link is a record's address.
    link: ngx_queue_t,
    session: Session,
}

// SAFETY: `link` is the first field of a repr(C) Record and links it into
// `Shared::sessions` only, so a link's address is its record's.
unsafe impl NgxQueueEntry for Record {
    fn from_queue(link: NonNull<ngx_queue_t>) -> NonNull<Record> {
        link.cast()
    }

    fn to_queue(&mut self) -> &mut ngx_queue_t {
        &mut self.link
    }
}

/// Per configuration cycle; `shm_zone->data`.
struct ZoneCtx {
    shpool: *mut ngx_slab_pool_t,
    sh: *mut Shared,
}

/// `websockify_zone name size;`
///
/// # Safety
/// nginx calls it with the directive's `cf` and this module's main configuration as
/// `conf`.
pub unsafe extern "C" fn set_zone(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: see # Safety.
    let (conf, (directive, args)) = unsafe { (&mut *(conf as *mut MainConf), arguments(cf, cmd)) };
    let (Some(name), Some(size)) = (args.first(), args.get(1)) else {
        return NGX_CONF_ERROR;
    };
    if !conf.zone.is_null() {
        // SAFETY: cf is the live configuration.
        return unsafe { duplicate(cf, directive) };
    }
    let mut size_str = *size;
    // SAFETY: the directive's argument; ngx_pagesize is set once at startup.
    let (bytes, min) = unsafe {
        (
            ngx_parse_size(&mut size_str),
            8 * ngx::ffi::ngx_pagesize as isize,
        )
    };
    if bytes == Status::NGX_ERROR.0 || bytes < min {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "invalid zone size \"{}\" in \"websockify_zone\" directive, it must be at least {}k",
            String::from_utf8_lossy(size.as_bytes()),
            min / 1024
        );
        return NGX_CONF_ERROR;
    }
    let mut name = *name;
    // SAFETY: cf is the live configuration; the tag is this module.
    let zone = unsafe {
        ngx_shared_memory_add(
            cf,
            &mut name,
            bytes as usize,
            ptr::from_ref(Websockify::module()).cast_mut().cast(),
        )
    };
    // SAFETY: null or the cycle's zone entry nginx just returned.
    let Some(zone) = (unsafe { zone.as_mut() }) else {
        return NGX_CONF_ERROR;
    };
    if !zone.data.is_null() {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "websockify_zone \"{}\" is already defined",
            String::from_utf8_lossy(name.as_bytes())
        );
        return NGX_CONF_ERROR;
    }
    // SAFETY: cf is the live configuration.
    let ctx =
        unsafe { ngx::ffi::ngx_pcalloc((*cf).pool, mem::size_of::<ZoneCtx>()) } as *mut ZoneCtx;
    if ctx.is_null() {
        return NGX_CONF_ERROR;
    }
    zone.data = ctx.cast();
    zone.init = Some(init_zone);
    conf.zone = zone;
    NGX_CONF_OK
}

/// The zone another directive names with `zone=NAME` (0 size: it must be defined).
///
/// # Safety
/// `cf` is the configuration being parsed.
pub unsafe fn find(cf: *mut ngx_conf_t, name: &mut ngx_str_t) -> *mut ngx_shm_zone_t {
    // SAFETY: see # Safety; the tag is this module.
    unsafe {
        ngx_shared_memory_add(
            cf,
            name,
            0,
            ptr::from_ref(Websockify::module()).cast_mut().cast(),
        )
    }
}

/// # Safety
/// nginx calls it with a zone that set_zone added (its `data` a ZoneCtx) and the previous
/// cycle's ZoneCtx of the same zone, or null.
unsafe extern "C" fn init_zone(zone: *mut ngx_shm_zone_t, data: *mut c_void) -> ngx_int_t {
    // SAFETY: see # Safety.
    let (ctx, old, zone) = unsafe {
        (
            &mut *((*zone).data as *mut ZoneCtx),
            (data as *mut ZoneCtx).as_ref(),
            &*zone,
        )
    };
    if let Some(old) = old {
        // A reload with the same name and size: the old workers' sessions stay listed.
        ctx.shpool = old.shpool;
        ctx.sh = old.sh;
        return Status::NGX_OK.0;
    }
    // The zone's memory starts with its slab pool (ngx_init_zone_pool).
    ctx.shpool = zone.shm.addr as *mut ngx_slab_pool_t;
    // SAFETY: nginx has set up the slab pool of this mapped zone.
    let shpool = unsafe { &mut *ctx.shpool };
    if zone.shm.exists != 0 {
        ctx.sh = shpool.data as *mut Shared;
        return Status::NGX_OK.0;
    }
    // SAFETY: the zone's pool; nothing else runs while the cycle is being set up.
    let sh = unsafe { ngx_slab_alloc(shpool, mem::size_of::<Shared>()) } as *mut Shared;
    if sh.is_null() {
        return Status::NGX_ERROR.0;
    }
    // SAFETY: a fresh allocation of a Shared.
    unsafe {
        ptr::write_bytes(sh, 0, 1);
        ngx_queue_init(ptr::addr_of_mut!((*sh).sessions));
    }
    shpool.data = sh.cast();
    // A full zone is this module's to report, once a minute, not the allocator's at crit.
    shpool.set_log_nomem(0);
    // Other slab messages name the zone, as limit_conn's do.
    let name = String::from_utf8_lossy(zone.shm.name.as_bytes()).into_owned();
    let text = format!(" in websockify_zone \"{name}\"\0");
    // SAFETY: as for the first allocation.
    let log_ctx = unsafe { ngx_slab_alloc(shpool, text.len()) } as *mut u8;
    if log_ctx.is_null() {
        return Status::NGX_ERROR.0;
    }
    // SAFETY: log_ctx is a fresh allocation of text.len() bytes.
    unsafe { ptr::copy_nonoverlapping(text.as_ptr(), log_ctx, text.len()) };
    shpool.log_ctx = log_ctx;
    ctx.sh = sh;
    Status::NGX_OK.0
}

/// The zone's memory, locked for as long as this lives.
pub struct Locked {
    ctx: *mut ZoneCtx,
}

impl Locked {
    /// # Safety
    /// `zone` is null or a zone that set_zone added, in this cycle.
    pub unsafe fn new(zone: *mut ngx_shm_zone_t) -> Option<Self> {
        // SAFETY: see # Safety; such a zone's data is its ZoneCtx.
        let ctx = unsafe { zone.as_ref() }?.data as *mut ZoneCtx;
        // SAFETY: a ZoneCtx in the cycle's pool; a set sh means init_zone set the pool.
        unsafe {
            if ctx.is_null() || (*ctx).sh.is_null() {
                return None;
            }
            ngx_shmtx_lock(&mut (*(*ctx).shpool).mutex);
        }
        Some(Self { ctx })
    }

    fn sh(&mut self) -> &mut Shared {
        // SAFETY: initialised by init_zone; the lock is held.
        unsafe { &mut *(*self.ctx).sh }
    }

    /// Every record, oldest first.
    fn records(&mut self) -> Vec<*mut Record> {
        let head = ptr::addr_of_mut!(self.sh().sessions);
        // SAFETY: the queue links only records of this zone; the lock is held.
        let queue = unsafe { NgxQueue::<Record>::from_ptr_mut(head) };
        queue.iter_mut().map(ptr::from_mut).collect()
    }

    /// Records a new session; None when the zone is full (counted as untracked).
    pub fn add(&mut self, session: Session) -> Option<*mut Record> {
        self.sh().totals.accepted += 1;
        // SAFETY: the slab pool of this zone, locked.
        let rec = unsafe {
            ngx_slab_alloc_locked((*self.ctx).shpool, mem::size_of::<Record>()) as *mut Record
        };
        if rec.is_null() {
            self.sh().totals.untracked += 1;
            return None;
        }
        let head = ptr::addr_of_mut!(self.sh().sessions);
        // SAFETY: a fresh record inserted at the queue's tail (ngx_queue_insert_tail).
        unsafe {
            ptr::addr_of_mut!((*rec).session).write(session);
            ngx_queue_insert_before(head, ptr::addr_of_mut!((*rec).link));
        }
        Some(rec)
    }

    /// Writes the session's counters (and the desktop name once known); true when
    /// `DELETE` asked to end it.
    pub fn update(&mut self, rec: *mut Record, stats: Stats, desktop: Option<&str>) -> bool {
        // SAFETY: a record this worker added and has not removed; the lock is held.
        let s = unsafe { &mut (*rec).session };
        if let Some(name) = desktop.filter(|_| s.desktop.as_str().is_empty()) {
            s.desktop = Text::new(name.as_bytes());
        }
        s.from_client = stats.from_client;
        s.to_client = stats.to_client;
        s.frames_from_client = stats.frames_from_client;
        s.revoke
    }

    /// The session ended: the totals count it, its record (null: it had none, the zone
    /// was full) goes.
    pub fn remove(&mut self, rec: *mut Record, cause: Cause, stats: Stats) {
        self.sh()
            .totals
            .closed(cause, stats.from_client, stats.to_client);
        if !rec.is_null() {
            self.free(rec);
        }
    }

    fn free(&mut self, rec: *mut Record) {
        // SAFETY: unlinks and frees a record of this zone, locked.
        unsafe {
            ngx_queue_remove(ptr::addr_of_mut!((*rec).link));
            ngx_slab_free_locked((*self.ctx).shpool, rec.cast());
        }
    }

    /// Marks the session with this id to be ended by its worker; false when none has it
    /// (or its worker is gone).
    pub fn revoke(&mut self, id: &[u8]) -> bool {
        let found = self.records().into_iter().find(|&rec| {
            // SAFETY: records of this zone, locked.
            let s = unsafe { &(*rec).session };
            s.id.as_str().as_bytes() == id && status::owner_alive(s.owner_start, probe(s.pid))
        });
        if let Some(rec) = found {
            // SAFETY: as above.
            unsafe { (*rec).session.revoke = true };
        }
        found.is_some()
    }

    /// A copy of every record and the totals, after sweeping records of workers that are
    /// gone (a crashed worker never removed its own): counted closed, `worker_exit`.
    pub fn snapshot(&mut self) -> Snapshot {
        let records = self.records();
        // SAFETY: records of this zone, locked.
        let copies: Vec<Session> = records
            .iter()
            .map(|&rec| unsafe { (*rec).session })
            .collect();
        let owners: Vec<(i64, u64)> = copies.iter().map(|s| (s.pid, s.owner_start)).collect();
        let alive = status::owners_alive(&owners, probe);
        let mut sessions = Vec::with_capacity(copies.len());
        for ((rec, s), live) in records.into_iter().zip(copies).zip(alive) {
            if live {
                sessions.push(s);
            } else {
                self.sh().totals.worker_exited(s.from_client, s.to_client);
                self.free(rec);
            }
        }
        Snapshot {
            sessions,
            totals: self.sh().totals,
        }
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        // SAFETY: locked in `new`.
        unsafe { ngx_shmtx_unlock(&mut (*(*self.ctx).shpool).mutex) };
    }
}

/// What runs under a record's pid now.
fn probe(pid: i64) -> Probe {
    extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    // SAFETY: this worker's own pid, set at its start.
    if pid == i64::from(unsafe { ngx_pid }) {
        return Probe::Running(Some(own_start()).filter(|&t| t != 0));
    }
    // SAFETY: signal 0 only checks that the process exists.
    let gone = unsafe { kill(pid as i32, 0) } == -1
        && std::io::Error::last_os_error().raw_os_error() == Some(3); // ESRCH
    if gone {
        return Probe::Gone;
    }
    Probe::Running(start_time(pid))
}

/// When process `pid` started, from Linux's `/proc`; None elsewhere or when unreadable.
fn start_time(pid: i64) -> Option<u64> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    status::proc_start_time(&stat)
}

/// This worker's start time, for its records (0: unknown, the pid alone names it). Read
/// once per pid: a value cached before the fork would be the master's.
pub fn own_start() -> u64 {
    thread_local! {
        static OWN: core::cell::Cell<Option<(i64, u64)>> = const { core::cell::Cell::new(None) };
    }
    // SAFETY: this worker's own pid, set at its start.
    let pid = i64::from(unsafe { ngx_pid });
    if let Some((p, start)) = OWN.with(|o| o.get()) {
        if p == pid {
            return start;
        }
    }
    let start = start_time(pid).unwrap_or_default();
    OWN.with(|o| o.set(Some((pid, start))));
    start
}

/// Logs that the zone is full, at most once a minute per worker.
///
/// # Safety
/// `log` is a live log and `zone` a zone of this cycle.
pub unsafe fn warn_full(log: *mut ngx_log_t, zone: *mut ngx_shm_zone_t) {
    thread_local! {
        static LAST: core::cell::Cell<i64> = const { core::cell::Cell::new(i64::MIN) };
    }
    let now = ngx_time();
    if LAST.with(|l| now.saturating_sub(l.get()) < FULL_WARNING_EVERY) {
        return;
    }
    LAST.with(|l| l.set(now));
    // SAFETY: see # Safety.
    let name = String::from_utf8_lossy(unsafe { (*zone).shm.name.as_bytes() }).into_owned();
    ngx_log_error!(
        NGX_LOG_WARN,
        log,
        "websockify: zone \"{name}\" is full, sessions work but are not listed (websockify_sessions_untracked_total)"
    );
}
