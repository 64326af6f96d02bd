//! Issue 13, item 4: a setting Paddock does not implement never passes silently. The real
//! binary, started on such configs: it exits non-zero with one line naming the key, and
//! prints it once. And `dynamicConfigFile` is read: its server list makes an ensemble.

use crate::harness::{start_failing, Server};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A zoo.cfg in a fresh directory: a standalone base plus `extra`.
fn zoo_cfg(dir: &tempfile::TempDir, extra: &str) -> std::path::PathBuf {
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let cfg = dir.path().join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=200\ndataDir={}\nclientPort=0\nclientPortAddress=127.0.0.1\npaddock.pinCores=false\npreAllocSize=1024\n{extra}\n",
            data.display()
        ),
    )
    .unwrap();
    cfg
}

/// Starts on `extra` expecting a refusal that quotes `line`: exit code 1, `line` printed
/// exactly once, and the cause on the same line.
fn assert_refused(extra: &str, line: &str, why: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = start_failing(&zoo_cfg(&dir, extra));
    assert_eq!(code, Some(1), "{extra}: {err}");
    assert_eq!(err.matches(line).count(), 1, "{line} printed once: {err}");
    let l = err.lines().find(|l| l.contains(line)).unwrap();
    assert!(l.starts_with("paddock: ") && l.contains(why), "{l}");
}

#[test]
fn issue_13_unsupported_settings_stop_start_up_with_one_line() {
    for (extra, why) in [
        (
            "secureClientPort=2281",
            "needs ssl.keyStore.location (the server's certificate)",
        ),
        (
            "client.portUnification=true",
            "needs ssl.keyStore.location (the server's certificate)",
        ),
        ("ssl.clientAuth=sometimes", "expected none, want or need"),
        (
            "zookeeper.ssl.quorum.enabledProtocols=TLSv1",
            "offers neither TLSv1.2 nor TLSv1.3",
        ),
        ("sslQuorum=true", "needs ssl.quorum.keyStore.location"),
        (
            "authProvider.1=com.example.MyAuthenticationProvider",
            "not supported yet (authentication providers other than digest, ip, x509 and sasl)",
        ),
        (
            "sessionRequireClientSASLAuth=true",
            "no authentication provider for \"sasl\"",
        ),
        (
            "enforce.auth.enabled=true",
            "enforce.auth.schemes names no scheme",
        ),
        (
            "quorum.auth.enableSasl=true",
            "not supported yet (SASL between servers)",
        ),
        (
            "quorum.auth.learnerRequireSasl=true",
            "not supported yet (SASL between servers)",
        ),
        (
            "quorum.auth.serverRequireSasl=true",
            "not supported yet (SASL between servers)",
        ),
        (
            "quorum.auth.kerberos.servicePrincipal=zkquorum/_HOST",
            "not supported yet (Kerberos between servers)",
        ),
        (
            "reconfigEnabled=true",
            "not supported yet (dynamic reconfiguration)",
        ),
        ("skipACL=yes", "not supported yet (turning ACL checks off)"),
        (
            "localSessionsEnabled=true",
            "not supported yet (local sessions)",
        ),
        (
            "syncEnabled=false",
            "not supported yet (observers that skip their txn log)",
        ),
        ("clientPort=70000", "port out of range 0-65535"),
        ("clientPort=-1", "port out of range 0-65535"),
    ] {
        assert_refused(extra, extra, why);
    }
    // The same for a server line's port.
    assert_refused(
        "server.1=127.0.0.1:2888:99999\nserver.2=127.0.0.2:2888:3888",
        "server.1=127.0.0.1:2888:99999",
        "port 99999 out of range 1-65535",
    );
}

/// ZooKeeper's defaults are accepted; admin.* and metricsProvider.* are ignored with one
/// warning each; clientPortAddress may be a host name.
#[test]
fn issue_13_defaults_start_and_ignored_keys_warn_once() {
    let s = Server::start(
        "reconfigEnabled=false\nsslQuorum=false\nquorum.auth.enableSasl=false\nskipACL=no\n\
         secureClientPort=0\nauthProvider.1=org.apache.zookeeper.server.auth.DigestAuthenticationProvider\n\
         admin.enableServer=true\nadmin.serverPort=8080\n\
         metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n\
         clientPortAddress=localhost",
    );
    assert!(s.logged("serving on 127.0.0.1:"), "{}", s.log_text());
    let log = s.log_text();
    for key in [
        "admin.enableServer=true: accepted and ignored",
        "admin.serverPort=8080: accepted and ignored",
        "metricsProvider.className=",
    ] {
        assert_eq!(log.matches(key).count(), 1, "{key}: {log}");
    }
    assert!(
        log.lines()
            .any(|l| l.contains(" WARN ") && l.contains("admin.enableServer=true")),
        "{log}"
    );
}

/// The ensemble errors printed their text twice (anyhow's `{:#}` printed the error and
/// then its source, the same error).
#[test]
fn issue_13_quorum_errors_print_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = zoo_cfg(
        &dir,
        "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.2:2888:3888\nserver.3=127.0.0.3:2888:3888",
    );
    let (code, err) = start_failing(&cfg);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.matches("myid is missing").count(), 1, "{err}");
    assert_eq!(err.matches("ensemble of 3 servers").count(), 1, "{err}");
}

/// Three members on 127.0.0.5{1,2,3}, ports 28xxx, listed in `zoo.cfg.dynamic.100000000`.
fn dynamic_ensemble(dir: &tempfile::TempDir, myid: Option<i64>) -> std::path::PathBuf {
    let dynamic = dir.path().join("zoo.cfg.dynamic.100000000");
    let mut lines = String::new();
    for id in 1..=3 {
        lines.push_str(&format!(
            "server.{id}=127.0.0.5{id}:28501:28502:participant;127.0.0.5{id}:28500\n"
        ));
    }
    std::fs::write(&dynamic, lines).unwrap();
    let cfg = zoo_cfg(
        dir,
        &format!(
            "initLimit=10\nsyncLimit=5\n4lw.commands.whitelist=*\ndynamicConfigFile={}",
            dynamic.display()
        ),
    );
    // The base has clientPort=0 with an address: this member's comes from its server line.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("clientPort=0\nclientPortAddress=127.0.0.1\n", "");
    std::fs::write(&cfg, text).unwrap();
    if let Some(id) = myid {
        std::fs::write(dir.path().join("data/myid"), format!("{id}\n")).unwrap();
    }
    cfg
}

/// A zoo.cfg whose server list is only in `dynamicConfigFile` describes an ensemble: a
/// member without myid refuses to start, and member 1 started alone is not standalone
/// (`srvr` says it is not serving, waiting for a quorum).
#[test]
fn issue_13_dynamic_config_file_makes_an_ensemble() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = start_failing(&dynamic_ensemble(&dir, None));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("myid is missing") && err.contains("ensemble of 3 servers"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let cfg = dynamic_ensemble(&dir, Some(1));
    let mut child = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .arg("start-foreground")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
        let serving = line.contains("serving on");
        log.push(line);
        if serving {
            break;
        }
    }
    let log = log.join("\n");
    let srvr = (|| -> std::io::Result<String> {
        let mut c = std::net::TcpStream::connect("127.0.0.51:28500")?;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        c.write_all(b"srvr")?;
        let mut out = String::new();
        c.read_to_string(&mut out)?;
        Ok(out)
    })();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        log.contains("config version 0x100000000")
            && log.contains("server.1 of an ensemble of 3 (3 voters)")
            && log.contains("serving on 127.0.0.51:28500"),
        "{log}"
    );
    let srvr = srvr.unwrap();
    assert!(
        !srvr.contains("standalone") && srvr.contains("not currently serving"),
        "{srvr}"
    );
}

/// Both zoo.cfg and the dynamic file list servers: refused, as ZooKeeper's
/// QuorumPeerConfig does. A dynamic file that is not there: one line naming the key.
#[test]
fn issue_13_dynamic_config_file_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dynamic_ensemble(&dir, Some(1));
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("server.1=127.0.0.51:28501:28502\n");
    std::fs::write(&cfg, &text).unwrap();
    let (code, err) = start_failing(&cfg);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        err.matches("server.1=127.0.0.51:28501:28502: must be in the dynamic config file")
            .count(),
        1,
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("absent.dynamic");
    let (code, err) = start_failing(&zoo_cfg(
        &dir,
        &format!("dynamicConfigFile={}", absent.display()),
    ));
    assert_eq!(code, Some(1), "{err}");
    let line = format!("dynamicConfigFile={}: cannot read it", absent.display());
    assert_eq!(err.matches(&line).count(), 1, "{err}");
}
