//! Four-letter words on the client port, in ZooKeeper's formats.

use crate::harness::*;

#[test]
fn words_answer_in_zookeeper_format() {
    let s = Server::start("");
    assert_eq!(four(&s, "ruok"), "imok");
    assert_eq!(four(&s, "isro"), "rw");
    let srvr = four(&s, "srvr");
    let lines: Vec<&str> = srvr.lines().collect();
    assert!(lines[0].starts_with("Zookeeper version: 3.8.0"), "{srvr}");
    for (i, key) in [
        "Latency min/avg/max: ",
        "Received: ",
        "Sent: ",
        "Connections: ",
        "Outstanding: ",
        "Zxid: 0x",
        "Mode: standalone",
        "Node count: 5",
    ]
    .iter()
    .enumerate()
    {
        assert!(
            lines[i + 1].starts_with(key),
            "line {}: {:?} in\n{srvr}",
            i + 1,
            key
        );
    }
    let mntr = four(&s, "mntr");
    for key in [
        "zk_version",
        "zk_server_state\tstandalone",
        "zk_znode_count\t5",
        "zk_approximate_data_size\t44",
        "zk_watch_count\t0",
        "zk_ephemerals_count\t0",
        "zk_num_alive_connections",
        "zk_outstanding_requests",
        "zk_avg_latency",
        "zk_global_sessions",
    ] {
        assert!(mntr.contains(key), "{key} missing in\n{mntr}");
    }
    let conf = four(&s, "conf");
    assert!(conf.contains(&format!("clientPort={}", s.port)), "{conf}");
    assert!(conf.contains("tickTime=200"), "{conf}");
    assert!(four(&s, "stat").contains("Clients:"));
    assert_eq!(four(&s, "crst"), "Connection stats reset.\n");
    assert_eq!(four(&s, "srst"), "Server stats reset.\n");
    assert!(four(&s, "dirs").starts_with("datadir_size: "));
    assert!(four(&s, "envi").starts_with("Environment:\n"));
    assert!(four(&s, "wchs").contains("Total watches:0"));
}

#[test]
fn whitelist_is_enforced_but_srvr_always_answers() {
    let s = Server::start("4lw.commands.whitelist=ruok");
    assert_eq!(four(&s, "ruok"), "imok");
    assert!(four(&s, "srvr").contains("Mode: standalone"));
    assert_eq!(
        four(&s, "mntr"),
        "mntr is not executed because it is not in the whitelist.\n"
    );
}

/// `paddock status [zoo.cfg]` prints what `zkServer.sh status` prints and exits 1 when
/// nothing answers on the configured client port.
#[test]
fn paddock_status_reports_the_mode() {
    let mut s = Server::start("");
    let cfg = s.dir.path().join("status.cfg");
    std::fs::write(
        &cfg,
        format!(
            "dataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\n",
            s.dir.path().join("unused").display(),
            s.port
        ),
    )
    .unwrap();
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_paddock"))
            .arg("status")
            .arg(&cfg)
            .output()
            .unwrap()
    };
    let out = run();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("Using config: {}", cfg.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Client port found: {}. Client address: 127.0.0.1. Client SSL: false.",
            s.port
        )),
        "{text}"
    );
    assert!(text.lines().any(|l| l == "Mode: standalone"), "{text}");
    s.kill9();
    let out = run();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("Error contacting service. It is probably not running."));
}

fn srvr_count(srvr: &str, key: &str) -> u64 {
    srvr.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Issue 14, section 3: the details of four-letter words that differed from ZooKeeper
/// 3.8's (each compared with its output): cons shows a connection's real lzxid (was
/// 0xffffffffffffffff), `SESS` with lcxid 0x0 for a new session, no lcxid before one;
/// an empty wchc/wchp is a blank line; wchs counts the data watches only; dump lists
/// session and connection expiry buckets; envi has ZooKeeper's 18 lines with the real
/// user name; a four-letter word counts one packet in and one out.
#[test]
fn four_letter_details_as_zookeeper_prints_them() {
    let s = Server::start("");
    assert_eq!(four(&s, "wchc"), "\n");
    assert_eq!(four(&s, "wchp"), "\n");
    let mut r = Raw::connect(&s);
    let sid = r.session;
    let cons = four(&s, "cons");
    let line = cons
        .lines()
        .find(|l| l.contains(&format!("sid=0x{sid:x}")))
        .unwrap_or_else(|| panic!("{cons}"));
    assert!(line.contains(",lop=SESS,"), "{line}");
    assert!(line.contains(",lcxid=0x0,"), "{line}");
    assert!(!line.contains("lzxid=0xffffffffffffffff"), "{line}");
    r.send(1, 1, &create_body("/c", b"", 0));
    let (_, zxid, err, _) = r.reply().unwrap();
    assert_eq!(err, 0);
    // A getChildren watch is in the child table: wchs, wchc and wchp leave it out.
    let mut get_children = jute_string("/");
    get_children.push(1);
    r.send(2, 8, &get_children);
    assert_eq!(r.reply().unwrap().2, 0);
    let mut get_data = jute_string("/c");
    get_data.push(1);
    r.send(3, 4, &get_data);
    assert_eq!(r.reply().unwrap().2, 0);
    let cons = four(&s, "cons");
    let line = cons
        .lines()
        .find(|l| l.contains(&format!("sid=0x{sid:x}")))
        .unwrap();
    assert!(line.contains(",lop=GETD,"), "{line}");
    assert!(line.contains(&format!(",lzxid=0x{zxid:x},")), "{line}");
    assert_eq!(
        four(&s, "wchs"),
        "1 connections watching 1 paths\nTotal watches:1\n"
    );
    assert_eq!(four(&s, "wchc"), format!("0x{sid:x}\n\t/c\n\n"));
    assert_eq!(four(&s, "wchp"), format!("/c\n\t0x{sid:x}\n\n"));
    let dump = four(&s, "dump");
    assert!(dump.starts_with("SessionTracker dump:\nSession Sets (1)/(1):\n1 expire at "));
    assert!(dump.contains(&format!(":\n\t0x{sid:x}\n")), "{dump}");
    assert!(
        dump.contains("Connections dump:\nConnections Sets ("),
        "{dump}"
    );
    assert!(dump.contains(&format!("sessionId: 0x{sid:x}\n")), "{dump}");
    let envi = four(&s, "envi");
    let keys: Vec<&str> = envi
        .lines()
        .skip(1)
        .map(|l| l.split('=').next().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "zookeeper.version",
            "host.name",
            "java.version",
            "java.vendor",
            "java.home",
            "java.class.path",
            "java.library.path",
            "java.io.tmpdir",
            "java.compiler",
            "os.name",
            "os.arch",
            "os.version",
            "user.name",
            "user.home",
            "user.dir",
            "os.memory.free",
            "os.memory.max",
            "os.memory.total"
        ]
    );
    assert!(!envi.contains("user.name=\n"), "{envi}");
    // srvr's own packet is counted before it answers, its answer after.
    let (first, second) = (four(&s, "srvr"), four(&s, "srvr"));
    assert_eq!(
        srvr_count(&second, "Received:"),
        srvr_count(&first, "Received:") + 1
    );
    assert_eq!(
        srvr_count(&second, "Sent:"),
        srvr_count(&first, "Sent:") + 1
    );
}
