//! The pure core reads no clock, draws no randomness and touches no socket or file
//! (ARCHITECTURE.md, STYLE.md 1): a pure module that names one of these fails here.

const PURE: &[&str] = &[
    "src/proto",
    "src/tree",
    "src/session",
    "src/watch",
    "src/acl",
    "src/txn",
    "src/types.rs",
    "src/zab",
    "src/testing",
];
const FORBIDDEN: &[&str] = &[
    "std::fs",
    "std::net",
    "std::thread",
    "Instant",
    "SystemTime",
    "mio::",
    "libc::",
    "memmap2",
    "thread_rng",
    "Mutex",
];

fn rust_files(path: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            rust_files(&e.unwrap().path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_owned());
    }
}

#[test]
fn pure_modules_name_no_clock_socket_file_or_lock() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for p in PURE {
        rust_files(&root.join(p), &mut files);
    }
    assert!(files.len() >= 10, "found the pure modules: {files:?}");
    let mut bad = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap();
            for word in FORBIDDEN {
                if code.contains(word) {
                    bad.push(format!("{}:{}: {word}", f.display(), i + 1));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "pure modules must not name these:\n{}",
        bad.join("\n")
    );
}
