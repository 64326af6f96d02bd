//! Txn log segments: `version-2/log.<zxid of first txn, hex>`, Apache ZooKeeper's format.
//!
//! File   = Header Record* ZeroPad;  Header = magic "ZKLG" · int version (2) · long dbid (0)
//! Record = long checksum (Adler32 of Txn) · int len · Txn (len bytes) · byte 0x42
//! Txn    = TxnHeader · body (txn/mod.rs) [· TxnDigest, written by ZooKeeper 3.6+, ignored]
//!
//! Segments are preallocated with `posix_fallocate` (real blocks: a full disk fails the
//! allocation, not a later write) and zero-filled a stretch ahead of the records: on ext4
//! a fallocated extent is "unwritten", and the first write into it makes the next sync
//! commit the journal too (3 disk writes per sync instead of 2, 1.5-1.8x slower at batches
//! of 16-256). Segments are read back through `memmap2` on recovery.
//! How records reach the disk was chosen by `benches/txnlog.rs` (figures in
//! benches/RESULTS.md): records of a batch are gathered in memory and written with one
//! `pwrite`, then one `fdatasync` makes the batch durable (group commit).
//! Records are written once and read back only by recovery and a learner's sync, so
//! durable records leave the page cache as the log goes (`DROP_BEHIND`): the log never
//! fills the machine's memory with pages nobody reads.
//!
//! Holds: `sync` returns only when every appended record is durable (unless forceSync=no);
//! a failed write or sync poisons the log and every later call fails: it is never retried.
//! Recovery stops at the first torn or corrupt record and truncates the segment there.
//! Not here: when to sync (server/writer/, stage 5); what to write (txn/).

use crate::types::Zxid;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const LOG_MAGIC: i32 = 0x5A4B4C47;
pub const LOG_VERSION: i32 = 2;
pub const HEADER_BYTES: u64 = 16;
pub const RECORD_TRAILER: u8 = 0x42;
/// How far ahead of the last record a segment is zero-filled (see `Segment::zeroed`).
pub const ZERO_AHEAD: u64 = 1 << 20;
/// How many bytes of durable records a segment keeps in the page cache before they are
/// dropped from it (`posix_fadvise(DONTNEED)`, which drops clean pages only). Without
/// this, a day of writes leaves gigabytes of cached log, and on the 2-core VM a server's
/// p99 grew with that cache: five 0%-reads runs in a row on one server, 3.2-5.7 ms in
/// the first three and 7.2-10.1 ms in the last two; with this, 3.8-5.2 ms throughout
/// (tuning/runs/2026-12-04-vm/series-log-cache.txt). A drop costs the syncing writer
/// about 60 us per MB, so it goes in small steps.
pub const DROP_BEHIND: u64 = 1 << 20;

#[derive(Debug, Error)]
pub enum LogError {
    #[error("{}: record at byte {offset} fails its checksum", .segment.display())]
    Corrupt { segment: PathBuf, offset: u64 },
    #[error("txn log poisoned by a failed write or sync; restart to recover")]
    Poisoned,
    /// No space to preallocate for the next records: nothing of them was written, the
    /// log is intact, and appending works again once space is freed.
    #[error("{}: no space left to preallocate the txn log ({error})", .path.display())]
    NoSpace { path: PathBuf, error: io::Error },
    #[error("{}: {error}", .path.display())]
    Io { path: PathBuf, error: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LogError + '_ {
    move |error| LogError::Io {
        path: path.to_owned(),
        error,
    }
}

/// The log as the writer uses it.
pub trait TxnLog {
    /// Queues one record; durable only after `sync`.
    fn append(&mut self, zxid: Zxid, txn: &[u8]) -> Result<(), LogError>;
    /// Makes everything appended durable; returns the last durable zxid.
    fn sync(&mut self) -> Result<Zxid, LogError>;
    /// Drops what was appended since the last sync (after `NoSpace`: none of it was
    /// written).
    fn discard(&mut self);
    /// Ends the current segment: the next append starts `log.<its zxid>`. Called with
    /// nothing pending, at a snapshot, as ZooKeeper rolls its log.
    fn roll(&mut self) -> Result<(), LogError>;
    /// Drops every record after `zxid`, on disk too (a learner's TRUNC); the next
    /// append starts a new segment.
    fn truncate_after(&mut self, zxid: Zxid) -> Result<(), LogError>;
    /// Removes every segment (a learner installed its leader's snapshot at `zxid`); the
    /// next append starts a new segment.
    fn reset(&mut self, zxid: Zxid) -> Result<(), LogError>;
}

pub use crate::proto::adler32::adler32;

pub fn segment_name(first_zxid: Zxid) -> String {
    format!("log.{:x}", first_zxid)
}

/// Segments in `dir`, oldest first.
pub fn list_segments(dir: &Path) -> io::Result<Vec<(Zxid, PathBuf)>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(hex) = name.strip_prefix("log.") {
            if let Ok(z) = i64::from_str_radix(hex, 16) {
                v.push((z, e.path()));
            }
        }
    }
    v.sort();
    Ok(v)
}

/// Appends one framed record (checksum, length, payload, trailer) to `out`.
pub fn frame_record(txn: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(adler32(txn) as i64).to_be_bytes());
    out.extend_from_slice(&(txn.len() as i32).to_be_bytes());
    out.extend_from_slice(txn);
    out.push(RECORD_TRAILER);
}

/// Why reading a segment stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Tail {
    /// Zero padding or end of file: a clean end.
    Clean,
    /// A record cut short or without its trailer byte: a write the crash interrupted.
    Torn,
    /// A whole record whose checksum does not match.
    Corrupt,
}

/// Reads the records of one segment's bytes. Calls `f(offset, payload)` per good record.
/// Returns the offset just past the last good record and why reading stopped.
pub fn scan_segment(
    bytes: &[u8],
    mut f: impl FnMut(u64, &[u8]) -> bool,
) -> Result<(u64, Tail), &'static str> {
    if bytes.len() < HEADER_BYTES as usize {
        return Ok((0, Tail::Torn));
    }
    let magic = i32::from_be_bytes(bytes[0..4].try_into().unwrap());
    if magic != LOG_MAGIC {
        return Err("not a txn log (bad magic)");
    }
    let mut pos = HEADER_BYTES as usize;
    loop {
        if pos + 12 > bytes.len() {
            let rest = &bytes[pos..];
            return Ok((
                pos as u64,
                if rest.iter().all(|&b| b == 0) {
                    Tail::Clean
                } else {
                    Tail::Torn
                },
            ));
        }
        let sum = i64::from_be_bytes(bytes[pos..pos + 8].try_into().unwrap());
        let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap());
        if len == 0 && sum == 0 {
            return Ok((pos as u64, Tail::Clean));
        }
        if len <= 0 || pos + 12 + len as usize + 1 > bytes.len() {
            return Ok((pos as u64, Tail::Torn));
        }
        let payload = &bytes[pos + 12..pos + 12 + len as usize];
        if bytes[pos + 12 + len as usize] != RECORD_TRAILER {
            return Ok((pos as u64, Tail::Torn));
        }
        if adler32(payload) as i64 != sum {
            return Ok((pos as u64, Tail::Corrupt));
        }
        if !f(pos as u64, payload) {
            return Ok((pos as u64, Tail::Clean));
        }
        pos += 12 + len as usize + 1;
    }
}

/// The real log: preallocated segment files, pwrite + fdatasync group commit.
pub struct FileTxnLog {
    dir: PathBuf,
    prealloc_bytes: u64,
    force_sync: bool,
    /// Benchmark-only: sleep this long after each sync, to model slow media.
    pub sync_delay_us: u64,
    segment: Option<Segment>,
    pending: Vec<u8>,
    pending_last: Zxid,
    durable: Zxid,
    poisoned: bool,
    pub syncs: u64,
    /// The volume had less than `prealloc_bytes` free at the last preallocation (said
    /// once, until a whole one fits again).
    prealloc_short: bool,
}

struct Segment {
    path: PathBuf,
    file: File,
    /// Where the next record goes.
    offset: u64,
    allocated: u64,
    /// Bytes from 0 that have been written (with zeros, at least): on ext4 the first write
    /// into a fallocated ("unwritten") extent costs a journal commit at the next sync.
    zeroed: u64,
    /// Where the records still in the page cache begin (see `DROP_BEHIND`).
    cached_from: u64,
}

impl Segment {
    /// Drops the page cache of the records in `cached_from..upto` (rounded down to a
    /// page). The pages must be clean (synced), or the kernel would start writing them.
    fn drop_cache(&mut self, upto: u64) {
        let upto = upto & !4095;
        if upto <= self.cached_from {
            return;
        }
        // Advice only: a failure costs memory, never data, so it is not an error.
        unsafe {
            libc::posix_fadvise(
                self.file.as_raw_fd(),
                self.cached_from as libc::off_t,
                (upto - self.cached_from) as libc::off_t,
                libc::POSIX_FADV_DONTNEED,
            )
        };
        self.cached_from = upto;
    }
}

impl FileTxnLog {
    /// Opens the log directory for appending. Recovery (`recover`) runs before this.
    pub fn open(
        dir: &Path,
        prealloc_bytes: u64,
        force_sync: bool,
        last_zxid: Zxid,
    ) -> Result<FileTxnLog, LogError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        Ok(FileTxnLog {
            dir: dir.to_owned(),
            prealloc_bytes: prealloc_bytes.max(4096),
            force_sync,
            sync_delay_us: 0,
            segment: None,
            pending: Vec::with_capacity(1 << 16),
            pending_last: last_zxid,
            durable: last_zxid,
            poisoned: false,
            syncs: 0,
            prealloc_short: false,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn start_segment(&mut self, first: Zxid) -> Result<(), LogError> {
        let path = self.dir.join(segment_name(first));
        if path.exists() {
            // A crash after the roll made this segment but before any of its records was
            // durable; recovery left it with no record (else `first` would be past them).
            let bytes = std::fs::read(&path).map_err(io_err(&path))?;
            let mut records = 0;
            let _ = scan_segment(&bytes, |_, _| {
                records += 1;
                false
            });
            if records > 0 {
                return Err(LogError::Io {
                    path,
                    error: io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "segment exists and holds records: refusing to overwrite it",
                    ),
                });
            }
            log::warn!(
                "{}: replacing an empty segment left by a crash",
                path.display()
            );
            std::fs::remove_file(&path).map_err(io_err(&path))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let mut hdr = Vec::with_capacity(16);
        hdr.extend_from_slice(&LOG_MAGIC.to_be_bytes());
        hdr.extend_from_slice(&LOG_VERSION.to_be_bytes());
        hdr.extend_from_slice(&0i64.to_be_bytes());
        file.write_all_at(&hdr, 0).map_err(io_err(&path))?;
        let mut seg = Segment {
            path,
            file,
            offset: HEADER_BYTES,
            allocated: 0,
            zeroed: HEADER_BYTES,
            cached_from: 0,
        };
        if let Err(e) = self.preallocate(&mut seg, 4096) {
            // Leave no segment behind: the next append makes it again.
            drop(seg.file);
            let _ = std::fs::remove_file(&seg.path);
            return Err(e);
        }
        // The new name must survive a crash before its first record counts.
        sync_dir(&self.dir)?;
        self.segment = Some(seg);
        Ok(())
    }

    fn write_pending(&mut self) -> Result<(), LogError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut seg = self.segment.take().expect("append starts a segment");
        let end = seg.offset + self.pending.len() as u64;
        if end + 4096 > seg.allocated {
            let need = end + 4096 - seg.allocated;
            let grown = self.preallocate(&mut seg, need);
            self.segment = Some(seg);
            grown?;
        } else {
            self.segment = Some(seg);
        }
        let seg = self.segment.as_mut().expect("put back");
        if end > seg.zeroed {
            // Zero the next stretch ahead of the records, so record writes land in
            // written blocks; the zeros reach the disk with this batch's sync, once per
            // ZERO_AHEAD bytes of log.
            let upto = (end + ZERO_AHEAD).min(seg.allocated).max(end);
            let zeros = vec![0u8; (upto - seg.zeroed) as usize];
            seg.file
                .write_all_at(&zeros, seg.zeroed)
                .map_err(io_err(&seg.path))?;
            seg.zeroed = upto;
        }
        seg.file
            .write_all_at(&self.pending, seg.offset)
            .map_err(io_err(&seg.path))?;
        seg.offset = end;
        self.pending.clear();
        Ok(())
    }
}

impl FileTxnLog {
    /// Preallocates at least `need` more bytes of `seg`: `preAllocSize` when the volume
    /// has that much, else what it has (halving down to `need`), so that a volume
    /// smaller than `preAllocSize` takes records until it is really full instead of
    /// refusing every write. Said once when it falls short, and when it no longer does.
    fn preallocate(&mut self, seg: &mut Segment, need: u64) -> Result<(), LogError> {
        let need = need.max(1).next_multiple_of(4096);
        let want = self.prealloc_bytes.max(need);
        let mut size = want;
        loop {
            match preallocate(seg, size) {
                Ok(()) => {
                    if size < want && !self.prealloc_short {
                        self.prealloc_short = true;
                        log::warn!(
                            "{}: less than preAllocSize ({} KiB) free for the txn log: \
                             preallocating {} KiB at a time; writes are refused when the \
                             volume is full",
                            seg.path.display(),
                            want / 1024,
                            size / 1024
                        );
                    } else if size == want && self.prealloc_short {
                        self.prealloc_short = false;
                        log::info!(
                            "{}: preallocating preAllocSize ({} KiB) again",
                            seg.path.display(),
                            want / 1024
                        );
                    }
                    return Ok(());
                }
                Err(LogError::NoSpace { .. }) if size > need => {
                    size = (size / 2).next_multiple_of(4096).max(need);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn preallocate(seg: &mut Segment, bytes: u64) -> Result<(), LogError> {
    let rc = unsafe {
        libc::posix_fallocate(
            seg.file.as_raw_fd(),
            seg.allocated as libc::off_t,
            bytes as libc::off_t,
        )
    };
    if rc != 0 {
        let error = io::Error::from_raw_os_error(rc);
        let path = seg.path.clone();
        return Err(if rc == libc::ENOSPC || rc == libc::EDQUOT {
            LogError::NoSpace { path, error }
        } else {
            LogError::Io { path, error }
        });
    }
    seg.allocated += bytes;
    Ok(())
}

pub fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

impl TxnLog for FileTxnLog {
    fn append(&mut self, zxid: Zxid, txn: &[u8]) -> Result<(), LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        assert!(zxid > self.pending_last, "txns are appended in zxid order");
        if self.segment.is_none() {
            if let Err(e) = self.start_segment(zxid) {
                if !matches!(e, LogError::NoSpace { .. }) {
                    self.poisoned = true;
                }
                return Err(e);
            }
        }
        frame_record(txn, &mut self.pending);
        self.pending_last = zxid;
        Ok(())
    }

    fn sync(&mut self) -> Result<Zxid, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        if self.pending_last == self.durable {
            return Ok(self.durable);
        }
        if let Err(e) = self.write_pending() {
            if !matches!(e, LogError::NoSpace { .. }) {
                self.poisoned = true;
            }
            return Err(e);
        }
        if self.force_sync {
            let seg = self.segment.as_mut().expect("records imply a segment");
            if let Err(error) = seg.file.sync_data() {
                self.poisoned = true;
                return Err(LogError::Io {
                    path: seg.path.clone(),
                    error,
                });
            }
            self.syncs += 1;
            if seg.offset >= seg.cached_from + DROP_BEHIND {
                seg.drop_cache(seg.offset);
            }
        }
        if self.sync_delay_us > 0 {
            std::thread::sleep(std::time::Duration::from_micros(self.sync_delay_us));
        }
        self.durable = self.pending_last;
        Ok(self.durable)
    }

    fn discard(&mut self) {
        self.pending.clear();
        self.pending_last = self.durable;
    }

    fn roll(&mut self) -> Result<(), LogError> {
        if self.pending_last != self.durable {
            self.sync()?;
        }
        if let Some(mut seg) = self.segment.take() {
            if self.force_sync {
                // Everything written is synced: none of it need stay cached.
                seg.drop_cache(seg.zeroed.next_multiple_of(4096));
            }
            // Give back the preallocated tail: a finished segment keeps only its records
            // (readers, ZooKeeper's too, take the end of the file as a clean end). Not
            // synced: if the crash comes first, the zeros are still a clean end.
            if let Err(e) = seg.file.set_len(seg.offset) {
                log::warn!(
                    "{}: cannot trim the preallocated tail: {e}",
                    seg.path.display()
                );
            }
        }
        Ok(())
    }

    fn truncate_after(&mut self, zxid: Zxid) -> Result<(), LogError> {
        for (first, path) in self.close_for_rewrite()? {
            if first > zxid {
                remove_segment(&path)?;
            } else if cut_segment_after(&path, zxid)? {
                log::info!("{}: truncated after zxid 0x{zxid:x}", path.display());
            }
        }
        self.rewritten(zxid)
    }

    fn reset(&mut self, zxid: Zxid) -> Result<(), LogError> {
        for (_, path) in self.close_for_rewrite()? {
            remove_segment(&path)?;
        }
        self.rewritten(zxid)
    }
}

impl FileTxnLog {
    /// Syncs, closes the current segment and lists the segments, oldest first.
    fn close_for_rewrite(&mut self) -> Result<Vec<(Zxid, PathBuf)>, LogError> {
        self.roll()?;
        list_segments(&self.dir).map_err(io_err(&self.dir))
    }

    fn rewritten(&mut self, zxid: Zxid) -> Result<(), LogError> {
        sync_dir(&self.dir)?;
        self.pending.clear();
        self.pending_last = zxid;
        self.durable = zxid;
        Ok(())
    }
}

/// The zxid of a record's payload (its TxnHeader: client id i64 · cxid i32 · zxid i64).
fn record_zxid(payload: &[u8]) -> Option<Zxid> {
    payload
        .get(12..20)
        .map(|b| i64::from_be_bytes(b.try_into().unwrap()))
}

/// Removes one segment file (the caller syncs the directory).
fn remove_segment(path: &Path) -> Result<(), LogError> {
    std::fs::remove_file(path).map_err(io_err(path))
}

/// Cuts `path` just before its first record past `zxid`; false if it has none.
fn cut_segment_after(path: &Path, zxid: Zxid) -> Result<bool, LogError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let mut cut = None;
    let _ = scan_segment(&bytes, |offset, payload| {
        if record_zxid(payload).is_some_and(|z| z > zxid) {
            cut = Some(offset);
            return false;
        }
        true
    });
    let Some(offset) = cut else {
        return Ok(false);
    };
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    f.set_len(offset).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))?;
    Ok(true)
}

/// What recovery found.
#[derive(Debug, Default)]
pub struct Recovered {
    pub last_zxid: Zxid,
    pub records: u64,
    pub truncated: Vec<String>,
}

/// Replays the records through `f`, oldest first, skipping segments that hold only
/// records up to `after` (`f` skips the rest of those itself); truncates a torn or
/// corrupt tail (logging what it dropped). Stops the replay at the first damaged record:
/// records after it, in this segment or later ones, are not trusted.
pub fn recover<E: std::fmt::Display>(
    dir: &Path,
    after: Zxid,
    mut f: impl FnMut(&[u8]) -> Result<Zxid, E>,
) -> Result<Recovered, LogError> {
    let mut out = Recovered {
        last_zxid: after,
        ..Default::default()
    };
    if !dir.exists() {
        return Ok(out);
    }
    let segments = list_segments(dir).map_err(io_err(dir))?;
    let mut damaged = false;
    for (i, (_, path)) in segments.iter().enumerate() {
        let path = path.clone();
        // Every record of this segment precedes the next one's first: all <= after.
        if segments
            .get(i + 1)
            .is_some_and(|(next, _)| *next <= after + 1)
        {
            continue;
        }
        if damaged {
            log::warn!("{}: removed, it follows a damaged record", path.display());
            std::fs::remove_file(&path).map_err(io_err(&path))?;
            out.truncated
                .push(format!("{}: whole segment", path.display()));
            continue;
        }
        let file = File::open(&path).map_err(io_err(&path))?;
        let len = file.metadata().map_err(io_err(&path))?.len();
        if len == 0 {
            continue;
        }
        // SAFETY: the segment is not written by anyone while recovery reads it.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err(&path))?;
        let mut apply_err = None;
        let (end, tail) = scan_segment(&map, |off, payload| match f(payload) {
            Ok(z) => {
                out.last_zxid = out.last_zxid.max(z);
                out.records += 1;
                true
            }
            Err(e) => {
                apply_err = Some((off, e));
                false
            }
        })
        .map_err(|e| LogError::Io {
            path: path.clone(),
            error: io::Error::new(io::ErrorKind::InvalidData, e),
        })?;
        if let Some((off, e)) = apply_err {
            return Err(LogError::Io {
                path: path.clone(),
                error: io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("record at byte {off}: {e}"),
                ),
            });
        }
        drop(map);
        if tail != Tail::Clean {
            damaged = true;
            let what = format!(
                "{}: {:?} record at byte {end}, {} bytes dropped",
                path.display(),
                tail,
                len - end
            );
            log::warn!("txn log tail truncated: {what}");
            out.truncated.push(what);
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_err(&path))?;
            f.set_len(end).map_err(io_err(&path))?;
            f.sync_all().map_err(io_err(&path))?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn adler_known_value() {
        assert_eq!(adler32(b"Wikipedia"), 0x11E60398);
        assert_eq!(adler32(b""), 1);
    }
}
