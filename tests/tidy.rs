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
/// Words a pure-module file may name after all: the whole-server simulator drives real
/// servers, whose snapshots and epoch files live in data directories it makes (on a
/// tmpfs), so it writes their `myid`. Its clock, disk and network stay simulated.
const ALLOWED: &[(&str, &str)] = &[("src/testing/server.rs", "std::fs")];
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
                let allowed = ALLOWED.iter().any(|(p, w)| f.ends_with(p) && w == word);
                if code.contains(word) && !allowed {
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

/// Issue 15: imports run one way. The crate's top-level modules (src/<m>/ or src/<m>.rs)
/// import each other (`crate::<m>`, outside `#[cfg(test)]` code) without a cycle: a
/// newcomer can read them bottom-up (proto, tree, txn, ... , server, net, start).
#[test]
fn modules_import_each_other_without_a_cycle() {
    use std::collections::{BTreeMap, BTreeSet};
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules: BTreeMap<String, Vec<std::path::PathBuf>> = BTreeMap::new();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_str().unwrap().to_owned();
        if name == "lib" || name == "main" {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&p, &mut files);
        if !files.is_empty() {
            modules.insert(name, files);
        }
    }
    assert!(
        modules.len() >= 15,
        "found the modules: {:?}",
        modules.keys()
    );
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (m, files) in &modules {
        let out = edges.entry(m.as_str()).or_default();
        for f in files {
            let text = std::fs::read_to_string(f).unwrap();
            // Tests may reach anywhere; comments name what they like.
            let code: String = text
                .split("#[cfg(test)]")
                .next()
                .unwrap()
                .lines()
                .map(|l| l.split("//").next().unwrap())
                .collect::<Vec<_>>()
                .join("\n");
            for (at, _) in code.match_indices("crate::") {
                let rest = &code[at + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if let Some((target, _)) = modules.get_key_value(&name) {
                    if target != m {
                        out.insert(target.as_str());
                    }
                }
            }
        }
    }
    // A module is in a cycle when it can reach itself.
    let mut cycles = Vec::new();
    for &start in edges.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(&str, Vec<&str>)> = vec![(start, vec![start])];
        while let Some((m, path)) = stack.pop() {
            for &next in &edges[m] {
                if next == start {
                    let mut cycle = path.clone();
                    cycle.push(start);
                    cycles.push(cycle.join(" -> "));
                } else if seen.insert(next) {
                    let mut p = path.clone();
                    p.push(next);
                    stack.push((next, p));
                }
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "modules that import each other in a circle:\n{}",
        cycles.join("\n")
    );
}

/// Issue 15: errors are typed. No function in src/ returns (or takes a callback returning)
/// `Result<_, String>`: a reason is an enum (or a type with its own Display) that callers
/// can match on.
#[test]
fn no_string_errors_in_src() {
    let mut files = Vec::new();
    rust_files(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut bad = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap().replace(' ', "");
            if code.contains("Result<") && code.contains(",String>") {
                bad.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "Result<_, String> in src:\n{}",
        bad.join("\n")
    );
}
