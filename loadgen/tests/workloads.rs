//! Every loadgen workload against a real Paddock server (started in this process from the
//! library, on a loopback port), through the built `loadgen` binary and its `--json`
//! result: work gets done, nothing fails, and what the workload leaves on the server is
//! what it should leave.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

/// The tests share one server (and two cores on CI): those that load it hold `shared()`
/// and run side by side; the one that measures a rate holds `alone()` and runs by itself.
static LOAD: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    LOAD.read().unwrap_or_else(|e| e.into_inner())
}

fn alone() -> RwLockWriteGuard<'static, ()> {
    LOAD.write().unwrap_or_else(|e| e.into_inner())
}

/// One server for the whole test binary (it lives until the process ends).
fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let text = format!(
            "tickTime=200\ndataDir={}\nclientPort=0\nclientPortAddress=127.0.0.1\n\
             maxClientCnxns=0\nminSessionTimeout=400\npaddock.pinCores=false\n\
             paddock.reactorThreads=1\n",
            dir.join("data").display()
        );
        let cfg =
            paddock::config::Config::from_raw(paddock::config::RawConfig::parse(&text).unwrap())
                .unwrap();
        let running = paddock::start::start(cfg).expect("paddock starts");
        let addr = running.addr;
        std::mem::forget(running);
        addr
    })
}

/// `loadgen run` with `args`, short, printing its JSON result; the parsed result.
fn run(args: &[&str]) -> Value {
    let addr = server().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "run",
            "--server",
            &addr,
            "--warmup",
            "0.3",
            "--duration",
            "1",
        ])
        .args(["--sessions", "6", "--inflight", "4", "--json", "-"])
        .args(args)
        .output()
        .expect("run loadgen");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "loadgen {args:?} failed: {}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(v["error_count"], 0, "{v}");
    assert_eq!(v["lost_sessions"], 0, "{v}");
    assert!(v["ops"].as_u64().unwrap() > 0, "{v}");
    v
}

fn count(v: &Value, op: &str) -> u64 {
    v["per_op"][op]["count"].as_u64().unwrap_or(0)
}

/// A minimal client: one session, getChildren's count of `path` (None: no node).
fn children(path: &str) -> Option<usize> {
    let mut s = TcpStream::connect(server()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let frame = |body: &[u8]| {
        let mut v = (body.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    };
    let read = |s: &mut TcpStream| {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut b = vec![0u8; i32::from_be_bytes(len) as usize];
        s.read_exact(&mut b).unwrap();
        b
    };
    let mut c = vec![0u8; 4]; // protocol version
    c.extend_from_slice(&0i64.to_be_bytes());
    c.extend_from_slice(&10_000i32.to_be_bytes());
    c.extend_from_slice(&0i64.to_be_bytes());
    c.extend_from_slice(&16i32.to_be_bytes());
    c.extend_from_slice(&[0; 16]);
    s.write_all(&frame(&c)).unwrap();
    read(&mut s);
    let mut r = 1i32.to_be_bytes().to_vec();
    r.extend_from_slice(&8i32.to_be_bytes()); // getChildren
    r.extend_from_slice(&(path.len() as i32).to_be_bytes());
    r.extend_from_slice(path.as_bytes());
    r.push(0);
    s.write_all(&frame(&r)).unwrap();
    let reply = read(&mut s);
    let err = i32::from_be_bytes(reply[12..16].try_into().unwrap());
    if err == -101 {
        return None;
    }
    assert_eq!(err, 0, "getChildren {path}");
    Some(i32::from_be_bytes(reply[16..20].try_into().unwrap()) as usize)
}

#[test]
fn read_write_mix() {
    let _load = shared();
    let v = run(&[
        "--read-pct",
        "50",
        "--keys",
        "50",
        "--value-size",
        "20",
        "--prefix",
        "/t-rw",
    ]);
    assert_eq!(v["workload"], "rw");
    assert_eq!(v["value_bytes"], 20);
    assert!(count(&v, "getData") > 0 && count(&v, "setData") > 0, "{v}");
    assert_eq!(children("/t-rw"), Some(50));
    // The series has a second per measured second, adding up to the ops.
    let secs = v["seconds"].as_array().unwrap();
    assert!(!secs.is_empty() && secs.len() <= 2, "{v}");
    let sum: u64 = secs.iter().map(|s| s[0].as_u64().unwrap()).sum();
    assert_eq!(sum, v["ops"].as_u64().unwrap());
}

#[test]
fn churn_leaves_nothing_behind() {
    let _load = shared();
    let v = run(&["--workload", "churn", "--prefix", "/t-churn"]);
    let (c, d) = (count(&v, "create"), count(&v, "delete"));
    assert!(c > 0 && d > 0, "{v}");
    assert_eq!(children("/t-churn/churn"), Some(0));
}

#[test]
fn sequential_creates_go_with_their_sessions() {
    let _load = shared();
    let v = run(&["--workload", "seq", "--prefix", "/t-seq"]);
    assert!(count(&v, "create") > 0, "{v}");
    assert_eq!(children("/t-seq/seq"), Some(0));
}

#[test]
fn wide_get_children() {
    let _load = shared();
    let v = run(&[
        "--workload",
        "children",
        "--children",
        "300",
        "--prefix",
        "/t-wide",
    ]);
    assert!(count(&v, "getChildren") > 0, "{v}");
    assert_eq!(v["bad_replies"], 0);
    assert_eq!(children("/t-wide/wide300"), Some(300));
}

#[test]
fn multi_of_set_data() {
    let _load = shared();
    let v = run(&[
        "--workload",
        "multi",
        "--multi-ops",
        "3",
        "--keys",
        "20",
        "--prefix",
        "/t-multi",
    ]);
    assert!(count(&v, "multi") > 0, "{v}");
}

#[test]
fn session_churn_cycles_and_cleans_up() {
    let _load = shared();
    let v = run(&["--workload", "sessions", "--prefix", "/t-sess"]);
    let cycles = count(&v, "cycle");
    assert!(cycles > 0, "{v}");
    // Each measured cycle connected, created and closed (6 sessions: at most 6 cycles
    // began before the interval).
    for op in ["connect", "create", "close"] {
        assert!(count(&v, op) + 6 >= cycles, "{op}: {v}");
    }
    assert_eq!(v["per_op"]["connect"]["counted"], false);
    assert_eq!(children("/t-sess/eph"), Some(0));
}

#[test]
fn watch_fan_out_notifies_every_watcher() {
    let _load = shared();
    let v = run(&["--workload", "watch", "--prefix", "/t-watch"]);
    let rounds = count(&v, "fanout");
    assert!(rounds > 0, "{v}");
    // 5 watchers: every round ends with the fifth notification (the rounds at the
    // interval's edges are partly outside it).
    let notes = count(&v, "notify");
    assert!(notes + 5 >= 5 * rounds && notes <= 5 * (rounds + 1), "{v}");
    assert_eq!(v["unexpected_events"], 0);
}

#[test]
fn open_loop_keeps_the_rate() {
    let _alone = alone();
    // 500/s is a small part of what 6 sessions x 4 in flight do closed-loop on loopback
    // (thousands/s even on a loaded machine), so the server keeps up with it.
    let v = run(&[
        "--rate",
        "500",
        "--threads",
        "2",
        "--read-pct",
        "100",
        "--prefix",
        "/t-rate",
    ]);
    // 500/s over a 1 s interval: the schedule decides the count, not the server. +-20%
    // leaves room for a loaded machine, yet fails at half the rate or at full speed.
    let ops = v["ops"].as_u64().unwrap();
    assert!((400..=600).contains(&ops), "{ops} ops: {v}");
    assert_eq!(v["rate"], 500.0);
    assert!(v["behind"].as_u64().unwrap() < 50, "{v}");
}

#[test]
fn bad_options_are_refused_clearly() {
    let addr = server().to_string();
    for (args, want) in [
        (vec!["--workload", "nope"], "one of rw, churn"),
        (
            vec!["--workload", "watch", "--rate", "10"],
            "--rate does not apply",
        ),
        (
            vec!["--workload", "watch", "--sessions", "1"],
            "needs --sessions 2",
        ),
        (vec!["--threads", "40"], "--threads must be"),
        (vec!["--progress", "loud"], "auto, on or off"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .args(["run", "--server", &addr])
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// `--report` and `loadgen report` write one self-contained page with every result.
#[test]
fn html_reports() {
    let _load = shared();
    let dir = tempfile::tempdir().unwrap();
    let (a, b, page) = (
        dir.path().join("a.json"),
        dir.path().join("b.json"),
        dir.path().join("r.html"),
    );
    let addr = server().to_string();
    for (file, pct) in [(&a, "100"), (&b, "0")] {
        let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .args([
                "run",
                "--server",
                &addr,
                "--warmup",
                "0.2",
                "--duration",
                "1",
            ])
            .args(["--sessions", "4", "--read-pct", pct, "--prefix", "/t-rep"])
            .arg("--json")
            .arg(file)
            .arg("--report")
            .arg(dir.path().join(format!("{pct}.html")))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let single = std::fs::read_to_string(dir.path().join("0.html")).unwrap();
    assert!(single.contains("<svg") && single.contains("0% reads"));
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("report")
        .arg(&a)
        .arg(&b)
        .arg("--out")
        .arg(&page)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<td>a</td>") && html.contains("<td>b</td>"));
    assert!(html.contains("100% reads") && html.contains("0% reads"));
    assert_eq!(html.matches("<polyline").count(), 6, "3 charts x 2 results");
    assert!(!html.contains("<script") && !html.contains("src="));
    // Not a result: a clear error.
    std::fs::write(&a, "{\"x\": 1}").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("report")
        .arg(&a)
        .arg("--out")
        .arg(&page)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a loadgen result"));
}
