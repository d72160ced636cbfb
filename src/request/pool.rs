//! A recording's writes through nginx's thread pool (`aio threads; aio_write on;`), the
//! way nginx writes temporary files there: one reused task, one write in flight, later
//! records queued behind it. The queue owns the file and outlives the session when a
//! write is still in flight at its end: the last write's completion frees it.

use core::ffi::c_void;
use core::ptr;
use std::fs::File;
use std::io::Write;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

use ngx::core::Status;
use ngx::ffi::{
    ngx_create_pool, ngx_cycle, ngx_destroy_pool, ngx_event_t, ngx_log_t, ngx_pool_t,
    ngx_thread_pool_t, ngx_thread_task_alloc, ngx_thread_task_post, ngx_thread_task_t,
};

use super::record::{self, MAX_PENDING};
use super::session::Session;

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
    required: bool,
    tp: *mut ngx_thread_pool_t,
    /// The task's memory; its ctx is a Job.
    pool: *mut ngx_pool_t,
    task: *mut ngx_thread_task_t,
    /// Records for after the write in flight.
    waiting: Vec<u8>,
    /// The session, null once it has gone (its log goes with it).
    session: *mut Session,
}

impl Queue {
    /// A queue for `file`, or the file back when nginx cannot make the task.
    ///
    /// # Safety
    /// `tp` is a thread pool of this cycle and `s` the live session, which calls
    /// `release` before it goes.
    pub unsafe fn new(
        file: File,
        tp: *mut ngx_thread_pool_t,
        path: &str,
        required: bool,
        s: &Session,
    ) -> Result<*mut Queue, File> {
        // SAFETY: the session's log lives while the session does; the pool is ours.
        let pool = unsafe { ngx_create_pool(4096, s.log()) };
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
            required,
            tp,
            pool,
            task,
            waiting: Vec::new(),
            session: ptr::from_ref(s).cast_mut(),
        })))
    }

    fn busy(&self) -> bool {
        // SAFETY: the task lives as long as the queue.
        unsafe { (*self.task).event.active() != 0 }
    }

    /// Queues records and starts a write if none is in flight; true when the writes are
    /// behind (MAX_PENDING waiting): the relay then reads nothing until they catch up.
    /// Err: the pool refused the task.
    pub fn write(&mut self, bytes: Vec<u8>) -> Result<bool, String> {
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

    fn log(&self) -> *mut ngx_log_t {
        // SAFETY: a set session is live; the cycle's log lives longer than any queue.
        unsafe {
            match self.session.as_ref() {
                Some(s) => s.log(),
                None => (*ngx_cycle).log,
            }
        }
    }

    /// The session is done with the queue: freed now, or by its last write.
    ///
    /// # Safety
    /// `q` is a queue `new` made, released once.
    pub unsafe fn release(q: *mut Queue) {
        // SAFETY: see # Safety.
        let queue = unsafe { &mut *q };
        queue.session = ptr::null_mut();
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
        }
    }
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

/// Back in the worker: the next write, or the failure (logged once, the session ended
/// when its recording is required), or the queue freed once the session has gone.
///
/// # Safety
/// nginx calls it with the task's event, its data the queue.
unsafe extern "C" fn written(ev: *mut ngx_event_t) {
    // SAFETY: see # Safety.
    let q = unsafe { (*ev).data as *mut Queue };
    // SAFETY: the queue outlives its writes; the write is over, the Job ours again.
    let (queue, job) = unsafe { (&mut *q, &mut *((*(*q).task).ctx as *mut Job)) };
    job.bytes = Vec::new();
    let mut failed =
        (job.err != 0).then(|| record::os_error(&std::io::Error::from_raw_os_error(job.err)));
    if failed.is_none() {
        failed = queue.post().err();
    }
    if let Some(why) = failed {
        queue.waiting.clear();
        record::failure(queue.log(), &queue.path, &why, queue.required);
        // SAFETY: a set session is live (it releases the queue before it goes).
        if let Some(s) = unsafe { queue.session.as_mut() } {
            // The session goes on without it, or ends: its relay acts on it now.
            // SAFETY: s is live; record_file holds this queue and releases it.
            unsafe { super::relay::recording_failed(s, queue.required) };
            return;
        }
    } else if !queue.behind() {
        // SAFETY: a set session is live.
        if let Some(s) = unsafe { queue.session.as_mut() } {
            // SAFETY: s is live; it may end in there: the queue is not touched after.
            unsafe { super::relay::recording_caught_up(s) };
            return;
        }
    }
    if queue.session.is_null() && !queue.busy() {
        // SAFETY: released, nothing in flight.
        unsafe { Queue::free(q) };
    }
}
