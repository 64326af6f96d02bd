//! Fault injection (issue 13): ensembles whose members each run in a network namespace
//! of their own, joined by a bridge in the root namespace, where the test's clients
//! live. A partition is nftables in the members' namespaces dropping the packets
//! between chosen members (silently: TCP waits, as on a real network); clients still
//! reach every member, so a cut-off leader keeps its clients. Besides partitions:
//! kill -9 and restart, and SIGSTOP/SIGCONT.
//!
//! While faults come and go, clients on every member do compare-and-set writes and
//! plain and sync+reads of one register, and sequential creates. The history is then
//! checked: writes linearizable and reads per-session ordered (the register checker),
//! no acknowledged write lost and no version given twice, every acknowledged
//! sequential create present and no sequence number given twice, no ephemeral left
//! once its session is closed (each client closes its session and opens a new one every
//! 150 ops, faults or not), and equal trees on every member after the heal.
//!
//! Needs root (namespaces, nftables); the test installs `nftables` from Debian's
//! packages when `nft` is missing. `PADDOCK_FAULT_ROUNDS=N` runs N rounds instead of
//! one per kind of fault.

use crate::ensemble::{check_register_history, signal, Ensemble, Op};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runs a command; its stderr in the error.
fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `nft` is there, installed from Debian's packages if it was not (once per process).
fn ensure_nft() {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap();
    if *done || run("nft", &["--version"]).is_ok() {
        *done = true;
        return;
    }
    let install = || run("apt-get", &["install", "-y", "-q", "nftables"]);
    if install().is_err() {
        let _ = run("apt-get", &["update", "-q"]);
        install().expect("installing nftables (the fault tests need root and nft)");
    }
    *done = true;
}

/// Network namespaces `<tag>n<i>`, one per member, each with a veth into the bridge
/// `<tag>br` (root namespace, 10.77.<net>.254); member i is 10.77.<net>.i. Each
/// namespace has an nftables table `fault` whose input and output chains the cuts go in.
struct Net {
    tag: String,
    net: u8,
    n: i64,
}

impl Net {
    fn new(net: u8, n: i64) -> Net {
        ensure_nft();
        let tag = format!("pf{}x{net}", std::process::id() % 100_000);
        let net = Net { tag, net, n };
        let br = net.bridge();
        run("ip", &["link", "add", &br, "type", "bridge"]).unwrap();
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("10.77.{}.254/24", net.net),
                "dev",
                &br,
            ],
        )
        .unwrap();
        run("ip", &["link", "set", &br, "up"]).unwrap();
        for i in 1..=n {
            let (ns, veth) = (net.ns(i), format!("{}v{i}", net.tag));
            run("ip", &["netns", "add", &ns]).unwrap();
            run(
                "ip",
                &[
                    "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
                ],
            )
            .unwrap();
            run("ip", &["link", "set", &veth, "master", &br]).unwrap();
            run("ip", &["link", "set", &veth, "up"]).unwrap();
            let addr = format!("{}/24", net.host(i));
            run("ip", &["-n", &ns, "addr", "add", &addr, "dev", "eth0"]).unwrap();
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"]).unwrap();
            run("ip", &["-n", &ns, "link", "set", "lo", "up"]).unwrap();
            net.nft(
                i,
                "add table inet fault\n\
                 add chain inet fault input { type filter hook input priority 0; }\n\
                 add chain inet fault output { type filter hook output priority 0; }\n",
            );
        }
        net
    }

    fn bridge(&self) -> String {
        format!("{}br", self.tag)
    }

    fn ns(&self, i: i64) -> String {
        format!("{}n{i}", self.tag)
    }

    fn host(&self, i: i64) -> String {
        format!("10.77.{}.{i}", self.net)
    }

    fn nft(&self, i: i64, script: &str) {
        let path = std::env::temp_dir().join(format!("{}-{i}.nft", self.tag));
        std::fs::write(&path, script).unwrap();
        run(
            "ip",
            &[
                "netns",
                "exec",
                &self.ns(i),
                "nft",
                "-f",
                path.to_str().unwrap(),
            ],
        )
        .unwrap();
        let _ = std::fs::remove_file(path);
    }

    /// Members `a` and `b` no longer hear each other (both directions dropped).
    fn cut(&self, a: i64, b: i64) {
        for (me, other) in [(a, b), (b, a)] {
            let h = self.host(other);
            self.nft(
                me,
                &format!(
                    "add rule inet fault input ip saddr {h} drop\n\
                     add rule inet fault output ip daddr {h} drop\n"
                ),
            );
        }
    }

    /// Every member of `side` is cut from every member not in it.
    fn split(&self, side: &[i64]) {
        for &a in side {
            for b in (1..=self.n).filter(|b| !side.contains(b)) {
                self.cut(a, b);
            }
        }
    }

    fn heal(&self) {
        for i in 1..=self.n {
            self.nft(
                i,
                "flush chain inet fault input\nflush chain inet fault output\n",
            );
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for i in 1..=self.n {
            let _ = run("ip", &["netns", "del", &self.ns(i)]);
        }
        let _ = run("ip", &["link", "del", &self.bridge()]);
    }
}

/// One kind of fault, held for a while and then undone.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The leader is cut from every other member; its clients still reach it.
    IsolateLeader,
    /// The leader and one follower against the rest (a majority: 5 members).
    LeaderInMinority,
    /// One follower cut from everyone.
    IsolateFollower,
    /// Two halves that both hear one member in the middle, which does not lead.
    Bridge,
    /// kill -9 of the leader, restarted at the heal.
    KillLeader,
    /// SIGSTOP of enough followers that the leader has no quorum; SIGCONT at the heal.
    PauseFollowers,
    /// SIGSTOP of the leader (its clients wait on it); SIGCONT at the heal, when it finds
    /// a newer leader.
    PauseLeader,
    /// kill -9 of one follower and SIGSTOP of another at once (3 members: both).
    KillAndPause,
}

/// What the clients saw, for the checks.
#[derive(Default)]
struct History {
    ops: Vec<Op>,
    /// Acknowledged sequential creates: sequence number → the value created.
    seq_acked: BTreeMap<i64, Vec<u8>>,
    seq_twice: Vec<String>,
    ephemerals: Vec<String>,
}

fn opts(mode: zookeeper_client::CreateMode) -> zookeeper_client::CreateOptions<'static> {
    mode.with_acls(zookeeper_client::Acls::anyone_all())
}

async fn session(addrs: &str) -> Option<zookeeper_client::Client> {
    zookeeper_client::Client::connector()
        .with_session_timeout(Duration::from_secs(6))
        .with_connection_timeout(Duration::from_millis(800))
        .connect(addrs)
        .await
        .ok()
}

/// One client's loop: CAS writes, reads (plain and after sync) and sequential creates
/// until `stop`; every op bounded in time (a timeout is an unknown outcome).
async fn client_loop(
    id: usize,
    addrs: String,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<History>>,
) -> usize {
    let bound = Duration::from_secs(4);
    let mut n = 0usize;
    let mut generation = 0usize;
    'sessions: while !stop.load(SeqCst) {
        let Some(c) = session(&addrs).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        // A new session is a new client of the history (per-session order binds it).
        generation += 1;
        let client = id * 1000 + generation;
        if let Ok(Ok((_, seq))) = tokio::time::timeout(
            bound,
            c.create(
                "/eph/e-",
                format!("{client}").as_bytes(),
                &opts(zookeeper_client::CreateMode::EphemeralSequential),
            ),
        )
        .await
        {
            history.lock().unwrap().ephemerals.push(format!("e-{seq}"));
        }
        while !stop.load(SeqCst) {
            n += 1;
            let start = Instant::now();
            let expired = match n % 4 {
                0 | 1 => {
                    // Compare-and-set: read the version, write only over it.
                    let read = tokio::time::timeout(bound, c.get_data("/reg")).await;
                    let Ok(Ok((value, stat))) = read else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    history.lock().unwrap().ops.push(Op {
                        client,
                        start,
                        end: Some(Instant::now()),
                        write: false,
                        synced: false,
                        value,
                        version: stat.version,
                    });
                    let value = format!("c{client}-{n}").into_bytes();
                    let start = Instant::now();
                    let set =
                        tokio::time::timeout(bound, c.set_data("/reg", &value, Some(stat.version)))
                            .await;
                    let (end, version, expired) = match set {
                        Ok(Ok(stat)) => (Some(Instant::now()), stat.version, false),
                        // Refused: it changed nothing.
                        Ok(Err(zookeeper_client::Error::BadVersion)) => continue,
                        Ok(Err(e)) => (None, -1, e == zookeeper_client::Error::SessionExpired),
                        Err(_) => (None, -1, false),
                    };
                    history.lock().unwrap().ops.push(Op {
                        client,
                        start,
                        end,
                        write: true,
                        synced: false,
                        value,
                        version,
                    });
                    expired
                }
                2 => {
                    let read = tokio::time::timeout(bound, async {
                        c.sync("/reg").await?;
                        c.get_data("/reg").await
                    })
                    .await;
                    match read {
                        Ok(Ok((value, stat))) => {
                            history.lock().unwrap().ops.push(Op {
                                client,
                                start,
                                end: Some(Instant::now()),
                                write: false,
                                synced: true,
                                value,
                                version: stat.version,
                            });
                            false
                        }
                        Ok(Err(e)) => e == zookeeper_client::Error::SessionExpired,
                        Err(_) => false,
                    }
                }
                _ => {
                    let value = format!("c{client}-{n}").into_bytes();
                    let made = tokio::time::timeout(
                        bound,
                        c.create(
                            "/seq/s-",
                            &value,
                            &opts(zookeeper_client::CreateMode::PersistentSequential),
                        ),
                    )
                    .await;
                    match made {
                        Ok(Ok((_, seq))) => {
                            let mut h = history.lock().unwrap();
                            let seq = seq.into_i64();
                            if let Some(other) = h.seq_acked.insert(seq, value.clone()) {
                                let twice = format!(
                                    "sequence {seq} acknowledged to {:?} and to {:?}",
                                    String::from_utf8_lossy(&other),
                                    String::from_utf8_lossy(&value)
                                );
                                h.seq_twice.push(twice);
                            }
                            false
                        }
                        Ok(Err(e)) => e == zookeeper_client::Error::SessionExpired,
                        Err(_) => false,
                    }
                }
            };
            if expired {
                continue 'sessions;
            }
            if n.is_multiple_of(150) {
                // Session churn: this session closes (with its ephemeral), whatever
                // fault is on, and a new one begins.
                break;
            }
            tokio::time::sleep(Duration::from_millis(4)).await;
        }
        // Dropped: the client closes its session (or, if that is lost, it expires), and
        // its ephemeral must go.
        drop(c);
    }
    n
}

/// Runs `rounds` rounds of `faults` (cycled) on `voters` members under the clients'
/// load and checks the history; returns a line saying what was checked.
async fn run_faults(net_id: u8, base: u16, voters: i64, faults: &[Fault]) -> String {
    let rounds: usize = std::env::var("PADDOCK_FAULT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(faults.len());
    let net = Net::new(net_id, voters);
    let mut e = Ensemble::start_with(
        voters,
        0,
        base,
        "",
        |_, id| net.host(id),
        |id| net.host(id),
        |id| Some(net.ns(id)),
    );
    let mut leader = e.settled(Duration::from_secs(30));
    let all: Vec<String> = e.members.iter().map(|m| m.client.clone()).collect();
    {
        let c = crate::ensemble::connect(&all.join(",")).await;
        for (path, data) in [("/reg", &b"init"[..]), ("/seq", b""), ("/eph", b"")] {
            c.create(path, data, &opts(zookeeper_client::CreateMode::Persistent))
                .await
                .unwrap();
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let history = Arc::new(Mutex::new(History::default()));
    let mut tasks = Vec::new();
    // Two clients per member, each starting there (then any member).
    for id in 0..(2 * voters as usize) {
        let first = &all[id % all.len()];
        let addrs = format!("{first},{}", all.join(","));
        tasks.push(tokio::spawn(client_loop(
            id,
            addrs,
            stop.clone(),
            history.clone(),
        )));
    }
    let mut done = Vec::new();
    for round in 0..rounds {
        let fault = faults[round % faults.len()];
        tokio::time::sleep(Duration::from_millis(800)).await;
        let followers: Vec<i64> = (1..=voters).filter(|&i| i != leader).collect();
        let mut killed = Vec::new();
        let mut paused = Vec::new();
        match fault {
            Fault::IsolateLeader => net.split(&[leader]),
            Fault::LeaderInMinority => net.split(&[leader, followers[0]]),
            Fault::IsolateFollower => net.split(&[followers[0]]),
            Fault::Bridge => {
                // The middle is a follower; the leader sits in one half.
                // The middle is followers[0], cut from nobody; the leader sits in one half.
                let rest = &followers[1..];
                let half = rest.len() / 2;
                let mut a: Vec<i64> = rest[..half].to_vec();
                a.push(leader);
                for &x in &a {
                    for &y in &rest[half..] {
                        net.cut(x, y);
                    }
                }
            }
            Fault::KillLeader => killed.push(leader),
            Fault::PauseFollowers => paused.extend(&followers[..voters as usize / 2 + 1]),
            Fault::PauseLeader => paused.push(leader),
            Fault::KillAndPause => {
                killed.push(followers[0]);
                paused.push(followers[1]);
            }
        }
        for &k in &killed {
            e.member_mut(k).kill9();
        }
        if !paused.is_empty() {
            signal(&e, &paused, "STOP");
        }
        // Longer than the sync limit (1 s) and an election.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        net.heal();
        if !paused.is_empty() {
            signal(&e, &paused, "CONT");
        }
        for &k in &killed {
            e.member_mut(k).restart();
        }
        leader = e.settled(Duration::from_secs(40));
        done.push(format!("{fault:?}"));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, SeqCst);
    let mut ops_run = 0;
    for t in tasks {
        ops_run += t.await.unwrap();
    }
    leader = e.settled(Duration::from_secs(40));
    let h = std::mem::take(&mut *history.lock().unwrap());
    let mut ops = h.ops;
    // Every member, synced: the register as it ends, and the trees compared.
    let mut trees = Vec::new();
    for m in &e.members {
        let c = crate::ensemble::connect(&m.client).await;
        let start = Instant::now();
        c.sync("/").await.unwrap();
        let (value, stat) = c.get_data("/reg").await.unwrap();
        ops.push(Op {
            client: usize::MAX - m.id as usize,
            start,
            end: Some(Instant::now()),
            write: false,
            synced: true,
            value: value.clone(),
            version: stat.version,
        });
        let mut seq = BTreeMap::new();
        for child in c.list_children("/seq").await.unwrap() {
            let (data, _) = c.get_data(&format!("/seq/{child}")).await.unwrap();
            seq.insert(child, data);
        }
        trees.push((m.id, value, stat.version, seq));
    }
    assert!(h.seq_twice.is_empty(), "{:?}", h.seq_twice);
    let (_, _, _, seq) = &trees[0];
    for (num, value) in &h.seq_acked {
        let name = format!("s-{num:010}");
        assert_eq!(
            seq.get(&name),
            Some(value),
            "acknowledged sequential create {name} lost or overwritten"
        );
    }
    for t in &trees[1..] {
        assert!(
            t.1 == trees[0].1 && t.2 == trees[0].2 && t.3 == trees[0].3,
            "member {} and member {} differ after the heal (register {:?} v{} and {:?} v{}, \
             {} and {} sequential nodes)",
            trees[0].0,
            t.0,
            String::from_utf8_lossy(&trees[0].1),
            trees[0].2,
            String::from_utf8_lossy(&t.1),
            t.2,
            trees[0].3.len(),
            t.3.len()
        );
    }
    if let Err(why) = check_register_history(&ops) {
        panic!("history not linearizable after {done:?}: {why}");
    }
    // Every session was closed: no ephemeral may be left on any member.
    let deadline = Instant::now() + Duration::from_secs(20);
    for m in &e.members {
        let c = crate::ensemble::connect(&m.client).await;
        loop {
            c.sync("/").await.unwrap();
            let left = c.list_children("/eph").await.unwrap();
            if left.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "member {}: ephemerals of closed sessions left: {left:?}",
                m.id
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let writes = ops.iter().filter(|o| o.write && o.end.is_some()).count();
    let unknown = ops.iter().filter(|o| o.end.is_none()).count();
    let line = format!(
        "{voters} members, leader {leader} at the end, rounds {done:?}: {ops_run} client ops, \
         {} in the register history ({writes} acknowledged CAS writes, {unknown} of unknown \
         outcome), {} acknowledged sequential creates, {} ephemerals made and gone: \
         0 violations",
        ops.len(),
        h.seq_acked.len(),
        h.ephemerals.len()
    );
    eprintln!("{line}");
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_keep_every_guarantee_under_partitions_kills_and_pauses() {
    run_faults(
        1,
        27700,
        3,
        &[
            Fault::IsolateLeader,
            Fault::KillLeader,
            Fault::IsolateFollower,
            Fault::PauseFollowers,
            Fault::PauseLeader,
            Fault::KillAndPause,
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_keep_every_guarantee_under_partitions_kills_and_pauses() {
    run_faults(
        2,
        27800,
        5,
        &[
            Fault::IsolateLeader,
            Fault::LeaderInMinority,
            Fault::Bridge,
            Fault::KillLeader,
            Fault::PauseFollowers,
            Fault::PauseLeader,
        ],
    )
    .await;
}
