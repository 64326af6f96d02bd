//! Snapshots taken by a forked child (ARCHITECTURE, "On disk"): when one is due, the
//! child, its reaping. The writer calls `Snapshots::start` at a txn boundary with what
//! to write, and `reap` now and then; it never waits for the child, and no second child
//! starts while one runs.
//!
//! Holds: the child takes no lock, writes under a temporary name, fsyncs, renames, and
//! leaves with `_exit`; it dies with the server (PR_SET_PDEATHSIG), so nothing goes on
//! writing into the data directory after a kill -9. A child that fails leaves no
//! temporary file behind (the reaper removes it) and is logged; the next snapshot is
//! tried after another snapCount txns.

use super::{snapshot_name, write_file, Source, TMP_PREFIX};
use crate::types::Zxid;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// When to snapshot, and the child writing one.
pub struct Snapshots {
    dir: PathBuf,
    /// Txns applied since the last snapshot began.
    txns: u64,
    /// Snapshot after this many: random in [snapCount/2 + 1, snapCount], as ZooKeeper
    /// draws it, so the servers of an ensemble do not all snapshot at once.
    threshold: u64,
    snap_count: u64,
    rng: u64,
    child: Option<Child>,
}

struct Child {
    pid: libc::pid_t,
    zxid: Zxid,
    started: Instant,
}

/// How a child ended.
pub enum Reaped {
    /// snapshot.<zxid> is written: its size, and how long the child took.
    Written {
        bytes: u64,
        took: Duration,
    },
    Failed,
}

impl Snapshots {
    /// `seed`: the only randomness, drawn once at start-up. `soon`: take one at the
    /// first chance (replayed txns follow the newest snapshot).
    pub fn new(dir: PathBuf, snap_count: u64, seed: u64, soon: bool) -> Snapshots {
        let mut s = Snapshots {
            dir,
            txns: 0,
            threshold: 0,
            snap_count,
            rng: seed | 1,
            child: None,
        };
        s.draw();
        if soon {
            s.txns = s.threshold;
        }
        s
    }

    fn draw(&mut self) {
        // xorshift64*, seeded at start-up.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let half = (self.snap_count / 2).max(1);
        self.threshold = half + 1 + r % half;
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `n` more txns applied.
    pub fn applied(&mut self, n: u64) {
        self.txns += n;
    }

    /// Enough txns since the last one, and no child running.
    pub fn due(&self) -> bool {
        self.txns >= self.threshold && self.child.is_none()
    }

    /// Forks a child that writes `src` (the tree at `zxid`, a txn boundary) and returns
    /// at once with how long the fork paused the caller. Safe to call only where `src`
    /// is consistent and no other thread of this process can be inside the allocator
    /// with a lock the child would need (the writer between batches: see below).
    pub fn start(&mut self, zxid: Zxid, src: &Source<'_>) -> std::io::Result<Duration> {
        let t0 = Instant::now();
        // SAFETY: fork in a threaded process: the child is a copy of this thread only. It
        // reads the tree, the sessions and the ACL cache, which only this thread mutates
        // and which are consistent here (between batches); it allocates only from this
        // thread's own allocator heap (mimalloc's thread-local, lock-free path), takes no
        // lock another thread may have held, logs nothing, and leaves with _exit.
        let parent = unsafe { libc::getpid() };
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            child(&self.dir, parent, zxid, src);
        }
        self.txns = 0;
        if pid < 0 {
            return Err(std::io::Error::last_os_error());
        }
        self.child = Some(Child {
            pid,
            zxid,
            started: t0,
        });
        self.draw();
        Ok(t0.elapsed())
    }

    /// The child's pid and zxid while one runs.
    pub fn running(&self) -> Option<(libc::pid_t, Zxid)> {
        self.child.as_ref().map(|c| (c.pid, c.zxid))
    }

    /// Notes a finished child (logging how it ended); `wait`: for one that still runs,
    /// too (before a learner's TRUNC or SNAP removes snapshots, so none appears behind).
    pub fn reap(&mut self, wait: bool) -> Option<Reaped> {
        let c = self.child.as_ref()?;
        let mut status = 0;
        let flags = if wait { 0 } else { libc::WNOHANG };
        // SAFETY: waits for our own child only.
        let r = unsafe { libc::waitpid(c.pid, &mut status, flags) };
        if r == 0 {
            return None;
        }
        let name = snapshot_name(c.zxid);
        let out = if r == c.pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            let bytes = std::fs::metadata(self.dir.join(&name)).map_or(0, |m| m.len());
            let took = c.started.elapsed();
            log::info!(
                "snapshot {name} written: {bytes} bytes in {} ms",
                took.as_millis()
            );
            Reaped::Written { bytes, took }
        } else {
            let how = if r < 0 {
                std::io::Error::last_os_error().to_string()
            } else if libc::WIFSIGNALED(status) {
                format!("killed by signal {}", libc::WTERMSIG(status))
            } else {
                format!("exit status {}", libc::WEXITSTATUS(status))
            };
            let tmp = self.dir.join(format!("{TMP_PREFIX}{:x}", c.zxid));
            let _ = std::fs::remove_file(tmp);
            log::error!(
                "snapshot {name} failed ({how}); the next one is tried after snapCount txns"
            );
            Reaped::Failed
        };
        self.child = None;
        Some(out)
    }
}

/// The forked child: write the snapshot and leave without running any destructor.
fn child(dir: &Path, parent: libc::pid_t, zxid: Zxid, src: &Source<'_>) -> ! {
    // Die with the server, as ZooKeeper's snapshot thread would: after a kill -9 nothing
    // may go on writing into the data directory. (If the server died before this took
    // hold, this process already has another parent.)
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() != parent {
            libc::_exit(1);
        }
    }
    // Drop every inherited descriptor (client sockets, the log; the lock file's is kept
    // by the parent): a connection the parent closes must not stay open in here.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    // The writer's core pinning came along with the fork: the child would take turns
    // with the writer on one core for the whole snapshot. It may run on any core.
    unpin_current_thread();
    let code = match write_file(dir, zxid, src) {
        Ok(_) => 0,
        Err(e) => {
            let msg = format!("paddock: snapshot 0x{zxid:x} failed: {e}\n");
            unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
            1
        }
    };
    unsafe { libc::_exit(code) }
}

/// Lets the calling thread run on every CPU the process may use (undoes a pinning). A
/// system call only: safe in a forked child.
pub fn unpin_current_thread() {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET stays within its bits. The
    // kernel keeps only the CPUs the process's cpuset allows.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in 0..8 * std::mem::size_of::<libc::cpu_set_t>() {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

#[cfg(test)]
mod tests {
    /// A pinned thread (the writer; a snapshot child inherits its mask) gets every CPU
    /// the process may use back.
    #[test]
    fn unpinning_restores_every_allowed_cpu() {
        let all = core_affinity::get_core_ids().expect("cpu mask");
        std::thread::spawn(move || {
            core_affinity::set_for_current(all[0]);
            assert_eq!(core_affinity::get_core_ids().unwrap().len(), 1);
            super::unpin_current_thread();
            assert_eq!(core_affinity::get_core_ids().unwrap().len(), all.len());
        })
        .join()
        .unwrap();
    }

    /// The threshold is drawn in [snapCount/2 + 1, snapCount], and `soon` makes one due
    /// at once.
    #[test]
    fn a_snapshot_is_due_between_half_and_all_of_snap_count() {
        for seed in 1..200u64 {
            let mut s = super::Snapshots::new("/nonexistent".into(), 100, seed, false);
            assert!(!s.due());
            s.applied(50);
            assert!(!s.due(), "never at half");
            s.applied(50);
            assert!(s.due(), "always at snapCount");
        }
        assert!(super::Snapshots::new("/nonexistent".into(), 100, 7, true).due());
    }
}
