//! CPU time of other processes, from `/proc/PID/stat`.

use std::time::Duration;

/// User + system CPU time used so far by process `pid`, all its threads
/// included, in clock ticks (usually 10 ms each).
pub fn ticks(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    utime_plus_stime(&stat).ok_or_else(|| format!("{path}: cannot read utime and stime"))
}

/// Fields 14 and 15 (utime, stime) of a `/proc/PID/stat` line; they follow
/// the command name, which is in parentheses and may hold spaces.
fn utime_plus_stime(stat: &str) -> Option<u64> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The length of a clock tick.
pub fn tick() -> Duration {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    Duration::from_nanos(1_000_000_000 / hz)
}

/// The ids of the processes whose parent is `parent` (nginx's workers).
pub fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| parent_of(&stat))
                == Some(parent)
        })
        .collect()
}

/// Field 4 (ppid) of a `/proc/PID/stat` line.
fn parent_of(stat: &str) -> Option<u32> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (nginx: worker) S 4241 4241 4241 0 -1 4194624 1377 0 0 0 \
                        731 58 0 0 20 0 1 0 9157 11931648 1313 18446744073709551615";

    #[test]
    fn reads_cpu_ticks_and_parent() {
        assert_eq!(utime_plus_stime(STAT), Some(789));
        assert_eq!(parent_of(STAT), Some(4241));
        assert_eq!(utime_plus_stime("garbage"), None);
        assert!(ticks(std::process::id()).is_ok());
        assert!(tick() > Duration::ZERO);
    }
}
