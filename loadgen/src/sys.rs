//! What the OS tells about CPU time and memory: our own (getrusage), the server's (/proc).

use anyhow::{bail, Context, Result};
use std::time::Duration;

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit.
pub fn raise_nofile_limit() -> libc::rlim_t {
    // SAFETY: plain libc calls on a stack struct.
    unsafe {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 0;
        }
        if rl.rlim_cur < rl.rlim_max {
            let want = libc::rlimit {
                rlim_cur: rl.rlim_max,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                return rl.rlim_max;
            }
        }
        rl.rlim_cur
    }
}

/// CPU time (user + system) this process has used so far.
pub fn self_cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// CPU time (utime + stime, all threads) process `pid` has used so far, from /proc/PID/stat.
/// Resolution is one clock tick (usually 10 ms).
pub fn proc_cpu(pid: u32) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let s = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {path}: is process {pid} running?"))?;
    // The command name (field 2) is in parentheses and may hold spaces: skip past its ')'.
    let rest = s
        .rfind(')')
        .map(|i| &s[i + 1..])
        .context("unexpected /proc stat format")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    if f.len() < 13 {
        bail!("unexpected /proc/{pid}/stat format");
    }
    let utime: u64 = f[11].parse().context("utime")?;
    let stime: u64 = f[12].parse().context("stime")?;
    let ticks = utime + stime;
    let hz = clock_ticks_per_sec();
    Ok(Duration::from_micros(ticks * 1_000_000 / hz))
}

/// Machine-wide CPU time from the first line of /proc/stat: (busy, steal). Busy is
/// user + nice + system + irq + softirq, for every process on the machine (others' too),
/// so a run can tell how much CPU something else took while it measured.
pub fn machine_cpu() -> Option<(Duration, Duration)> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let line = s.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    if v.len() < 8 {
        return None;
    }
    let hz = clock_ticks_per_sec();
    let d = |ticks: u64| Duration::from_micros(ticks * 1_000_000 / hz);
    // user nice system idle iowait irq softirq steal
    Some((d(v[0] + v[1] + v[2] + v[5] + v[6]), d(v[7])))
}

/// Online CPUs.
pub fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Context switches (voluntary + involuntary, summed over all threads) of process `pid`
/// so far, from /proc/PID/task/*/status; `None` means this process. A thread that blocks
/// in epoll_wait or on a channel switches out once per wake-up, so switches per op tell
/// how well a server batches its work.
pub fn proc_ctx_switches(pid: Option<u32>) -> Option<u64> {
    let dir = match pid {
        Some(p) => format!("/proc/{p}/task"),
        None => "/proc/self/task".to_string(),
    };
    let mut total = 0u64;
    for t in std::fs::read_dir(dir).ok()?.flatten() {
        let Ok(s) = std::fs::read_to_string(t.path().join("status")) else {
            continue; // the thread just exited
        };
        for l in s.lines() {
            if let Some(v) = l
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    Some(total)
}

/// Resident set size of `pid` in KiB (VmRSS from /proc/PID/status).
pub fn proc_rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let s = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {path}: is process {pid} running?"))?;
    for line in s.lines() {
        if let Some(v) = line.strip_prefix("VmRSS:") {
            let kib = v
                .split_whitespace()
                .next()
                .context("VmRSS without a number")?;
            return kib.parse().context("VmRSS");
        }
    }
    bail!("no VmRSS in {path} (a zombie or kernel thread?)")
}

/// The command name of `pid`, for the report.
pub fn proc_name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".into())
}

/// Pins the calling thread to `cpu`.
pub fn pin_thread(cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET stays within it (checked).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
            bail!("--pin {cpu}: no such CPU");
        }
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            bail!(
                "--pin {cpu}: sched_setaffinity: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_figures() {
        let me = std::process::id();
        assert!(proc_rss_kib(me).unwrap() > 0);
        proc_cpu(me).unwrap();
        assert!(machine_cpu().is_some());
        assert!(proc_ctx_switches(None).is_some());
        let _ = self_cpu();
        assert!(proc_cpu(u32::MAX).is_err());
    }
}
