//! The built `loadgen` binary's command line: help and version on standard output with
//! exit 0, usage errors on standard error with exit 2 (clap's, and the value checks after
//! it), failures of the work itself exit 1. No server needed.

use std::process::{Command, Output};

fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .output()
        .expect("run loadgen")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn help_and_version_exit_0() {
    for (args, shows) in [
        (&["--help"][..], "Usage: loadgen [COMMAND]"),
        (&["help"], "Commands:"),
        (&["run", "--help"], "Usage: loadgen run [OPTIONS]"),
        (
            &["compare", "--help"],
            "Usage: loadgen compare [OPTIONS] --a <ADDRS> --b <ADDRS>",
        ),
        (
            &["report", "--help"],
            "Usage: loadgen report [OPTIONS] --out <FILE.html>",
        ),
        (&["sessions", "--help"], "Usage: loadgen sessions [OPTIONS]"),
        (&["help", "sessions"], "--count <N>"),
        (&["--version"], "loadgen 0.1.0"),
    ] {
        let out = loadgen(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stdout).contains(shows),
            "{args:?}: {}",
            text(&out.stdout)
        );
    }
}

#[test]
fn usage_errors_exit_2_and_name_the_flag() {
    for (args, says) in [
        (
            &["run", "--bogus", "1"][..],
            "unexpected argument '--bogus'",
        ),
        (
            &["run", "--sessions=x"],
            "invalid value 'x' for '--sessions <N>'",
        ),
        (
            &["run", "--sessions"],
            "a value is required for '--sessions <N>'",
        ),
        (
            &["sessions", "--count", "-3"],
            "invalid value '-3' for '--count <N>'",
        ),
        (&["run", "--read-pct", "101"], "--read-pct must be 0..=100"),
        (&["compare", "--a", "127.0.0.1:1"], "--b <ADDRS>"),
        (&["report", "a.json"], "--out <FILE.html>"),
        (&["nope"], "unrecognized subcommand 'nope'"),
    ] {
        let out = loadgen(args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn a_failure_past_the_command_line_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let page = dir.path().join("r.html");
    let out = loadgen(&[
        "report",
        missing.to_str().unwrap(),
        "--out",
        page.to_str().unwrap(),
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("loadgen: "), "{err}");
    assert!(!page.exists());
}
