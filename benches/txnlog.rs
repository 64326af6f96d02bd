//! How a txn record reaches the disk: five ways side by side, on one filesystem.
//!
//! Each measured iteration is one batch of 1, 16 or 256 records of 150 bytes (framed as in
//! log/mod.rs: checksum, length, a setData txn, trailer) followed by one durability point,
//! so criterion's time is the time per sync and its throughput is records/s:
//! - `a_filetxnlog`: `log::FileTxnLog` (the production path): `append` each record, `sync`
//!   = one `pwrite` of the batch + `fdatasync`, into a `posix_fallocate`d segment.
//! - `b_mmap_msync`: stores into a `memmap2::MmapMut` of a `posix_fallocate`d file, then
//!   `msync(MS_SYNC)` of the touched pages.
//! - `c_mmap_fdatasync`: the same stores, then `fdatasync` of the file.
//! - `d_mmap_random_fdatasync`: (c) with `madvise(MADV_RANDOM)` on the mapping.
//! - `e_odirect_dsync`: `O_DIRECT|O_DSYNC` `pwrite` of the 4 KiB blocks the batch touches,
//!   rewriting the partial tail block each time, into a `posix_fallocate`d file.
//!
//! Two more isolate what the filesystem's bookkeeping of `posix_fallocate`d (unwritten)
//! extents costs at each sync, by writing into a 64 MiB file whose blocks were already
//! written with zeros and synced (a recycled segment), wrapping at its end:
//! - `f_written_pwrite_fdatasync`: (a)'s syscalls (gather, one `pwrite`, `fdatasync`).
//! - `g_written_odirect_dsync`: (e) into written blocks.
//!
//! For (a) to (e) every sample starts a fresh file sized for all of its batches (set up,
//! synced once, and removed outside the timed region), so none grows a file or reuses
//! blocks while timed. Files live in a temp dir under `target/tmp` (cargo's
//! CARGO_TARGET_TMPDIR, on the project's filesystem, never tmpfs); the filesystem type is
//! printed first. Test mode (`cargo test --benches`) runs each variant once and reads back
//! what it wrote (through `log::recover` for (a)). Results: benches/RESULTS.md.

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use paddock::log::{adler32, frame_record, FileTxnLog, TxnLog, RECORD_TRAILER};
use paddock::proto::Writer;
use paddock::txn::{encode_record, Txn, TxnHeader};
use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const RECORD_BYTES: usize = 150;
const BATCHES: [usize; 3] = [1, 16, 256];
const BLOCK_BYTES: usize = 4096;
const _: () = assert!(BLOCK_BYTES.is_power_of_two());

/// The payload of one setData record; framed it is exactly `RECORD_BYTES`.
fn record_payload() -> Vec<u8> {
    let txn = Txn::SetData {
        path: "/service-0042/node-0000012345".into(),
        data: Some(vec![b'x'; 64]),
        version: 3,
    };
    let hdr = TxnHeader {
        client_id: 0x1000_0000_0000_0001,
        cxid: 7,
        zxid: 1,
        time: 1_700_000_000_000,
        op: txn.op(),
    };
    let mut w = Writer::new();
    encode_record(&hdr, &txn, &mut w);
    let mut framed = Vec::new();
    frame_record(&w.buf, &mut framed);
    assert_eq!(framed.len(), RECORD_BYTES, "framed record size");
    w.buf
}

/// `log::frame_record` written in place (into a mapping or an aligned buffer).
fn frame_into(txn: &[u8], out: &mut [u8]) -> usize {
    let n = 12 + txn.len() + 1;
    out[..8].copy_from_slice(&(adler32(txn) as i64).to_be_bytes());
    out[8..12].copy_from_slice(&(txn.len() as i32).to_be_bytes());
    out[12..12 + txn.len()].copy_from_slice(txn);
    out[12 + txn.len()] = RECORD_TRAILER;
    n
}

fn framed(txn: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_BYTES);
    frame_record(txn, &mut out);
    out
}

fn round_up(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

fn fallocate(file: &File, bytes: u64) {
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, bytes as libc::off_t) };
    assert_eq!(
        rc,
        0,
        "posix_fallocate: {}",
        std::io::Error::from_raw_os_error(rc)
    );
}

/// A file that is removed when dropped.
struct Scratch {
    path: PathBuf,
    file: File,
}

impl Scratch {
    /// `bytes` (block-rounded) of `posix_fallocate`d, or zero-written, blocks; synced.
    fn new(dir: &Path, name: &str, bytes: u64, prezero: bool, flags: i32) -> Scratch {
        let path = dir.join(name);
        let bytes = round_up(bytes, BLOCK_BYTES as u64);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .custom_flags(flags)
            .open(&path)
            .expect("create scratch file");
        if prezero {
            let mut zeros = AlignedBuf::new(1 << 20); // aligned, for O_DIRECT files
            let zeros = zeros.bytes();
            let mut at = 0;
            while at < bytes {
                let n = zeros.len().min((bytes - at) as usize);
                file.write_all_at(&zeros[..n], at).expect("zero fill");
                at += n as u64;
            }
        } else {
            fallocate(&file, bytes);
        }
        file.sync_all().expect("sync scratch file");
        Scratch { path, file }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        sync_parent(&self.path);
    }
}

/// Commits a removal now (on a `discard` mount, ext4 trims freed blocks at that journal
/// commit), so that it does not land in the next sample's timed syncs.
fn sync_parent(path: &Path) {
    let dir = path.parent().expect("scratch files live in a dir");
    File::open(dir)
        .and_then(|d| d.sync_all())
        .expect("sync dir");
}

/// Test mode only: the file starts with `count` copies of `framed`, then zeros.
fn check_records(path: &Path, framed: &[u8], count: usize) {
    if bench_mode() {
        return;
    }
    let file = File::open(path).expect("open to read back"); // without O_DIRECT
    let mut bytes = vec![0u8; framed.len() * count + BLOCK_BYTES];
    let n = file.read_at(&mut bytes, 0).expect("read back");
    assert!(n >= framed.len() * count, "file holds every record");
    for (i, r) in bytes[..framed.len() * count]
        .chunks(framed.len())
        .enumerate()
    {
        assert_eq!(r, framed, "record {i}");
    }
    assert!(
        bytes[framed.len() * count..n].iter().all(|&b| b == 0),
        "zeros follow"
    );
}

fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// (a): the production log in a fresh directory, its segment started outside the clock.
fn run_filetxnlog(dir: &Path, txn: &[u8], batch: usize, iters: u64) -> Duration {
    let log_dir = dir.join("a");
    let bytes = iters * (batch * RECORD_BYTES) as u64 + (1 << 20);
    let mut log = FileTxnLog::open(&log_dir, bytes, true, 0).expect("open log");
    let mut zxid = 1;
    log.append(zxid, txn).expect("append");
    log.sync().expect("sync");
    let start = clock_start();
    for _ in 0..iters {
        for _ in 0..batch {
            zxid += 1;
            log.append(zxid, txn).expect("append");
        }
        assert_eq!(log.sync().expect("sync"), zxid);
    }
    let took = clock_stop(start, iters);
    drop(log);
    if !bench_mode() {
        let mut replayed = 0u64;
        paddock::log::recover(
            &log_dir,
            0,
            |payload| -> Result<i64, std::convert::Infallible> {
                assert_eq!(payload, txn);
                replayed += 1;
                Ok(replayed as i64)
            },
        )
        .expect("recover");
        assert_eq!(replayed, 1 + iters * batch as u64);
    }
    std::fs::remove_dir_all(&log_dir).expect("remove log dir");
    sync_parent(&log_dir);
    took
}

#[derive(Clone, Copy, PartialEq)]
enum MapSync {
    Msync,
    Fdatasync,
    RandomFdatasync,
}

/// (b), (c), (d): stores into a shared mapping, then one msync or fdatasync.
fn run_mmap(dir: &Path, txn: &[u8], batch: usize, iters: u64, how: MapSync) -> Duration {
    let bytes = iters * (batch * RECORD_BYTES) as u64;
    let f = Scratch::new(dir, "mmap", bytes, false, 0);
    // SAFETY: the scratch file is this process's alone and outlives the mapping.
    let mut map = unsafe { memmap2::MmapMut::map_mut(&f.file) }.expect("mmap");
    if how == MapSync::RandomFdatasync {
        map.advise(memmap2::Advice::Random).expect("madvise");
    }
    let mut at = 0usize;
    let start = clock_start();
    for _ in 0..iters {
        let first = at;
        for _ in 0..batch {
            at += frame_into(txn, &mut map[at..]);
        }
        match how {
            MapSync::Msync => map.flush_range(first, at - first).expect("msync"),
            MapSync::Fdatasync | MapSync::RandomFdatasync => f.file.sync_data().expect("fdatasync"),
        }
    }
    let took = clock_stop(start, iters);
    check_records(&f.path, &framed(txn), iters as usize * batch);
    took
}

/// A zeroed, block-aligned buffer for O_DIRECT.
struct AlignedBuf {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl AlignedBuf {
    fn new(bytes: usize) -> AlignedBuf {
        let layout = std::alloc::Layout::from_size_align(bytes, BLOCK_BYTES).unwrap();
        // SAFETY: the layout's size is non-zero.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        AlignedBuf { ptr, layout }
    }
    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: ptr holds layout.size() initialised bytes, borrowed mutably through self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

/// (e) and (g): O_DIRECT|O_DSYNC pwrite of the touched blocks; the partial tail block is
/// kept in memory and written again, with the next records, by the next batch. Starts at
/// byte 0 and wraps there when a write would pass `limit`.
fn odirect_batches(file: &File, limit: u64, txn: &[u8], batch: usize, iters: u64) -> Duration {
    let mut buf = AlignedBuf::new(round_up((batch * RECORD_BYTES) as u64, 4096) as usize + 4096);
    let buf = buf.bytes();
    let mut tail_block_at = 0u64;
    let mut tail_len = 0usize;
    let start = clock_start();
    for _ in 0..iters {
        let mut end = tail_len;
        for _ in 0..batch {
            end += frame_into(txn, &mut buf[end..]);
        }
        let write_len = round_up(end as u64, BLOCK_BYTES as u64) as usize;
        buf[end..write_len].fill(0);
        if tail_block_at + write_len as u64 > limit {
            tail_block_at = 0;
        }
        file.write_all_at(&buf[..write_len], tail_block_at)
            .expect("O_DIRECT pwrite");
        let full = end / BLOCK_BYTES * BLOCK_BYTES;
        buf.copy_within(full..end, 0);
        tail_block_at += full as u64;
        tail_len = end - full;
    }
    clock_stop(start, iters)
}

/// (a)'s syscalls without the log around them: gather the batch, one pwrite, one
/// fdatasync. Starts at byte 0 and wraps there when a write would pass `limit`.
fn pwrite_batches(file: &File, limit: u64, txn: &[u8], batch: usize, iters: u64) -> Duration {
    let mut pending = Vec::with_capacity(batch * RECORD_BYTES);
    let mut at = 0u64;
    let start = clock_start();
    for _ in 0..iters {
        pending.clear();
        for _ in 0..batch {
            frame_record(txn, &mut pending);
        }
        if at + pending.len() as u64 > limit {
            at = 0;
        }
        file.write_all_at(&pending, at).expect("pwrite");
        at += pending.len() as u64;
        file.sync_data().expect("fdatasync");
    }
    clock_stop(start, iters)
}

/// (e): into a fresh `posix_fallocate`d file.
fn run_odirect(dir: &Path, txn: &[u8], batch: usize, iters: u64) -> Duration {
    let bytes = iters * (batch * RECORD_BYTES) as u64 + BLOCK_BYTES as u64;
    let f = Scratch::new(dir, "odirect", bytes, false, libc::O_DIRECT | libc::O_DSYNC);
    let took = odirect_batches(&f.file, u64::MAX, txn, batch, iters);
    check_records(&f.path, &framed(txn), iters as usize * batch);
    took
}

/// A file of blocks already written (with zeros) and synced, reused by every sample:
/// what a log that recycles its segments writes into.
struct Ring {
    f: Scratch,
    bytes: u64,
}

impl Ring {
    fn new(dir: &Path, name: &str, flags: i32) -> Ring {
        let bytes = if bench_mode() { 64 << 20 } else { 1 << 20 };
        Ring {
            f: Scratch::new(dir, name, bytes, true, flags),
            bytes,
        }
    }
    /// (f): pwrite + fdatasync.
    fn pwrite(&self, txn: &[u8], batch: usize, iters: u64) -> Duration {
        let took = pwrite_batches(&self.f.file, self.bytes, txn, batch, iters);
        if (iters as usize * batch * RECORD_BYTES) as u64 <= self.bytes {
            check_records(&self.f.path, &framed(txn), iters as usize * batch);
        }
        took
    }
    /// (g): O_DIRECT|O_DSYNC (the ring was opened with those flags).
    fn odirect(&self, txn: &[u8], batch: usize, iters: u64) -> Duration {
        let took = odirect_batches(&self.f.file, self.bytes, txn, batch, iters);
        if (iters as usize * batch * RECORD_BYTES) as u64 + 4096 <= self.bytes {
            check_records(&self.f.path, &framed(txn), iters as usize * batch);
        }
        took
    }
}

/// What the bench dir's block device did during timed regions: read from
/// `/sys/dev/block/MAJ:MIN/stat` around each one (other processes' I/O counts too).
#[derive(Default)]
struct DiskCounters {
    stat: Option<PathBuf>,
    at_start: Vec<u64>,
    syncs: u64,
    write_ios: u64,
    write_sectors: u64,
    flushes: u64,
}

thread_local! {
    static DISK: RefCell<DiskCounters> = RefCell::default();
}

/// Fields of the block layer's stat file; write I/Os are [4], sectors written [6],
/// flushes [15] (kernel 5.5 and later).
fn disk_stat(path: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect()
}

fn clock_start() -> Instant {
    DISK.with_borrow_mut(|d| {
        if let Some(p) = &d.stat {
            d.at_start = disk_stat(p);
        }
    });
    Instant::now()
}

/// Stops the clock for `syncs` durability points.
fn clock_stop(start: Instant, syncs: u64) -> Duration {
    let took = start.elapsed();
    DISK.with_borrow_mut(|d| {
        let Some(p) = &d.stat else { return };
        let now = disk_stat(p);
        let delta = |i: usize| match (now.get(i), d.at_start.get(i)) {
            (Some(a), Some(b)) => a - b,
            _ => 0,
        };
        d.syncs += syncs;
        d.write_ios += delta(4);
        d.write_sectors += delta(6);
        d.flushes += delta(15);
    });
    took
}

/// Prints what the device did per durability point since the last call, and resets.
fn report_disk(name: &str) {
    DISK.with_borrow_mut(|d| {
        if d.stat.is_some() && d.syncs > 0 {
            let per = |n: u64| n as f64 / d.syncs as f64;
            eprintln!(
                "txnlog: {name}: per sync: {:.2} write I/Os, {:.1} KiB written, {:.2} flushes \
                 ({} syncs)",
                per(d.write_ios),
                per(d.write_sectors) / 2.0,
                per(d.flushes),
                d.syncs
            );
        }
        d.syncs = 0;
        d.write_ios = 0;
        d.write_sectors = 0;
        d.flushes = 0;
    });
}

/// The stat file of the block device that holds `dir`.
fn disk_stat_path(dir: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(dir).ok()?.dev();
    let path = PathBuf::from(format!(
        "/sys/dev/block/{}:{}/stat",
        libc::major(dev),
        libc::minor(dev)
    ));
    path.exists().then_some(path)
}

/// Whether `dir`'s filesystem takes O_DIRECT writes (tmpfs before Linux 6.6 does not).
fn odirect_supported(dir: &Path) -> bool {
    let path = dir.join("probe");
    let ok = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
        .and_then(|f| f.write_all_at(AlignedBuf::new(BLOCK_BYTES).bytes(), 0))
        .is_ok();
    let _ = std::fs::remove_file(&path);
    ok
}

/// The filesystem `dir` is on, from statfs's magic number.
fn fs_type(dir: &Path) -> &'static str {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statfs(c.as_ptr(), &mut s) }, 0, "statfs");
    match s.f_type as i64 {
        0xEF53 => "ext2/3/4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs (syncs are free here: numbers mean nothing)",
        0x2FC1_2FC1 => "zfs",
        0x794C_7630 => "overlayfs",
        _ => "other",
    }
}

fn txnlog(c: &mut Criterion) {
    let dir = tempfile::Builder::new()
        .prefix("txnlog-bench")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir under target/tmp");
    let dir = dir.path();
    let stat = disk_stat_path(dir);
    eprintln!(
        "txnlog: files in {} ({}); device counters: {}",
        dir.display(),
        fs_type(dir),
        stat.as_ref()
            .map_or("none".into(), |p| p.display().to_string())
    );
    DISK.with_borrow_mut(|d| d.stat = stat);
    let odirect = odirect_supported(dir);
    if !odirect {
        eprintln!("txnlog: this filesystem refuses O_DIRECT: skipping (e) and (g)");
    }
    let txn = record_payload();
    let mut one = [0u8; RECORD_BYTES];
    assert_eq!(frame_into(&txn, &mut one), RECORD_BYTES);
    assert_eq!(
        &one[..],
        &framed(&txn)[..],
        "frame_into matches log::frame_record"
    );

    if !bench_mode() {
        // Criterion's test mode runs one batch per variant; three check that what a batch
        // leaves behind (the O_DIRECT tail block, the mapping cursor) is right for the next.
        for batch in BATCHES {
            run_filetxnlog(dir, &txn, batch, 3);
            for how in [MapSync::Msync, MapSync::Fdatasync, MapSync::RandomFdatasync] {
                run_mmap(dir, &txn, batch, 3, how);
            }
            Ring::new(dir, "ring", 0).pwrite(&txn, batch, 3);
            if odirect {
                run_odirect(dir, &txn, batch, 3);
                Ring::new(dir, "ring", libc::O_DIRECT | libc::O_DSYNC).odirect(&txn, batch, 3);
            }
        }
    }
    report_disk("test-mode checks");
    let mut g = c.benchmark_group("txnlog");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    for batch in BATCHES {
        g.throughput(Throughput::Elements(batch as u64));
        let id = |name: &str| BenchmarkId::new(name, batch);
        g.bench_function(id("a_filetxnlog"), |b| {
            b.iter_custom(|iters| run_filetxnlog(dir, &txn, batch, iters))
        });
        report_disk(&format!("a_filetxnlog/{batch}"));
        g.bench_function(id("b_mmap_msync"), |b| {
            b.iter_custom(|iters| run_mmap(dir, &txn, batch, iters, MapSync::Msync))
        });
        report_disk(&format!("b_mmap_msync/{batch}"));
        g.bench_function(id("c_mmap_fdatasync"), |b| {
            b.iter_custom(|iters| run_mmap(dir, &txn, batch, iters, MapSync::Fdatasync))
        });
        report_disk(&format!("c_mmap_fdatasync/{batch}"));
        g.bench_function(id("d_mmap_random_fdatasync"), |b| {
            b.iter_custom(|iters| run_mmap(dir, &txn, batch, iters, MapSync::RandomFdatasync))
        });
        report_disk(&format!("d_mmap_random_fdatasync/{batch}"));
        if odirect {
            g.bench_function(id("e_odirect_dsync"), |b| {
                b.iter_custom(|iters| run_odirect(dir, &txn, batch, iters))
            });
            report_disk(&format!("e_odirect_dsync/{batch}"));
        }
        let ring = Ring::new(dir, "ring", 0);
        g.bench_function(id("f_written_pwrite_fdatasync"), |b| {
            b.iter_custom(|iters| ring.pwrite(&txn, batch, iters))
        });
        report_disk(&format!("f_written_pwrite_fdatasync/{batch}"));
        drop(ring);
        if odirect {
            let ring = Ring::new(dir, "ring", libc::O_DIRECT | libc::O_DSYNC);
            g.bench_function(id("g_written_odirect_dsync"), |b| {
                b.iter_custom(|iters| ring.odirect(&txn, batch, iters))
            });
            report_disk(&format!("g_written_odirect_dsync/{batch}"));
        }
    }
    g.finish();
}

criterion_group!(benches, txnlog);
criterion_main!(benches);
