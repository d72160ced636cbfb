//! A recording's file and how it is written: directly with write(2), as nginx writes its
//! logs, or through nginx's thread pool (`aio threads; aio_write on;`), as nginx writes
//! temporary files: one reused task, one write in flight, later records queued behind
//! it. The queue owns the file and outlives the session when a write is still in flight
//! at its end: the last write's completion frees it. The session learns what happened
//! from its posted event (`take_event`); nothing here knows the session.

use std::fs::File;
use std::io::Write;

use ngx::ffi::ngx_log_t;
use ngx::ngx_log_error;

/// Never more than this waits for the file: the relay writes out (or, behind the thread
/// pool, stops reading) first.
pub const MAX_PENDING: usize = 256 * 1024;

/// A recording being written.
pub struct RecordFile {
    writer: Writer,
    pub path: String,
    pub required: bool,
    pub flushed_at: u64,
}

enum Writer {
    Direct(File),
    #[cfg(ngx_feature = "threads")]
    Pool(*mut Queue),
}

impl RecordFile {
    /// A file written directly, or through `pool` (with `wake` posted when the session
    /// must act); the file back in direct mode when nginx cannot make the pool's task.
    ///
    /// # Safety
    /// `pool` is null or a thread pool of this cycle; `wake` the session's event, alive
    /// until the file is dropped.
    pub unsafe fn new(
        file: File,
        path: String,
        required: bool,
        now: u64,
        pool: *mut ngx::ffi::ngx_thread_pool_t,
        wake: *mut ngx::ffi::ngx_event_t,
    ) -> RecordFile {
        #[cfg(ngx_feature = "threads")]
        let writer = if pool.is_null() {
            Writer::Direct(file)
        } else {
            // SAFETY: see # Safety.
            match unsafe { Queue::new(file, pool, &path, wake) } {
                Ok(q) => Writer::Pool(q),
                Err(file) => Writer::Direct(file),
            }
        };
        #[cfg(not(ngx_feature = "threads"))]
        let writer = {
            let _ = (pool, wake);
            Writer::Direct(file)
        };
        RecordFile {
            writer,
            path,
            required,
            flushed_at: now,
        }
    }

    /// Writes (or queues) whole records: true when the pool's writes are behind and the
    /// relay must read nothing more for now; Err: why the file cannot be written.
    pub fn write(&mut self, bytes: Vec<u8>) -> Result<bool, String> {
        match self.writer {
            Writer::Direct(ref mut f) => f
                .write_all(&bytes)
                .map(|()| false)
                .map_err(|e| os_error(&e)),
            // SAFETY: the queue this file made, alive while the file is.
            #[cfg(ngx_feature = "threads")]
            Writer::Pool(q) => unsafe { (*q).write(bytes) },
        }
    }

    /// What the thread pool has to say since the last look.
    pub fn take_event(&mut self) -> Option<PoolEvent> {
        match self.writer {
            Writer::Direct(_) => None,
            // SAFETY: as for write.
            #[cfg(ngx_feature = "threads")]
            Writer::Pool(q) => unsafe { (*q).event.take() },
        }
    }
}

impl Drop for RecordFile {
    fn drop(&mut self) {
        #[cfg(ngx_feature = "threads")]
        if let Writer::Pool(q) = self.writer {
            // SAFETY: the queue this file made; it frees itself once its writes are done.
            unsafe { Queue::release(q) };
        }
    }
}

/// What the thread pool tells the session, through its posted event (direct writes
/// never do).
pub enum PoolEvent {
    Failed(String),
    CaughtUp,
}

/// The one line for a recording that cannot be written.
pub fn failure(log: *mut ngx_log_t, path: &str, why: &str, required: bool) {
    let then = if required {
        "ending the session (websockify_record_required)"
    } else {
        "recording stopped"
    };
    ngx_log_error!(
        ngx::ffi::NGX_LOG_ERR,
        log,
        "websockify: writing recording \"{path}\" failed: {why}, {then}"
    );
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

#[cfg(ngx_feature = "threads")]
use self::threads::Queue;

#[cfg(ngx_feature = "threads")]
mod threads {
    use core::ffi::c_void;
    use core::ptr;
    use std::fs::File;
    use std::io::Write;
    use std::mem::ManuallyDrop;
    use std::os::fd::{AsRawFd, FromRawFd, RawFd};

    use ngx::core::Status;
    use ngx::ffi::{
        ngx_add_timer, ngx_connection_t, ngx_create_pool, ngx_cycle, ngx_destroy_pool, ngx_event_t,
        ngx_log_t, ngx_msec_t, ngx_pool_t, ngx_post_event, ngx_posted_events, ngx_thread_pool_t,
        ngx_thread_task_alloc, ngx_thread_task_post, ngx_thread_task_t,
    };

    use super::{failure, os_error, PoolEvent, MAX_PENDING};

    /// What one write takes to the thread and brings back.
    struct Job {
        fd: RawFd,
        bytes: Vec<u8>,
        /// The write's error (errno), 0 when all was written.
        err: i32,
    }

    pub struct Queue {
        /// Held open until the queue goes: the pool's thread writes to its descriptor.
        _file: File,
        path: String,
        tp: *mut ngx_thread_pool_t,
        /// The task's memory; its ctx is a Job.
        pool: *mut ngx_pool_t,
        task: *mut ngx_thread_task_t,
        /// Records for after the write in flight.
        waiting: Vec<u8>,
        /// The session's event, posted when something happened it must act on; null once
        /// the session has released the queue.
        wake: *mut ngx_event_t,
        /// What happened: a write failed (why), or the writes caught up.
        pub(super) event: Option<PoolEvent>,
    }

    impl Queue {
        /// A queue for `file`, or the file back when nginx cannot make the task.
        ///
        /// # Safety
        /// `tp` is a thread pool of this cycle and `wake` an event of the session, which
        /// calls `release` before it goes.
        pub(super) unsafe fn new(
            file: File,
            tp: *mut ngx_thread_pool_t,
            path: &str,
            wake: *mut ngx_event_t,
        ) -> Result<*mut Queue, File> {
            // SAFETY: the cycle's log outlives the pool, which is ours.
            let pool = unsafe { ngx_create_pool(4096, (*ngx_cycle).log) };
            if pool.is_null() {
                return Err(file);
            }
            // SAFETY: pool was just made; nginx zeroes the task and gives room for a Job.
            let task = unsafe { ngx_thread_task_alloc(pool, size_of::<Job>()) };
            if task.is_null() {
                // SAFETY: ours, unused.
                unsafe { ngx_destroy_pool(pool) };
                return Err(file);
            }
            // SAFETY: ctx points to size_of::<Job>() bytes in pool, aligned by the pool.
            unsafe {
                ((*task).ctx as *mut Job).write(Job {
                    fd: file.as_raw_fd(),
                    bytes: Vec::new(),
                    err: 0,
                });
            }
            Ok(Box::into_raw(Box::new(Queue {
                _file: file,
                path: path.to_owned(),
                tp,
                pool,
                task,
                waiting: Vec::new(),
                wake,
                event: None,
            })))
        }

        fn busy(&self) -> bool {
            // SAFETY: the task lives as long as the queue.
            unsafe { (*self.task).event.active() != 0 }
        }

        /// Queues records and starts a write if none is in flight; true when the writes are
        /// behind (MAX_PENDING waiting): the relay then reads nothing until they catch up.
        /// Err: the pool refused the task.
        pub(super) fn write(&mut self, bytes: Vec<u8>) -> Result<bool, String> {
            self.waiting.extend_from_slice(&bytes);
            if !self.busy() {
                self.post()?;
            }
            Ok(self.behind())
        }

        fn behind(&self) -> bool {
            self.waiting.len() >= MAX_PENDING
        }

        fn post(&mut self) -> Result<(), String> {
            if self.waiting.is_empty() {
                return Ok(());
            }
            let q = ptr::from_mut(self);
            // SAFETY: the task and its Job are the queue's; no write is in flight.
            let rc = unsafe {
                let task = &mut *self.task;
                let job = &mut *(task.ctx as *mut Job);
                job.bytes = std::mem::take(&mut self.waiting);
                job.err = 0;
                task.handler = Some(write_in_thread);
                task.event.data = q.cast();
                task.event.handler = Some(written);
                // The session's log may go before the write completes.
                task.event.log = (*ngx_cycle).log;
                ngx_thread_task_post(self.tp, task)
            };
            if rc != Status::NGX_OK.0 {
                return Err("the thread pool refused the write".to_owned());
            }
            Ok(())
        }

        /// Tells the session: its event runs in this round of the event loop.
        fn tell(&mut self, event: PoolEvent) {
            self.event = Some(event);
            // SAFETY: a set wake is the live session's event.
            unsafe { ngx_post_event(self.wake, ptr::addr_of_mut!(ngx_posted_events)) };
        }

        /// The session is done with the queue: freed now, or by its last write.
        ///
        /// # Safety
        /// `q` is a queue `new` made, released once.
        pub(super) unsafe fn release(q: *mut Queue) {
            // SAFETY: see # Safety.
            let queue = unsafe { &mut *q };
            queue.wake = ptr::null_mut();
            queue.event = None;
            // SAFETY: this worker's own counter and timer.
            unsafe { keep_worker_alive(1) };
            if queue.busy() {
                return;
            }
            if queue.post().is_err() || !queue.busy() {
                // SAFETY: nothing in flight: the queue is ours to free.
                unsafe { Queue::free(q) };
            }
        }

        /// # Safety
        /// `q` is a queue with no write in flight; it is not used afterwards.
        unsafe fn free(q: *mut Queue) {
            // SAFETY: see # Safety; the Job was written by new and is dropped once.
            unsafe {
                let queue = Box::from_raw(q);
                ptr::drop_in_place((*queue.task).ctx as *mut Job);
                ngx_destroy_pool(queue.pool);
                drop(queue);
                keep_worker_alive(-1);
            }
        }
    }

    /// Released queues still writing, and the timer that keeps an exiting worker alive
    /// until they are done: nginx leaves once only cancelable timers remain, and nothing
    /// else holds the worker for a session that has ended (nginx's own thread writes keep
    /// their request blocked instead). Workers are single-threaded: plain statics.
    static mut RELEASED: usize = 0;
    // SAFETY: an all-zero ngx_event_t is an idle, non-cancelable event.
    static mut KEEPALIVE: ngx_event_t = unsafe { core::mem::zeroed() };
    // nginx's debug log reads a timer's `data` as a connection (ngx_event_ident).
    // SAFETY: an all-zero connection is only read for its fd here.
    static mut NO_CONNECTION: ngx_connection_t = unsafe { core::mem::zeroed() };
    const KEEPALIVE_EVERY: ngx_msec_t = 100;

    /// # Safety
    /// Called in the worker's thread only.
    unsafe fn keep_worker_alive(delta: isize) {
        // SAFETY: see # Safety; the statics are this worker's.
        unsafe {
            RELEASED = RELEASED.saturating_add_signed(delta);
            let ev = &mut *ptr::addr_of_mut!(KEEPALIVE);
            if RELEASED > 0 && ev.timer_set() == 0 {
                ev.handler = Some(keepalive_handler);
                ev.log = (*ngx_cycle).log;
                (*ptr::addr_of_mut!(NO_CONNECTION)).fd = -1;
                ev.data = ptr::addr_of_mut!(NO_CONNECTION).cast();
                ngx_add_timer(ev, KEEPALIVE_EVERY);
            }
        }
    }

    /// # Safety
    /// nginx calls it with KEEPALIVE.
    unsafe extern "C" fn keepalive_handler(_ev: *mut ngx_event_t) {
        // SAFETY: see # Safety.
        unsafe { keep_worker_alive(0) };
    }

    /// In a pool thread: the write, nothing else (no nginx calls, no allocation).
    ///
    /// # Safety
    /// nginx calls it with the task's ctx, a Job no one else touches until `written`.
    unsafe extern "C" fn write_in_thread(data: *mut c_void, _log: *mut ngx_log_t) {
        // SAFETY: see # Safety; the fd belongs to the queue's file, open until it is freed.
        let job = unsafe { &mut *(data as *mut Job) };
        let file = ManuallyDrop::new(unsafe { File::from_raw_fd(job.fd) });
        job.err = match (&*file).write_all(&job.bytes) {
            Ok(()) => 0,
            Err(e) => e.raw_os_error().unwrap_or(-1),
        };
    }

    /// Back in the worker: the next write; a failure or writes that caught up told to
    /// the session (its event posted); once the session has gone, a failure logged here
    /// and the queue freed after its last write.
    ///
    /// # Safety
    /// nginx calls it with the task's event, its data the queue.
    unsafe extern "C" fn written(ev: *mut ngx_event_t) {
        // SAFETY: see # Safety.
        let q = unsafe { (*ev).data as *mut Queue };
        // SAFETY: the queue outlives its writes; the write is over, the Job ours again.
        let (queue, job) = unsafe { (&mut *q, &mut *((*(*q).task).ctx as *mut Job)) };
        job.bytes = Vec::new();
        let was_behind = queue.behind();
        let mut failed =
            (job.err != 0).then(|| os_error(&std::io::Error::from_raw_os_error(job.err)));
        if failed.is_none() {
            failed = queue.post().err();
        }
        let released = queue.wake.is_null();
        match failed {
            Some(why) if released => {
                // SAFETY: the cycle's log outlives any queue.
                failure(unsafe { (*ngx_cycle).log }, &queue.path, &why, false);
            }
            Some(why) => {
                queue.waiting.clear();
                queue.tell(PoolEvent::Failed(why));
            }
            None if !released && was_behind && !queue.behind() => queue.tell(PoolEvent::CaughtUp),
            None => {}
        }
        if released && !queue.busy() {
            // SAFETY: released, nothing in flight.
            unsafe { Queue::free(q) };
        }
    }
}
