//! DataTree benches on a big tree: the reactor's read path and the writer's apply path.
//!
//! The tree: a fresh server's tree, `PARENTS` parents (`/service-0042`), and `N` children
//! of 100-byte data spread evenly under them (`/service-0042/node-0000012345`, 29 bytes),
//! built through `recovery::replay`, as recovery builds it. N is 1,000,000 when benchmarking
//! (`cargo bench`: criterion passes `--bench`) and 1,000 in test mode (`cargo test
//! --benches`), where each function runs once.
//!
//! - `get_data_random`: `reads::reply` of a getData of a random existing path (cycling
//!   through 65,536 pre-drawn ones; 64 in test mode): the reactor's read path, cache misses included.
//! - `get_data_hot`: the same path every time, for contrast.
//! - `read_path_get_data`: decode of the request body, then `reads::reply`: the reactor's
//!   whole read path short of the socket.
//! - `exists_random`: `reads::reply` of an exists (the Stat only).
//! - `get_children2_wide`: `reads::reply` of getChildren2 of a parent with N/400 children
//!   (2,500 when benchmarking).
//! - `set_data_apply`: one setData txn applied as the writer's flush does it
//!   (`Committed::new`, `txn::apply`, `publish`) to a random existing node.
//! - `create_delete_apply`: a create then a delete of a new child of a random parent.
//!
//! Also prints (stderr) VmRSS before and after building the tree and the bytes per znode:
//! the target is 1M znodes of 100-byte data in at most 350 MB RSS. Results:
//! benches/RESULTS.md. Randomness is a fixed-seed SplitMix64, so runs repeat exactly.

/// The server's allocator (src/main.rs), so memory figures are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use paddock::acl::open_acl;
use paddock::config::Config;
use paddock::proto::ops::op;
use paddock::proto::records::{Id, Request};
use paddock::server::reads;
use paddock::server::recovery::replay;
use paddock::testing::Entropy;
use paddock::tree::{DataTree, Node};
use paddock::txn::commit::{Committed, Indexes};
use paddock::txn::initial_tree;
use paddock::txn::{apply, Trigger, Txn, TxnHeader};
use std::hint::black_box;
use std::time::Instant;

const DATA_BYTES: usize = 100;
const PARENTS: usize = 400;
const SEED: u64 = 0x5EED_7EE5;

fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// A seeded SplitMix64 stream (the simulator's), so every run draws the same paths.
fn below(entropy: &mut Entropy, n: usize) -> usize {
    entropy.below(n as u64) as usize
}

fn parent_path(p: usize) -> String {
    format!("/service-{p:04}")
}

/// Child `i` lives under parent `i % PARENTS`; 29 bytes.
fn child_path(i: usize) -> String {
    format!("/service-{:04}/node-{i:010}", i % PARENTS)
}

fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

fn header(zxid: i64, op: i32) -> TxnHeader {
    TxnHeader {
        client_id: 0,
        cxid: 0,
        zxid,
        time: 1_700_000_000_000 + zxid,
        op,
    }
}

fn create_txn(path: String, data: Option<Vec<u8>>) -> Txn {
    Txn::Create {
        op: op::CREATE,
        path,
        data,
        acl: open_acl(),
        ephemeral: false,
        parent_cversion: -1,
    }
}

/// Applies one txn as the writer's flush does: its own `Committed`, then `publish`.
fn apply_one(tree: &DataTree, idx: &mut Indexes, triggers: &mut Vec<Trigger>, zxid: i64, t: &Txn) {
    triggers.clear();
    let mut store = Committed::new(tree, idx, false);
    apply(&mut store, &header(zxid, t.op()), t, triggers).expect("txn fits the tree");
    store.publish();
}

fn tree(c: &mut Criterion) {
    let (n, picks) = if bench_mode() {
        (1_000_000, 1 << 16)
    } else {
        (1_000, 64)
    };
    let rss_before_kib = vm_rss_kib();
    let started = Instant::now();
    let tree = initial_tree();
    let mut idx = Indexes::default();
    let mut zxid = 0i64;
    for p in 0..PARENTS {
        zxid += 1;
        let t = create_txn(parent_path(p), None);
        replay(&tree, &mut idx, false, &header(zxid, t.op()), &t);
    }
    let data = vec![b'x'; DATA_BYTES];
    for i in 0..n {
        zxid += 1;
        let t = create_txn(child_path(i), Some(data.clone()));
        replay(&tree, &mut idx, false, &header(zxid, t.op()), &t);
    }
    let build_s = started.elapsed().as_secs_f64();
    let rss_after_kib = vm_rss_kib();
    assert_eq!(tree.len(), 4 + PARENTS + n);
    let per_znode = (rss_after_kib - rss_before_kib) as f64 * 1024.0 / n as f64;
    eprintln!(
        "tree: {n} znodes of {DATA_BYTES} bytes under {PARENTS} parents built by replay in \
         {build_s:.2} s ({:.0} creates/s)",
        n as f64 / build_s
    );
    eprintln!(
        "tree: VmRSS {:.1} MB before, {:.1} MB after (target for 1M znodes: <= 350 MB): \
         {per_znode:.0} bytes per znode; size_of::<Node>() = {}",
        rss_before_kib as f64 * 1024.0 / 1e6,
        rss_after_kib as f64 * 1024.0 / 1e6,
        std::mem::size_of::<Node>()
    );

    let cfg = Config::embedded_default();
    let ids = [Id::new("ip", "10.0.0.1")];
    let mut entropy = Entropy::new(SEED);
    let reads: Vec<Request> = (0..picks)
        .map(|_| Request::GetData {
            path: child_path(below(&mut entropy, n)),
            watch: false,
        })
        .collect();
    let (frame, err) = reads::reply(&tree, &cfg, &ids, 1, zxid, &reads[0]);
    assert_eq!((err, frame.len()), (0, 4 + 16 + 4 + DATA_BYTES + 68));

    let mut g = c.benchmark_group("tree");
    g.throughput(Throughput::Elements(1));
    let mut next = 0usize;
    g.bench_function("get_data_random", |b| {
        b.iter(|| {
            next = (next + 1) % picks;
            reads::reply(&tree, &cfg, &ids, 1, zxid, black_box(&reads[next]))
        })
    });
    g.bench_function("get_data_hot", |b| {
        b.iter(|| reads::reply(&tree, &cfg, &ids, 1, zxid, black_box(&reads[0])))
    });
    // The reactor's whole read path short of the socket: decode the request body, look
    // the node up, encode the reply frame.
    let bodies: Vec<Vec<u8>> = reads
        .iter()
        .map(|r| {
            let Request::GetData { path, .. } = r else {
                unreachable!()
            };
            let mut b = (path.len() as i32).to_be_bytes().to_vec();
            b.extend_from_slice(path.as_bytes());
            b.push(0);
            b
        })
        .collect();
    // As the reactor runs it since issue 13: inside one consistent view of the tree
    // (the publish sequence read around it), the header zxid read in that view.
    let applied = std::sync::atomic::AtomicI64::new(zxid);
    g.bench_function("read_path_get_data", |b| {
        b.iter(|| {
            next = (next + 1) % picks;
            let req = Request::decode(op::GET_DATA, black_box(&bodies[next])).unwrap();
            reads::reply_consistent(&tree, &applied, || true, &cfg, &ids, 1, &req)
        })
    });
    // The same without the consistent view (the read path before issue 13), side by
    // side: the budget is at most 15% more per getData.
    g.bench_function("read_path_get_data_unguarded", |b| {
        b.iter(|| {
            next = (next + 1) % picks;
            let req = Request::decode(op::GET_DATA, black_box(&bodies[next])).unwrap();
            reads::reply(&tree, &cfg, &ids, 1, zxid, &req)
        })
    });
    g.bench_function("read_path_get_data_hot", |b| {
        b.iter(|| {
            let req = Request::decode(op::GET_DATA, black_box(&bodies[0])).unwrap();
            reads::reply_consistent(&tree, &applied, || true, &cfg, &ids, 1, &req)
        })
    });
    g.bench_function("read_path_get_data_hot_unguarded", |b| {
        b.iter(|| {
            let req = Request::decode(op::GET_DATA, black_box(&bodies[0])).unwrap();
            reads::reply(&tree, &cfg, &ids, 1, zxid, &req)
        })
    });
    let exists: Vec<Request> = (0..picks)
        .map(|_| Request::Exists {
            path: child_path(below(&mut entropy, n)),
            watch: false,
        })
        .collect();
    g.bench_function("exists_random", |b| {
        b.iter(|| {
            next = (next + 1) % picks;
            reads::reply(&tree, &cfg, &ids, 1, zxid, black_box(&exists[next]))
        })
    });
    // A parent with N / PARENTS children (2,500 when benchmarking): names and the Stat.
    let wide = Request::GetChildren2 {
        path: parent_path(7),
        watch: false,
    };
    let (frame, err) = reads::reply(&tree, &cfg, &ids, 1, zxid, &wide);
    assert_eq!(err, 0);
    assert!(frame.len() > (n / PARENTS) * 19, "every child listed");
    g.bench_function("get_children2_wide", |b| {
        b.iter(|| reads::reply(&tree, &cfg, &ids, 1, zxid, black_box(&wide)))
    });

    let writes: Vec<Txn> = (0..picks)
        .map(|_| Txn::SetData {
            path: child_path(below(&mut entropy, n)),
            data: Some(vec![b'y'; DATA_BYTES]),
            version: 1,
        })
        .collect();
    let mut triggers = Vec::new();
    g.bench_function("set_data_apply", |b| {
        b.iter(|| {
            next = (next + 1) % picks;
            zxid += 1;
            apply_one(&tree, &mut idx, &mut triggers, zxid, &writes[next]);
        })
    });

    // Children named apart from the base tree's, one per parent at a time.
    let pairs: Vec<(Txn, Txn)> = (0..picks)
        .map(|i| {
            let path = format!("/service-{:04}/temp-{i:010}", below(&mut entropy, PARENTS));
            let delete = Txn::Delete {
                op: op::DELETE,
                path: path.clone(),
            };
            (create_txn(path, Some(vec![b'z'; DATA_BYTES])), delete)
        })
        .collect();
    g.bench_function("create_delete_apply", |b| {
        b.iter(|| {
            next = (next + 1) % picks;
            let (create, delete) = &pairs[next];
            zxid += 1;
            apply_one(&tree, &mut idx, &mut triggers, zxid, create);
            zxid += 1;
            apply_one(&tree, &mut idx, &mut triggers, zxid, delete);
        })
    });
    g.finish();

    assert_eq!(tree.len(), 4 + PARENTS + n, "every create was deleted");
    eprintln!(
        "tree: VmRSS {:.1} MB after the benches (setData churn)",
        vm_rss_kib() as f64 * 1024.0 / 1e6
    );
}

criterion_group!(benches, tree);
criterion_main!(benches);
