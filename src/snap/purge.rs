//! Purge: keep the newest `retain` snapshots and the txn logs they need; delete the rest.
//! As ZooKeeper's PurgeTxnLog (autopurge, zkCleanup.sh): the oldest kept snapshot's zxid Z
//! bounds what is kept; every log that starts after Z is kept, and so is the newest log
//! that starts at or before Z (it holds the txns right after Z).

use super::list_snapshots;
use crate::log::list_segments;
use std::io;
use std::path::{Path, PathBuf};

/// ZooKeeper's quick validity test: at least 10 bytes, ending with the seal's `"/"`.
pub fn looks_complete(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(len) = f.metadata().map(|m| m.len()) else {
        return false;
    };
    if len < 10 || f.seek(SeekFrom::Start(len - 5)).is_err() {
        return false;
    }
    let mut tail = [0u8; 5];
    f.read_exact(&mut tail).is_ok() && tail == [0, 0, 0, 1, b'/']
}

#[derive(Debug, Default)]
pub struct Purged {
    pub kept_snapshots: Vec<PathBuf>,
    pub removed: Vec<PathBuf>,
}

/// Purges `snap_dir`/version-2 and `log_dir`/version-2 (the same directory when the
/// logs live with the snapshots). `retain` below 3 is raised to 3, as ZooKeeper does.
pub fn purge(snap_v2: &Path, log_v2: &Path, retain: usize) -> io::Result<Purged> {
    let retain = retain.max(3);
    let snaps = list_snapshots(snap_v2)?;
    let kept: Vec<_> = snaps
        .iter()
        .filter(|s| s.compressed || looks_complete(&s.path))
        .take(retain)
        .cloned()
        .collect();
    let mut out = Purged {
        kept_snapshots: kept.iter().map(|s| s.path.clone()).collect(),
        ..Default::default()
    };
    let Some(least) = kept.last().map(|s| s.zxid) else {
        return Ok(out);
    };
    for s in &snaps {
        if s.zxid < least {
            std::fs::remove_file(&s.path)?;
            out.removed.push(s.path.clone());
        }
    }
    let logs = list_segments(log_v2)?;
    // The newest log starting at or before `least` is needed; older ones are not.
    if let Some(i) = logs.iter().rposition(|(z, _)| *z <= least) {
        for (_, p) in &logs[..i] {
            std::fs::remove_file(p)?;
            out.removed.push(p.clone());
        }
    }
    Ok(out)
}
