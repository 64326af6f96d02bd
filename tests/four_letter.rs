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
