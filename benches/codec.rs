//! Codec benches: the CPU cost of one request on its way in and one reply on its way out.
//!
//! - `decode/get_data`: `Request::decode` of a getData body (~30-byte path).
//! - `reply/get_data`: `reads::reply` of a getData against a small tree (100-byte data):
//!   what a reactor does for a read, tree lookup and Stat included.
//! - `decode_prep/set_data`, `decode_prep/create`: `Request::decode` then `prep_and_stage`
//!   into a fresh `Overlay` over the tree: what the writer does per write before the log.
//! - `record/*`: `txn::encode_record` of the resulting txns (into a `Writer` of the writer's
//!   128-byte starting capacity, and of an exact capacity), and `log::frame_record`
//!   (Adler32 + copy) of one record.
//!
//! Test mode (`cargo test --benches`: no `--bench` argument) runs each function once;
//! the inputs are already tiny. Results: benches/RESULTS.md.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use paddock::acl::open_acl;
use paddock::config::Config;
use paddock::log::frame_record;
use paddock::proto::ops::op;
use paddock::proto::records::{write_acls, Id, Request};
use paddock::proto::Writer;
use paddock::server::reads;
use paddock::server::recovery::replay;
use paddock::tree::DataTree;
use paddock::txn::commit::Indexes;
use paddock::txn::initial_tree;
use paddock::txn::prep::{prep_and_stage, Overlay, PrepCtx, TreeView};
use paddock::txn::{encode_record, Txn, TxnHeader};
use std::hint::black_box;

const DATA_BYTES: usize = 100;
const PARENTS: usize = 4;
const CHILDREN_PER_PARENT: usize = 16;

/// 29 bytes: `/service-0001/node-0000000002`.
fn child_path(parent: usize, child: usize) -> String {
    format!("/service-{parent:04}/node-{child:010}")
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

/// A fresh server's tree plus `PARENTS` parents with `CHILDREN_PER_PARENT` children each,
/// built through `recovery::replay` as recovery builds it.
fn small_tree() -> DataTree {
    let tree = initial_tree();
    let mut idx = Indexes::default();
    let mut zxid = 0;
    let mut put = |txn: Txn| {
        zxid += 1;
        let hdr = TxnHeader {
            client_id: 0,
            cxid: 0,
            zxid,
            time: 1_700_000_000_000,
            op: txn.op(),
        };
        replay(&tree, &mut idx, false, &hdr, &txn);
    };
    for p in 0..PARENTS {
        put(create_txn(format!("/service-{p:04}"), None));
        for c in 0..CHILDREN_PER_PARENT {
            put(create_txn(child_path(p, c), Some(vec![b'x'; DATA_BYTES])));
        }
    }
    assert_eq!(tree.len(), 4 + PARENTS * (1 + CHILDREN_PER_PARENT));
    tree
}

fn get_data_body(path: &str) -> Vec<u8> {
    let mut w = Writer::new();
    w.string(path).bool(false);
    w.buf
}

fn set_data_body(path: &str, data: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.string(path).buffer(data).i32(-1);
    w.buf
}

fn create_body(path: &str, data: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.string(path).buffer(data);
    write_acls(&mut w, &open_acl());
    w.i32(0); // flags: persistent
    w.buf
}

fn header(zxid: i64, op: i32) -> TxnHeader {
    TxnHeader {
        client_id: 0x1000_0000_0000_0001,
        cxid: 7,
        zxid,
        time: 1_700_000_000_000,
        op,
    }
}

fn codec(c: &mut Criterion) {
    let tree = small_tree();
    let cfg = Config::embedded_default();
    let ids = [Id::new("ip", "10.0.0.1")];
    let ctx = PrepCtx {
        session: 0x1000_0000_0000_0001,
        ids: &ids,
        extended_types: false,
        schemes: Default::default(),
    };
    let data = vec![b'y'; DATA_BYTES];
    let existing = child_path(1, 3);
    let fresh = child_path(1, CHILDREN_PER_PARENT + 1);
    assert!(tree.get(&existing).is_some() && tree.get(&fresh).is_none());

    let get_body = get_data_body(&existing);
    let set_body = set_data_body(&existing, &data);
    let create_body = create_body(&fresh, &data);

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("get_data", |b| {
        b.iter(|| Request::decode(op::GET_DATA, black_box(&get_body)).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("reply");
    g.throughput(Throughput::Elements(1));
    let get_req = Request::decode(op::GET_DATA, &get_body).unwrap();
    let (frame, err) = reads::reply(&tree, &cfg, &ids, 1, 99, &get_req);
    assert_eq!(err, 0);
    assert_eq!(frame.len(), 4 + 16 + 4 + DATA_BYTES + 68);
    g.bench_function("get_data", |b| {
        b.iter(|| reads::reply(&tree, &cfg, &ids, 1, 99, black_box(&get_req)))
    });
    g.finish();

    let mut g = c.benchmark_group("decode_prep");
    g.throughput(Throughput::Elements(1));
    let base = TreeView(&tree);
    let prep = |opcode: i32, body: &[u8]| {
        let req = Request::decode(opcode, body).unwrap();
        let mut ov = Overlay::new(&base);
        prep_and_stage(&ctx, &mut ov, &header(100, 0), &req, &mut Vec::new()).0
    };
    assert!(matches!(prep(op::SET_DATA, &set_body), Txn::SetData { .. }));
    assert!(matches!(prep(op::CREATE, &create_body), Txn::Create { .. }));
    g.bench_function("set_data", |b| {
        b.iter(|| prep(op::SET_DATA, black_box(&set_body)))
    });
    g.bench_function("create", |b| {
        b.iter(|| prep(op::CREATE, black_box(&create_body)))
    });
    g.finish();

    let mut g = c.benchmark_group("record");
    g.throughput(Throughput::Elements(1));
    let set_txn = prep(op::SET_DATA, &set_body);
    let create_txn = prep(op::CREATE, &create_body);
    for (name, txn) in [("set_data", &set_txn), ("create", &create_txn)] {
        let hdr = header(100, txn.op());
        let mut exact = Writer::new();
        encode_record(&hdr, txn, &mut exact);
        let record_bytes = exact.buf.len();
        eprintln!(
            "record/{name}: {record_bytes} payload bytes, {} framed",
            record_bytes + 13
        );
        // The writer's `append` starts from `Writer::with_capacity(128)`.
        g.bench_function(format!("encode_{name}_cap128"), |b| {
            b.iter(|| {
                let mut w = Writer::with_capacity(128);
                encode_record(&hdr, black_box(txn), &mut w);
                w.buf
            })
        });
        g.bench_function(format!("encode_{name}_exact"), |b| {
            b.iter(|| {
                let mut w = Writer::with_capacity(record_bytes);
                encode_record(&hdr, black_box(txn), &mut w);
                w.buf
            })
        });
        let mut out = Vec::with_capacity(1 << 16);
        g.bench_function(format!("frame_{name}"), |b| {
            b.iter(|| {
                out.clear();
                frame_record(black_box(&exact.buf), &mut out);
                out.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
