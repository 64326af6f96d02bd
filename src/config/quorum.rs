//! The ensemble part of `zoo.cfg`: `server.N` lines, `myid`, and the quorum keys.
//!
//! `server.N=host:quorumPort:electionPort[:participant|:observer][;[clientAddr:]clientPort]`,
//! with `[v6]` hosts in brackets, as ZooKeeper 3.8 reads it. No `server.N` line, or a single
//! participant with `standaloneEnabled=true` (the default), is a standalone server; anything
//! else is an ensemble, and then `dataDir/myid` must name one of the servers.
//!
//! The server lines are in `zoo.cfg`, or, when it names `dynamicConfigFile=PATH`, in that
//! file only, as ZooKeeper 3.5+ has them (QuorumPeerConfig.parse):
//!
//! DynamicFile = (ServerLine | Comment | Blank)*;  ServerLine = "server." N "=" spec
//! Version     = the hex digits after the last '.' of PATH (`zoo.cfg.dynamic.100000000`),
//!               else 0. A `version=` line inside the file is refused, as ZooKeeper does.
//! PATH is opened as given: a relative one from the working directory, as ZooKeeper does.
//! Not here: `group.N`/`weight.N` (hierarchical quorums) and reconfiguration; both are
//! refused at start-up.

use super::{bad, ConfigError, RawConfig};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnerType {
    Participant,
    Observer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumServer {
    pub id: i64,
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
    pub kind: LearnerType,
    /// `;[clientAddr:]clientPort`, when given.
    pub client: Option<(Option<String>, u16)>,
}

/// An ensemble: every server, and which one this is.
#[derive(Debug, Clone)]
pub struct Quorum {
    pub servers: Vec<QuorumServer>,
    pub my_id: i64,
    pub quorum_listen_on_all_ips: bool,
    pub cnx_timeout_ms: u32,
    pub leader_serves: bool,
    /// ZooKeeper's config version (hex on disk): the suffix of the dynamic file's name, or
    /// `version=` in a zoo.cfg that lists the servers itself; 0 when neither gives one.
    pub config_version: i64,
}

impl Quorum {
    pub fn me(&self) -> &QuorumServer {
        self.servers
            .iter()
            .find(|s| s.id == self.my_id)
            .expect("validated: myid is in the server list")
    }
    /// Servers that vote (observers do not).
    pub fn voters(&self) -> impl Iterator<Item = &QuorumServer> {
        self.servers
            .iter()
            .filter(|s| s.kind == LearnerType::Participant)
    }
}

fn port(key: &str, value: &str, p: &str) -> Result<u16, ConfigError> {
    match p.trim().parse::<i64>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        Ok(n) => Err(bad(key, value, format!("port {n} out of range 1-65535"))),
        Err(_) => Err(bad(key, value, format!("{p:?} is not a port number"))),
    }
}

/// Splits `host:rest` where host may be `[v6]`.
fn host_and_rest<'a>(
    key: &str,
    value: &str,
    s: &'a str,
) -> Result<(&'a str, &'a str), ConfigError> {
    if let Some(v6) = s.strip_prefix('[') {
        let end = v6
            .find(']')
            .ok_or_else(|| bad(key, value, "unclosed [ in an IPv6 address"))?;
        let rest = v6[end + 1..]
            .strip_prefix(':')
            .ok_or_else(|| bad(key, value, "expected host:quorumPort:electionPort"))?;
        return Ok((&v6[..end], rest));
    }
    s.split_once(':')
        .ok_or_else(|| bad(key, value, "expected host:quorumPort:electionPort"))
}

/// One `server.N` line.
pub fn parse_server(key: &str, value: &str) -> Result<QuorumServer, ConfigError> {
    let id: i64 = key["server.".len()..]
        .parse()
        .ok()
        .filter(|&n| n >= 0)
        .ok_or_else(|| {
            bad(
                key,
                value,
                "the server id N in server.N must be a number >= 0",
            )
        })?;
    let (addrs, client) = match value.split_once(';') {
        Some((a, c)) => (a.trim(), Some(c.trim())),
        None => (value.trim(), None),
    };
    if addrs.contains('|') {
        return Err(bad(
            key,
            value,
            "several addresses per server are not supported",
        ));
    }
    let (host, rest) = host_and_rest(key, value, addrs)?;
    let parts: Vec<&str> = rest.split(':').collect();
    let (quorum_port, election_port, kind) = match parts.as_slice() {
        [q, e] => (
            port(key, value, q)?,
            port(key, value, e)?,
            LearnerType::Participant,
        ),
        [q, e, t] => {
            let kind = match t.to_ascii_lowercase().as_str() {
                "participant" => LearnerType::Participant,
                "observer" => LearnerType::Observer,
                _ => {
                    return Err(bad(
                        key,
                        value,
                        format!("{t:?}: expected participant or observer"),
                    ))
                }
            };
            (port(key, value, q)?, port(key, value, e)?, kind)
        }
        _ => {
            return Err(bad(
                key,
                value,
                "expected host:quorumPort:electionPort[:type]",
            ))
        }
    };
    if host.is_empty() {
        return Err(bad(key, value, "empty host"));
    }
    if quorum_port == election_port {
        return Err(bad(key, value, "the quorum and election ports must differ"));
    }
    let client = match client {
        None | Some("") => None,
        Some(c) => Some(match c.rsplit_once(':') {
            Some((a, p)) => {
                let a = a.trim_start_matches('[').trim_end_matches(']');
                (Some(a.to_owned()), port(key, value, p)?)
            }
            None => (None, port(key, value, c)?),
        }),
    };
    Ok(QuorumServer {
        id,
        host: host.to_owned(),
        quorum_port,
        election_port,
        kind,
        client,
    })
}

/// The quorum keys besides the server lines.
#[derive(Debug, Clone)]
pub struct QuorumKeys {
    pub peer_type: Option<LearnerType>,
    pub standalone_enabled: bool,
    pub quorum_listen_on_all_ips: bool,
    pub cnx_timeout_ms: u32,
    pub leader_serves: bool,
    pub config_version: i64,
}

impl Default for QuorumKeys {
    fn default() -> Self {
        QuorumKeys {
            peer_type: None,
            standalone_enabled: true,
            quorum_listen_on_all_ips: false,
            cnx_timeout_ms: 5000,
            leader_serves: true,
            config_version: 0,
        }
    }
}

/// ZooKeeper's config version from a dynamic file's name: the hex digits after its last
/// '.' (`zoo.cfg.dynamic.100000000` is 0x100000000); `None` when there are none, as in
/// QuorumPeerConfig.getVersionFromFilename.
pub fn version_from_file_name(path: &str) -> Option<i64> {
    let (_, suffix) = path.rsplit_once('.')?;
    if suffix.is_empty() || !suffix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    i64::from_str_radix(suffix, 16).ok()
}

/// What a dynamic config file says.
#[derive(Debug)]
pub struct DynamicFile {
    pub path: PathBuf,
    pub servers: Vec<QuorumServer>,
    /// `server.N` keys the file gives more than once.
    pub duplicates: Vec<String>,
    pub config_version: i64,
}

/// Reads `dynamicConfigFile=value` as ZooKeeper 3.5+ does: only `server.N` lines; the
/// version comes from the file name. Errors name the file, or the key when it cannot be read.
pub fn read_dynamic_file(key: &str, value: &str) -> Result<DynamicFile, ConfigError> {
    let path = PathBuf::from(value);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        let mut why = format!("cannot read it: {e}");
        if path.is_relative() {
            let cwd = std::env::current_dir().unwrap_or_default();
            why.push_str(&format!(
                " (a relative path is taken from the working directory, {}, as ZooKeeper does)",
                cwd.display()
            ));
        }
        bad(key, value, why)
    })?;
    let in_file = |inner: ConfigError| ConfigError::InFile {
        path: path.clone(),
        inner: Box::new(inner),
    };
    let raw = RawConfig::parse(&text).map_err(in_file)?;
    let mut servers = Vec::new();
    for (k, v) in &raw.entries {
        let (k, v) = (k.as_str(), v.as_str());
        if k.starts_with("server.") {
            servers.push(parse_server(k, v).map_err(in_file)?);
        } else if k.starts_with("group") || k.starts_with("weight") {
            return Err(in_file(bad(
                k,
                v,
                "not supported yet (hierarchical quorums)",
            )));
        } else if k == "version" {
            return Err(in_file(bad(
                k,
                v,
                "a dynamic file must not hold its version; as in ZooKeeper, it is the hex \
                 suffix of the file's name (zoo.cfg.dynamic.100000000)",
            )));
        } else {
            return Err(in_file(bad(
                k,
                v,
                "not allowed in a dynamic config file, which holds server.N lines only",
            )));
        }
    }
    Ok(DynamicFile {
        path,
        servers,
        duplicates: raw.duplicates,
        config_version: version_from_file_name(value).unwrap_or(0),
    })
}

/// `zoo.cfg` + ".dynamic.next": ZooKeeper's record of a reconfiguration that was proposed
/// and not committed. Its servers may be the ensemble by now: Paddock, which has no
/// reconfiguration, will not guess.
pub fn pending_reconfig_file(cfg_path: &Path) -> PathBuf {
    let mut s = cfg_path.as_os_str().to_owned();
    s.push(".dynamic.next");
    PathBuf::from(s)
}

#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error("{0} is given twice")]
    Duplicate(String),
    #[error("server.{a} and server.{b} use the same address {addr}")]
    SameAddress { a: i64, b: i64, addr: String },
    #[error("an ensemble needs at least one participant; every server.N is an observer")]
    NoVoters,
    #[error("{} is missing: the server list describes an ensemble of {n} servers, and each member needs dataDir/myid with its server id", .path.display())]
    MyIdMissing { path: std::path::PathBuf, n: usize },
    #[error("{}: {text:?} is not a server id", .path.display())]
    MyIdBad {
        path: std::path::PathBuf,
        text: String,
    },
    #[error("myid {id} ({}) is not in the server list ({list})", .path.display())]
    MyIdUnknown {
        id: i64,
        path: std::path::PathBuf,
        list: String,
    },
}

/// Decides standalone or ensemble from the server lines and, for an ensemble, reads
/// `myid` from the data directory and checks it. `duplicates` are server keys the file
/// gave more than once.
pub fn resolve(
    mut servers: Vec<QuorumServer>,
    duplicates: &[String],
    keys: &QuorumKeys,
    data_dir: &std::path::Path,
) -> Result<Option<Quorum>, QuorumError> {
    if let Some(d) = duplicates.first() {
        return Err(QuorumError::Duplicate(d.clone()));
    }
    servers.sort_by_key(|s| s.id);
    for (i, a) in servers.iter().enumerate() {
        for b in &servers[i + 1..] {
            for (pa, pb) in [
                (a.quorum_port, b.quorum_port),
                (a.election_port, b.election_port),
                (a.quorum_port, b.election_port),
                (a.election_port, b.quorum_port),
            ] {
                if a.host == b.host && pa == pb {
                    return Err(QuorumError::SameAddress {
                        a: a.id,
                        b: b.id,
                        addr: format!("{}:{pa}", a.host),
                    });
                }
            }
        }
    }
    let voters = servers
        .iter()
        .filter(|s| s.kind == LearnerType::Participant)
        .count();
    if servers.is_empty() || (servers.len() == 1 && voters == 1 && keys.standalone_enabled) {
        return Ok(None);
    }
    if voters == 0 {
        return Err(QuorumError::NoVoters);
    }
    let path = data_dir.join("myid");
    let text = std::fs::read_to_string(&path).map_err(|_| QuorumError::MyIdMissing {
        path: path.clone(),
        n: servers.len(),
    })?;
    let my_id: i64 = text.trim().parse().map_err(|_| QuorumError::MyIdBad {
        path: path.clone(),
        text: text.trim().to_owned(),
    })?;
    let Some(me) = servers.iter().find(|s| s.id == my_id) else {
        let list = servers
            .iter()
            .map(|s| format!("server.{}", s.id))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(QuorumError::MyIdUnknown {
            id: my_id,
            path,
            list,
        });
    };
    if let Some(pt) = keys.peer_type {
        if pt != me.kind {
            log::warn!(
                "peerType={pt:?} but server.{my_id} is a {:?}: going by the server list, as ZooKeeper does",
                me.kind
            );
        }
    }
    Ok(Some(Quorum {
        servers,
        my_id,
        quorum_listen_on_all_ips: keys.quorum_listen_on_all_ips,
        cnx_timeout_ms: keys.cnx_timeout_ms,
        leader_serves: keys.leader_serves,
        config_version: keys.config_version,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_lines() {
        let s = parse_server("server.3", "10.0.0.3:2888:3888").unwrap();
        assert_eq!(
            (s.id, s.host.as_str(), s.quorum_port, s.election_port),
            (3, "10.0.0.3", 2888, 3888)
        );
        assert_eq!(s.kind, LearnerType::Participant);
        assert_eq!(s.client, None);
        let s = parse_server("server.4", "h4:2888:3888:observer;0.0.0.0:2181").unwrap();
        assert_eq!(s.kind, LearnerType::Observer);
        assert_eq!(s.client, Some((Some("0.0.0.0".into()), 2181)));
        let s = parse_server("server.5", "[::1]:2888:3888;2182").unwrap();
        assert_eq!((s.host.as_str(), s.client), ("::1", Some((None, 2182))));
        for bad in [
            "h:2888",
            "h:2888:3888:leader",
            "h:0:3888",
            "h:2888:2888",
            "h:2888:70000",
            "a:1:2|b:1:2",
            "[::1:2888:3888",
        ] {
            assert!(parse_server("server.1", bad).is_err(), "{bad}");
        }
        assert!(parse_server("server.x", "h:1:2").is_err());
    }

    /// As QuorumPeerConfig.getVersionFromFilename.
    #[test]
    fn version_from_the_dynamic_file_name() {
        assert_eq!(
            version_from_file_name("/etc/zk/zoo.cfg.dynamic.100000000"),
            Some(0x1_0000_0000)
        );
        assert_eq!(version_from_file_name("zoo.cfg.dynamic.0"), Some(0));
        assert_eq!(version_from_file_name("zoo.cfg.dynamic"), None);
        assert_eq!(version_from_file_name("servers"), None);
        assert_eq!(version_from_file_name("zoo.cfg.dynamic."), None);
        assert_eq!(version_from_file_name("x.-1"), None);
        assert_eq!(version_from_file_name("x.ffffffffffffffffff"), None);
    }
}
