//! CPU clocks: of a given thread (`pthread_getcpuclockid`), of the calling
//! thread, and of another process (`/proc/PID/stat`).

use std::io;
use std::os::unix::thread::JoinHandleExt;
use std::thread::JoinHandle;
use std::time::Duration;

/// A thread's CPU-time clock, readable from any thread of the process.
#[derive(Debug, Clone, Copy)]
pub struct ThreadClock(libc::clockid_t);

impl ThreadClock {
    /// The clock of the thread behind `handle` (valid while it runs).
    pub fn of<T>(handle: &JoinHandle<T>) -> io::Result<ThreadClock> {
        let mut id: libc::clockid_t = 0;
        // SAFETY: the pthread_t belongs to a live, joinable thread (we hold
        // its JoinHandle); `id` is a valid out-pointer.
        let rc = unsafe { libc::pthread_getcpuclockid(handle.as_pthread_t(), &mut id) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(ThreadClock(id))
    }

    /// The calling thread's clock, readable from any thread of the
    /// process while the calling thread runs.
    pub fn of_current_thread() -> io::Result<ThreadClock> {
        let mut id: libc::clockid_t = 0;
        // SAFETY: pthread_self() is the live calling thread; `id` is a
        // valid out-pointer.
        let rc = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(ThreadClock(id))
    }

    /// The calling thread's clock (valid only when read by that thread).
    pub fn current() -> ThreadClock {
        ThreadClock(libc::CLOCK_THREAD_CPUTIME_ID)
    }

    /// CPU time used so far (user + system), nanosecond resolution.
    pub fn now(self) -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out-pointer; an invalid clock id only
        // makes the call fail.
        let rc = unsafe { libc::clock_gettime(self.0, &mut ts) };
        if rc != 0 {
            return Duration::ZERO;
        }
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}

/// CPU time (user + system) used so far by process `pid`, from
/// `/proc/PID/stat` — clock-tick resolution (usually 10 ms).
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        return None;
    }
    Some(Duration::from_secs_f64((utime + stime) as f64 / hz as f64))
}

/// The 1-, 5- and 15-minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_advance() {
        let c = ThreadClock::current();
        let t0 = c.now();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(c.now() > t0, "{x}");
        assert!(process_cpu(std::process::id()).is_some());
        let handle = std::thread::spawn(std::thread::park);
        let clock = ThreadClock::of(&handle).unwrap();
        let _ = clock.now();
        handle.thread().unpark();
        handle.join().unwrap();
    }
}
