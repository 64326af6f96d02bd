//! `zoo.cfg`: ZooKeeper's standalone keys plus Paddock's own (`paddock.*`).
//!
//! Two stages, as in STYLE.md: `RawConfig::parse` keeps what the file says (Java properties
//! syntax: `key=value`, `key: value`, `#`/`!` comments); `Config::from_raw` checks every
//! value and names the key and value in each error. Unknown keys are logged and ignored,
//! as ZooKeeper does. Nothing is silently "fixed" except what ZooKeeper itself fixes
//! (autopurge.snapRetainCount below 3 is raised to 3, with a log line).

pub mod quorum;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{key}={value}: {why}")]
    BadValue {
        key: String,
        value: String,
        why: String,
    },
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("{path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("line {line}: cannot parse {text:?}")]
    Syntax { line: usize, text: String },
    #[error("{0}")]
    Quorum(#[from] quorum::QuorumError),
}

/// What the file says, key → value, in file order of last appearance.
#[derive(Debug, Default, Clone)]
pub struct RawConfig {
    pub entries: BTreeMap<String, String>,
    /// `server.N` keys given more than once (the last one would win; for a server list
    /// that is a mistake, reported by `Config::from_raw`).
    pub duplicates: Vec<String>,
}

impl RawConfig {
    pub fn parse(text: &str) -> Result<RawConfig, ConfigError> {
        let mut entries = BTreeMap::new();
        let mut duplicates = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') || l.starts_with('!') {
                continue;
            }
            let sep = l.find(['=', ':']).or_else(|| l.find(char::is_whitespace));
            let Some(at) = sep else {
                return Err(ConfigError::Syntax {
                    line: i + 1,
                    text: l.to_owned(),
                });
            };
            let key = l[..at].trim();
            let value = l[at + 1..].trim();
            if key.is_empty() {
                return Err(ConfigError::Syntax {
                    line: i + 1,
                    text: l.to_owned(),
                });
            }
            if entries.insert(key.to_owned(), value.to_owned()).is_some()
                && key.starts_with("server.")
            {
                duplicates.push(key.to_owned());
            }
        }
        Ok(RawConfig {
            entries,
            duplicates,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub tick_ms: u32,
    pub data_dir: PathBuf,
    pub data_log_dir: PathBuf,
    pub client_port: u16,
    pub client_port_address: Option<IpAddr>,
    /// Per client IP; 0 = unlimited.
    pub max_client_cnxns: u32,
    /// Listen backlog of the client port; -1 = Paddock's default (1024).
    pub client_port_listen_backlog: i32,
    pub session_timeout_ms_min: u32,
    pub session_timeout_ms_max: u32,
    pub global_outstanding_limit: usize,
    pub snap_count: u64,
    pub prealloc_bytes: u64,
    pub force_sync: bool,
    pub jute_maxbuffer: usize,
    pub autopurge_snap_retain_count: u32,
    pub autopurge_purge_interval_hours: u32,
    /// Enabled four-letter words; contains "*" for all.
    pub four_letter_words: Vec<String>,
    pub extended_types: bool,
    /// ZooKeeper's tree digest in log records and snapshots (`digest.enabled`, default true).
    pub digest_enabled: bool,
    pub container_check_interval_ms: u64,
    pub container_max_per_minute: u32,
    pub super_digest: Option<String>,
    pub server_id: i64,
    pub init_limit: u32,
    pub sync_limit: u32,
    /// Paddock: reactor threads (default: cores - 1, at least 1).
    pub reactor_threads: usize,
    /// Paddock: pin reactors (and the writer) to cores.
    pub pin_cores: bool,
    /// Paddock: requests one connection may have in flight before reading pauses.
    pub outstanding_per_connection_max: usize,
    /// Paddock: bytes queued to one client before reading pauses; 4x this disconnects.
    pub outbound_bytes_max: usize,
    /// Paddock: txns one group commit takes at most.
    pub batch_txns_max: usize,
    /// Paddock, benchmark only: extra delay after each fsync, to model slow media.
    pub sync_delay_us: u64,
    /// An ensemble member without a quorum serves read-only clients (ZooKeeper's
    /// `readonlymode.enabled` system property; a zoo.cfg key here).
    pub read_only_enabled: bool,
    /// Paddock: committed txns a leader keeps in memory to sync learners by diff; a
    /// learner further behind gets a snapshot (ZooKeeper's commitLogCount, 500).
    pub diff_window_txns: usize,
    /// `None`: standalone. `Some`: the ensemble this server is a member of.
    pub quorum: Option<quorum::Quorum>,
    pub raw: RawConfig,
}

fn default_reactors() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .saturating_sub(1)
        .max(1)
}

fn bad(key: &str, value: &str, why: impl Into<String>) -> ConfigError {
    ConfigError::BadValue {
        key: key.to_owned(),
        value: value.to_owned(),
        why: why.into(),
    }
}

fn num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value
        .parse::<T>()
        .map_err(|_| bad(key, value, "not a valid number"))
}

fn boolean(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" => Ok(true),
        "false" | "no" => Ok(false),
        _ => Err(bad(key, value, "expected true/false or yes/no")),
    }
}

/// Keys ZooKeeper accepts that a standalone Paddock reads but does not act on yet.
const ACCEPTED_UNUSED: &[&str] = &[
    "admin.enableServer",
    "admin.serverPort",
    "admin.serverAddress",
    "reconfigEnabled",
    "electionAlg",
    "secureClientPort",
    "metricsProvider.className",
    "syncEnabled",
    "localSessionsEnabled",
    "localSessionsUpgradingEnabled",
    "maxResponseCacheSize",
    "snapSizeLimitInKb",
    "fsync.warningthresholdms",
    "txnLogSizeLimitInKb",
    "dynamicConfigFile",
    "skipACL",
];

impl Config {
    /// The embedded default: port 2181, data under `./paddock-data`, no file needed.
    pub fn embedded_default() -> Config {
        let raw =
            RawConfig::parse("tickTime=2000\ndataDir=paddock-data\nclientPort=2181\n").unwrap();
        Config::from_raw(raw).expect("embedded default config is valid")
    }

    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        Config::from_raw(RawConfig::parse(&text)?)
    }

    pub fn from_raw(raw: RawConfig) -> Result<Config, ConfigError> {
        let mut c = Config {
            tick_ms: 3000,
            data_dir: PathBuf::new(),
            data_log_dir: PathBuf::new(),
            client_port: 2181,
            client_port_address: None,
            max_client_cnxns: 60,
            client_port_listen_backlog: -1,
            session_timeout_ms_min: 0,
            session_timeout_ms_max: 0,
            global_outstanding_limit: 1000,
            snap_count: 100_000,
            prealloc_bytes: 64 * 1024 * 1024,
            force_sync: true,
            jute_maxbuffer: crate::types::JUTE_MAXBUFFER_DEFAULT,
            autopurge_snap_retain_count: 3,
            autopurge_purge_interval_hours: 0,
            four_letter_words: vec!["srvr".into()],
            extended_types: false,
            digest_enabled: true,
            container_check_interval_ms: 60_000,
            container_max_per_minute: 10_000,
            super_digest: None,
            server_id: 1,
            init_limit: 10,
            sync_limit: 5,
            reactor_threads: default_reactors(),
            pin_cores: true,
            outstanding_per_connection_max: 1000,
            outbound_bytes_max: 4 << 20,
            batch_txns_max: 1000,
            diff_window_txns: 10_000,
            read_only_enabled: false,
            sync_delay_us: 0,
            raw: raw.clone(),
            quorum: None,
        };
        let (mut min_set, mut max_set, mut data_dir, mut data_log_dir) = (None, None, None, None);
        let mut servers = Vec::new();
        let mut qkeys = quorum::QuorumKeys::default();
        for (k, v) in &raw.entries {
            let (k, v) = (k.as_str(), v.as_str());
            let key = k.strip_prefix("zookeeper.").unwrap_or(k);
            match key {
                "tickTime" => {
                    c.tick_ms = num(k, v)?;
                    if c.tick_ms == 0 {
                        return Err(bad(k, v, "must be > 0"));
                    }
                }
                "dataDir" => data_dir = Some(PathBuf::from(v)),
                "dataLogDir" => data_log_dir = Some(PathBuf::from(v)),
                "clientPort" => c.client_port = num(k, v)?,
                "clientPortAddress" => {
                    c.client_port_address =
                        Some(v.parse().map_err(|_| bad(k, v, "not an IP address"))?)
                }
                "maxClientCnxns" => c.max_client_cnxns = num(k, v)?,
                "clientPortListenBacklog" => {
                    c.client_port_listen_backlog = num(k, v)?;
                    if c.client_port_listen_backlog == 0 || c.client_port_listen_backlog < -1 {
                        return Err(bad(k, v, "must be > 0, or -1 for the default"));
                    }
                }
                "minSessionTimeout" => min_set = Some(num::<i64>(k, v)?),
                "maxSessionTimeout" => max_set = Some(num::<i64>(k, v)?),
                "globalOutstandingLimit" => {
                    let n: i64 = num(k, v)?;
                    // ZooKeeper treats a non-positive limit as "use the default".
                    c.global_outstanding_limit = if n <= 0 { 1000 } else { n as usize };
                }
                "snapCount" => {
                    c.snap_count = num(k, v)?;
                    if c.snap_count < 2 {
                        return Err(bad(k, v, "must be >= 2"));
                    }
                }
                "preAllocSize" => {
                    let kb: u64 = num(k, v)?;
                    if kb == 0 {
                        return Err(bad(k, v, "must be > 0 (KiB)"));
                    }
                    c.prealloc_bytes = kb * 1024;
                }
                "forceSync" => c.force_sync = boolean(k, v)?,
                "jute.maxbuffer" => {
                    let n: i64 = num(k, v)?;
                    if n <= 0 {
                        return Err(bad(k, v, "must be > 0"));
                    }
                    c.jute_maxbuffer = n as usize;
                }
                "autopurge.snapRetainCount" => {
                    c.autopurge_snap_retain_count = num(k, v)?;
                    if c.autopurge_snap_retain_count < 3 {
                        log::warn!("{k}={v} is below the minimum; using 3");
                        c.autopurge_snap_retain_count = 3;
                    }
                }
                "autopurge.purgeInterval" => c.autopurge_purge_interval_hours = num(k, v)?,
                "4lw.commands.whitelist" => {
                    c.four_letter_words = v
                        .split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect();
                    if !c.four_letter_words.iter().any(|w| w == "srvr") {
                        c.four_letter_words.push("srvr".into());
                    }
                }
                "extendedTypesEnabled" => c.extended_types = boolean(k, v)?,
                "digest.enabled" => c.digest_enabled = boolean(k, v)?,
                "znode.container.checkIntervalMs" => {
                    c.container_check_interval_ms = num(k, v)?;
                    if c.container_check_interval_ms == 0 {
                        return Err(bad(k, v, "must be > 0"));
                    }
                }
                "znode.container.maxPerMinute" => c.container_max_per_minute = num(k, v)?,
                "DigestAuthenticationProvider.superDigest" => {
                    if !v.contains(':') {
                        return Err(bad(k, v, "expected user:base64digest"));
                    }
                    c.super_digest = Some(v.to_owned());
                }
                "initLimit" => c.init_limit = num(k, v)?,
                "syncLimit" => c.sync_limit = num(k, v)?,
                "paddock.reactorThreads" => {
                    c.reactor_threads = num(k, v)?;
                    if c.reactor_threads == 0 || c.reactor_threads > 256 {
                        return Err(bad(k, v, "must be 1..=256"));
                    }
                }
                "paddock.pinCores" => c.pin_cores = boolean(k, v)?,
                "paddock.outstandingPerConnection" => {
                    c.outstanding_per_connection_max = num(k, v)?;
                    if c.outstanding_per_connection_max == 0 {
                        return Err(bad(k, v, "must be > 0"));
                    }
                }
                "paddock.outboundBytesMax" => {
                    c.outbound_bytes_max = num(k, v)?;
                    if c.outbound_bytes_max < 65536 {
                        return Err(bad(k, v, "must be >= 65536"));
                    }
                }
                "paddock.batchTxnsMax" => {
                    c.batch_txns_max = num(k, v)?;
                    if c.batch_txns_max == 0 {
                        return Err(bad(k, v, "must be > 0"));
                    }
                }
                "paddock.syncDelayUs" => c.sync_delay_us = num(k, v)?,
                "paddock.diffWindowTxns" => {
                    c.diff_window_txns = num(k, v)?;
                    if c.diff_window_txns == 0 {
                        return Err(bad(k, v, "must be > 0"));
                    }
                }
                _ if key.starts_with("server.") => servers.push(quorum::parse_server(k, v)?),
                "peerType" => {
                    qkeys.peer_type = Some(match v.to_ascii_lowercase().as_str() {
                        "participant" => quorum::LearnerType::Participant,
                        "observer" => quorum::LearnerType::Observer,
                        _ => return Err(bad(k, v, "expected participant or observer")),
                    })
                }
                "standaloneEnabled" => qkeys.standalone_enabled = boolean(k, v)?,
                "quorumListenOnAllIPs" => qkeys.quorum_listen_on_all_ips = boolean(k, v)?,
                "cnxTimeout" => qkeys.cnx_timeout_ms = num(k, v)?,
                "leaderServes" => qkeys.leader_serves = boolean(k, v)?,
                "readonlymode.enabled" => c.read_only_enabled = boolean(k, v)?,
                _ if ACCEPTED_UNUSED.contains(&key)
                    || key.starts_with("ssl.")
                    || key.starts_with("authProvider.") => {}
                _ => log::warn!("unknown configuration key {k}={v}: ignored"),
            }
        }
        c.data_dir = data_dir.ok_or(ConfigError::Missing("dataDir"))?;
        c.quorum = quorum::resolve(servers, &c.raw.duplicates, &qkeys, &c.data_dir)?;
        if let Some(q) = &c.quorum {
            // `server.N=...;[addr:]port` gives this member's client port, as in ZooKeeper.
            if let Some((addr, port)) = &q.me().client {
                c.client_port = *port;
                if let Some(a) = addr {
                    c.client_port_address = Some(a.parse().map_err(|_| {
                        bad(&format!("server.{}", q.my_id), a, "not an IP address")
                    })?);
                }
            }
        }
        c.data_log_dir = data_log_dir.unwrap_or_else(|| c.data_dir.clone());
        let tick = c.tick_ms as i64;
        let min = min_set.filter(|&m| m >= 0).unwrap_or(tick * 2);
        let max = max_set.filter(|&m| m >= 0).unwrap_or(tick * 20);
        if min > max {
            return Err(bad(
                "minSessionTimeout",
                &min.to_string(),
                format!("must not be larger than maxSessionTimeout ({max})"),
            ));
        }
        c.session_timeout_ms_min = min as u32;
        c.session_timeout_ms_max = max as u32;
        Ok(c)
    }

    pub fn four_letter_word_enabled(&self, cmd: &str) -> bool {
        self.four_letter_words.iter().any(|w| w == "*" || w == cmd)
    }

    /// Clamp a requested session timeout into [min, max].
    pub fn negotiate_timeout(&self, requested_ms: i32) -> i32 {
        (requested_ms.max(0) as u32).clamp(self.session_timeout_ms_min, self.session_timeout_ms_max)
            as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn cfg(s: &str) -> Result<Config, ConfigError> {
        Config::from_raw(RawConfig::parse(s)?)
    }
    #[test]
    fn defaults_and_errors() {
        let c = cfg("dataDir=/tmp/x\ntickTime=2000\n").unwrap();
        assert_eq!(
            (c.session_timeout_ms_min, c.session_timeout_ms_max),
            (4000, 40000)
        );
        assert_eq!(c.data_log_dir, PathBuf::from("/tmp/x"));
        let e = cfg("dataDir=/x\ntickTime=abc\n").unwrap_err().to_string();
        assert!(e.contains("tickTime=abc"), "{e}");
        assert!(cfg("tickTime=2000\n").is_err());
        assert!(cfg("dataDir=/x\nminSessionTimeout=5000\nmaxSessionTimeout=4000").is_err());
        assert!(cfg("dataDir=/x\nsomethingElse=1\n").is_ok());
        assert!(cfg("dataDir=/x\nforceSync=maybe\n").is_err());
    }
}
