//! `zoo.cfg`: ZooKeeper's standalone keys plus Paddock's own (`paddock.*`).
//!
//! Two stages, as in STYLE.md: `RawConfig::parse` keeps what the file says (Java properties
//! syntax: `key=value`, `key: value`, `#`/`!` comments); `Config::from_raw` checks every
//! value and names the key and value in each error. Unknown keys are logged and ignored,
//! as ZooKeeper does. Nothing is silently "fixed" except what ZooKeeper itself fixes
//! (autopurge.snapRetainCount below 3 is raised to 3, with a log line).
//!
//! Holds: a ZooKeeper key that asks for security, membership or durability Paddock does not
//! have (quorum TLS, SASL, reconfiguration, local sessions...) stops start-up with one line naming
//! it (`UNIMPLEMENTED`); its default value, or one that asks for nothing missing, is
//! accepted. Keys that change none of those (admin.*, metricsProvider.*) are logged at warn
//! and ignored. Every error is one line: `ConfigError` has no `source`, so `{:#}` in
//! main.rs prints each cause once. No password or other secret is ever quoted
//! (`tls::shown`).

pub mod jaas;
pub mod quorum;
pub mod tls;

use std::collections::BTreeMap;
use std::net::{IpAddr, ToSocketAddrs};
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
    /// An error in a file `zoo.cfg` names (`dynamicConfigFile`). `inner` is not a `source`:
    /// the message already holds it, and a source would print it a second time.
    #[error("{}: {inner}", .path.display())]
    InFile {
        path: PathBuf,
        inner: Box<ConfigError>,
    },
    /// Transparent: the text is the quorum error's own, once (a `{0}` message with a
    /// `#[from]` source printed it twice under `{:#}`).
    #[error(transparent)]
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
    /// The entry for `key`, given with or without the `zookeeper.` prefix.
    pub fn get(&self, key: &str) -> Option<(&str, &str)> {
        self.entries
            .get_key_value(key)
            .or_else(|| self.entries.get_key_value(&format!("zookeeper.{key}")))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

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
    /// Requests larger than this (`largeRequestThreshold`; `None`: -1, not counted) count,
    /// from their length prefix until they are answered, against `large_request_max_bytes`
    /// in total (`largeRequestMaxBytes`, ZooKeeper's 100 MiB). ZooKeeper counts none by
    /// default; Paddock counts requests over 64 KiB, so partial frames are bounded in
    /// total.
    pub large_request_threshold: Option<usize>,
    pub large_request_max_bytes: usize,
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
    /// `secureClientPort`: a port that speaks TLS only.
    pub secure_client_port: Option<u16>,
    /// Whether the plain client port is opened: as in ZooKeeper, not when only
    /// `secureClientPort` is given.
    pub plain_client_port: bool,
    pub secure_client_port_address: Option<IpAddr>,
    /// `client.portUnification`: the plain port also takes TLS, told by the first byte.
    pub port_unification: bool,
    /// The client port's TLS settings (`ssl.*`), when a port takes TLS.
    pub client_tls: Option<tls::TlsKeys>,
    /// `zookeeper.X509AuthenticationProvider.superUser`: the DN that is super.
    pub x509_super_user: Option<String>,
    /// SASL on the client port: the JAAS `Server` section (`paddock.jaasConfig`, or
    /// `-Djava.security.auth.login.config` in SERVER_JVMFLAGS as ZooKeeper takes it).
    pub sasl: Option<crate::sasl::SaslServerConfig>,
    /// The schemes a session must hold an id of before any op but auth and sasl
    /// (`enforce.auth.schemes`, or `sasl` for `sessionRequireClientSASLAuth`); empty: off.
    pub enforce_auth: Vec<String>,
    /// `zookeeper.allowSaslFailedClients`: a failed SASL exchange is answered OK (with
    /// no id) instead of closing, unless SASL is enforced.
    pub allow_sasl_failed_clients: bool,
    /// `sslQuorum` (or `portUnification`): the quorum's TLS settings (`ssl.quorum.*`).
    pub quorum_tls: Option<tls::TlsKeys>,
    /// `portUnification`: the election and quorum ports take plain connections too.
    pub quorum_port_unification: bool,
    /// `sslQuorumReloadCertFiles`.
    pub ssl_quorum_reload: bool,
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

/// An error naming the key and its value (`****` for a password or other secret).
fn bad(key: &str, value: &str, why: impl Into<String>) -> ConfigError {
    ConfigError::BadValue {
        key: key.to_owned(),
        value: tls::shown(key, value).to_owned(),
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

/// A port: `min..=65535`.
fn port_number(key: &str, value: &str, min: u16) -> Result<u16, ConfigError> {
    let n: i64 = num(key, value)?;
    if n < min as i64 || n > 65535 {
        return Err(bad(key, value, format!("port out of range {min}-65535")));
    }
    Ok(n as u16)
}

/// An address or a host name, resolved as Java's InetAddress.getByName does: an IPv4
/// address first when the name has both.
fn ip_of(key: &str, value: &str, host: &str) -> Result<IpAddr, ConfigError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse() {
        return Ok(ip);
    }
    let addrs: Vec<IpAddr> = (host, 0)
        .to_socket_addrs()
        .map_err(|e| bad(key, value, format!("cannot resolve {host:?}: {e}")))?
        .map(|a| a.ip())
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| bad(key, value, format!("{host:?} resolves to no address")))
}

/// What Paddock does with a ZooKeeper key it does not implement. Boolean values read as
/// everywhere else (true/false, yes/no); others compare case-insensitively.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// Accepted when false (ZooKeeper's default); true stops start-up.
    RefuseTrue,
    /// Accepted when true (ZooKeeper's default); false stops start-up.
    RefuseFalse,
    /// Accepted when the value is one of these (ZooKeeper's default, or what Paddock does
    /// anyway); any other stops start-up.
    AcceptOnly(&'static [&'static str]),
    /// Any value stops start-up.
    Refuse,
    /// Accepted and ignored, with a warning: it changes no security, membership or
    /// durability.
    Ignore,
}

/// A ZooKeeper key Paddock does not implement.
struct Unimplemented {
    /// The key (without a `zookeeper.` prefix); ending in '.', every key under it.
    key: &'static str,
    rule: Rule,
    /// What the key asks for, for the message: "not supported yet (TLS on the client port)".
    what: &'static str,
}

const fn entry(key: &'static str, rule: Rule, what: &'static str) -> Unimplemented {
    Unimplemented { key, rule, what }
}

const DIGEST_PROVIDER: &str = "org.apache.zookeeper.server.auth.DigestAuthenticationProvider";
const IP_PROVIDER: &str = "org.apache.zookeeper.server.auth.IPAuthenticationProvider";
const X509_PROVIDER: &str = "org.apache.zookeeper.server.auth.X509AuthenticationProvider";
const SASL_PROVIDER: &str = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider";

/// The first entry that matches a key decides. Defaults as in ZooKeeper 3.8
/// (QuorumPeerConfig, QuorumAuth, ZooKeeperServer, AuthenticationHelper, ProviderRegistry).
const UNIMPLEMENTED: &[Unimplemented] = {
    use Rule::*;
    const SASL_QUORUM: &str = "SASL between servers";
    &[
        // Security: TLS.
        entry(
            "X509AuthenticationProvider.",
            Refuse,
            "X.509 settings other than superUser",
        ),
        // Security: authentication and ACLs. Paddock has ZooKeeper's two built-in
        // providers, digest and ip; naming them again asks for nothing new.
        entry(
            "authProvider.",
            AcceptOnly(&[DIGEST_PROVIDER, IP_PROVIDER, X509_PROVIDER, SASL_PROVIDER]),
            "authentication providers other than digest, ip, x509 and sasl",
        ),
        entry(
            "DigestAuthenticationProvider.enabled",
            RefuseFalse,
            "turning digest authentication off",
        ),
        entry(
            "DigestAuthenticationProvider.digestAlg",
            AcceptOnly(&["SHA1", "SHA-1"]),
            "ACL digests other than SHA1",
        ),
        // ZooKeeper skips ACLs only for "yes"; "true" is refused too, as a clear mistake.
        entry(
            "skipACL",
            AcceptOnly(&["no", "false"]),
            "turning ACL checks off",
        ),
        entry("quorum.auth.enableSasl", RefuseTrue, SASL_QUORUM),
        entry("quorum.auth.learnerRequireSasl", RefuseTrue, SASL_QUORUM),
        entry("quorum.auth.serverRequireSasl", RefuseTrue, SASL_QUORUM),
        entry(
            "quorum.auth.kerberos.servicePrincipal",
            AcceptOnly(&["zkquorum/localhost"]),
            "Kerberos between servers",
        ),
        entry(
            "quorum.auth.learner.saslLoginContext",
            AcceptOnly(&["QuorumLearner"]),
            SASL_QUORUM,
        ),
        entry(
            "quorum.auth.server.saslLoginContext",
            AcceptOnly(&["QuorumServer"]),
            SASL_QUORUM,
        ),
        entry("quorum.auth.", Refuse, SASL_QUORUM),
        // Membership.
        entry("reconfigEnabled", RefuseTrue, "dynamic reconfiguration"),
        entry("group.", Refuse, "hierarchical quorums"),
        entry("weight.", Refuse, "hierarchical quorums"),
        entry("oraclePath", Refuse, "an oracle for two-server ensembles"),
        entry(
            "observerMasterPort",
            AcceptOnly(&["0", "-1"]),
            "observers that sync from followers",
        ),
        entry("localSessionsEnabled", RefuseTrue, "local sessions"),
        // Durability.
        entry(
            "syncEnabled",
            RefuseFalse,
            "observers that skip their txn log",
        ),
        // Neither: read, ignored, logged.
        entry(
            "localSessionsUpgradingEnabled",
            Ignore,
            "it qualifies localSessionsEnabled, which is off",
        ),
        entry(
            "admin.",
            Ignore,
            "no AdminServer; the four-letter words answer on the client port",
        ),
        entry(
            "metricsProvider.",
            Ignore,
            "no metrics provider; mntr has the figures",
        ),
        entry("maxResponseCacheSize", Ignore, "no response cache"),
        entry(
            "snapSizeLimitInKb",
            Ignore,
            "snapshots follow snapCount only",
        ),
        entry("txnLogSizeLimitInKb", Ignore, "no txn log size limit"),
        entry("fsync.warningthresholdms", Ignore, "no slow-fsync warning"),
    ]
};

/// `Ok(true)`: an `UNIMPLEMENTED` key, accepted (ignored ones logged). `Ok(false)`: not one.
/// `key` is `k` without a `zookeeper.` prefix.
fn check_unimplemented(k: &str, key: &str, v: &str) -> Result<bool, ConfigError> {
    let Some(u) = UNIMPLEMENTED.iter().find(|u| {
        key == u.key || (u.key.ends_with('.') && key.starts_with(u.key) && key.len() > u.key.len())
    }) else {
        return Ok(false);
    };
    let accepted = match u.rule {
        Rule::RefuseTrue => !boolean(k, v)?,
        Rule::RefuseFalse => boolean(k, v)?,
        Rule::AcceptOnly(values) => values.iter().any(|a| a.eq_ignore_ascii_case(v)),
        Rule::Refuse => false,
        Rule::Ignore => {
            log::warn!(
                "{k}={}: accepted and ignored ({})",
                tls::shown(k, v),
                u.what
            );
            true
        }
    };
    if !accepted {
        return Err(bad(k, v, format!("not supported yet ({})", u.what)));
    }
    Ok(true)
}

/// The SASL server settings: the JAAS file's server section (`zookeeper.sasl.serverconfig`,
/// default `Server`) and the keys around it. `None` when there is no such section: SASL
/// packets are then answered as ZooKeeper answers them without a SASL server.
fn sasl_server(raw: &RawConfig) -> Result<Option<crate::sasl::SaslServerConfig>, ConfigError> {
    let Some((k, path)) = raw.get("paddock.jaasConfig") else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(k, path, e.to_string()))?;
    let jaas = jaas::parse(&text).map_err(|e| bad(k, path, e.to_string()))?;
    let section = raw.get("sasl.serverconfig").map_or("Server", |(_, v)| v);
    let Some(modules) = jaas.get(section) else {
        log::info!("{path}: no {section} section; SASL is off on the client port");
        return Ok(None);
    };
    let mut cfg = crate::sasl::SaslServerConfig::default();
    for m in modules {
        if m.class.ends_with("Krb5LoginModule") {
            return Err(bad(
                k,
                path,
                format!(
                    "section {section}: Kerberos (GSSAPI) on the client port is not supported yet"
                ),
            ));
        }
        for (o, v) in &m.options {
            if let Some(user) = o.strip_prefix("user_") {
                cfg.users.insert(user.to_owned(), tls::Secret::new(v));
            }
        }
    }
    let flag = |key: &str| -> Result<bool, ConfigError> {
        // ZooKeeper: exactly "true" turns these on.
        Ok(raw.get(key).is_some_and(|(_, v)| v == "true"))
    };
    cfg.remove_host = flag("kerberos.removeHostFromPrincipal")?;
    cfg.remove_realm = flag("kerberos.removeRealmFromPrincipal")?;
    cfg.super_password = raw
        .get("SASLAuthenticationProvider.superPassword")
        .map(|(_, v)| tls::Secret::new(v));
    for (key, v) in &raw.entries {
        let key = key.strip_prefix("zookeeper.").unwrap_or(key);
        if key == "superUser" || key.starts_with("superUser.") {
            cfg.super_users.push(v.clone());
        }
    }
    log::info!(
        "SASL on the client port: DIGEST-MD5 with {} user(s) from {path} section {section}",
        cfg.users.len()
    );
    Ok(Some(cfg))
}

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
        let raw = RawConfig::parse(&text)?;
        if let Some((k, v)) = raw.get("dynamicConfigFile") {
            let next = quorum::pending_reconfig_file(path);
            if next.exists() {
                return Err(bad(
                    k,
                    v,
                    format!(
                        "{} exists, a reconfiguration ZooKeeper had not finished: not supported yet (dynamic reconfiguration)",
                        next.display()
                    ),
                ));
            }
        }
        let mut raw = raw;
        if raw.get("paddock.jaasConfig").is_none() {
            // ZooKeeper takes its JAAS file as a JVM property, which zkServer.sh passes in
            // SERVER_JVMFLAGS: the same environment gives Paddock the same file.
            for var in ["SERVER_JVMFLAGS", "JVMFLAGS", "JAVA_OPTS"] {
                let Ok(flags) = std::env::var(var) else {
                    continue;
                };
                if let Some(f) = flags
                    .split_whitespace()
                    .find_map(|f| f.strip_prefix("-Djava.security.auth.login.config="))
                {
                    log::info!("JAAS configuration {f} (from {var})");
                    raw.entries
                        .insert("paddock.jaasConfig".into(), f.to_owned());
                    break;
                }
            }
        }
        Config::from_raw(raw)
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
            large_request_threshold: Some(64 << 10),
            large_request_max_bytes: 100 << 20,
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
            secure_client_port: None,
            plain_client_port: true,
            secure_client_port_address: None,
            port_unification: false,
            client_tls: None,
            x509_super_user: None,
            sasl: None,
            enforce_auth: Vec::new(),
            allow_sasl_failed_clients: false,
            quorum_tls: None,
            quorum_port_unification: false,
            ssl_quorum_reload: false,
            raw: raw.clone(),
            quorum: None,
        };
        let (mut min_set, mut max_set, mut data_dir, mut data_log_dir) = (None, None, None, None);
        let mut servers = Vec::new();
        let mut qkeys = quorum::QuorumKeys::default();
        let mut client_port_given = false;
        let (mut require_sasl, mut enforce, mut enforce_schemes) = (false, false, Vec::new());
        let mut ssl_quorum = false;
        // ZooKeeper 3.5+: with a dynamic file, the server list is there and only there.
        let dynamic = raw.get("dynamicConfigFile");
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
                "clientPort" => {
                    c.client_port = port_number(k, v, 0)?;
                    client_port_given = true;
                }
                "clientPortAddress" => c.client_port_address = Some(ip_of(k, v, v)?),
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
                "largeRequestMaxBytes" => {
                    let n: i32 = num(k, v)?;
                    if n <= 0 {
                        return Err(bad(k, v, "must be > 0"));
                    }
                    c.large_request_max_bytes = n as usize;
                }
                "largeRequestThreshold" => {
                    let n: i32 = num(k, v)?;
                    c.large_request_threshold = match n {
                        -1 => None,
                        n if n > 0 => Some(n as usize),
                        _ => return Err(bad(k, v, "must be -1 (off) or > 0")),
                    };
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
                _ if key.starts_with("server.") => {
                    if dynamic.is_some() {
                        return Err(bad(
                            k,
                            v,
                            "must be in the dynamic config file, since dynamicConfigFile is set (as in ZooKeeper)",
                        ));
                    }
                    servers.push(quorum::parse_server(k, v)?)
                }
                "dynamicConfigFile" => {} // read after this loop
                "version" if dynamic.is_some() => log::warn!(
                    "{k}={v}: ignored; with dynamicConfigFile the version is the suffix of its name, as in ZooKeeper"
                ),
                // A zoo.cfg that lists the servers itself may carry their version (hex).
                "version" => {
                    qkeys.config_version = i64::from_str_radix(v, 16)
                        .ok()
                        .filter(|&n| n >= 0)
                        .ok_or_else(|| bad(k, v, "not a hex config version"))?
                }
                "electionAlg" => {
                    if v != "3" {
                        return Err(bad(
                            k,
                            v,
                            "only 3 (fast leader election) is supported, as in ZooKeeper",
                        ));
                    }
                }
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
                "secureClientPort" => {
                    let p = port_number(k, v, 0)?;
                    // ZooKeeper: 0 (or no key) means no secure port.
                    c.secure_client_port = (p != 0).then_some(p);
                }
                "secureClientPortAddress" => c.secure_client_port_address = Some(ip_of(k, v, v)?),
                "client.portUnification" => c.port_unification = boolean(k, v)?,
                "X509AuthenticationProvider.superUser" => c.x509_super_user = Some(v.to_owned()),
                "sessionRequireClientSASLAuth" => require_sasl = boolean(k, v)?,
                "enforce.auth.enabled" => enforce = boolean(k, v)?,
                "enforce.auth.schemes" => {
                    enforce_schemes = v
                        .split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                }
                "allowSaslFailedClients" => c.allow_sasl_failed_clients = boolean(k, v)?,
                "sslQuorum" => ssl_quorum = boolean(k, v)?,
                "portUnification" => c.quorum_port_unification = boolean(k, v)?,
                "sslQuorumReloadCertFiles" => c.ssl_quorum_reload = boolean(k, v)?,
                // Read with the JAAS file below.
                "paddock.jaasConfig"
                | "sasl.serverconfig"
                | "SASLAuthenticationProvider.superPassword"
                | "kerberos.removeHostFromPrincipal"
                | "kerberos.removeRealmFromPrincipal" => {}
                "superUser" => {}
                _ if key.starts_with("superUser.") => {}
                // Read as a whole below.
                _ if key.starts_with("ssl.") => {}
                _ if check_unimplemented(k, key, v)? => {}
                _ => log::warn!("unknown configuration key {k}={}: ignored", tls::shown(k, v)),
            }
        }
        c.data_dir = data_dir.ok_or(ConfigError::Missing("dataDir"))?;
        let client_tls = tls::TlsKeys::from_raw(&raw, "ssl.")?;
        // Quorum TLS keys are checked even while sslQuorum is off, so a mistake shows
        // before the day it is turned on.
        let quorum_tls = tls::TlsKeys::from_raw(&raw, "ssl.quorum.")?;
        if ssl_quorum || c.quorum_port_unification {
            for (store, what) in [
                (&quorum_tls.key_store, "ssl.quorum.keyStore.location"),
                (&quorum_tls.trust_store, "ssl.quorum.trustStore.location"),
            ] {
                if store.is_none() {
                    let k = if ssl_quorum {
                        "sslQuorum"
                    } else {
                        "portUnification"
                    };
                    let (k, v) = raw.get(k).unwrap_or((k, ""));
                    return Err(bad(k, v, format!("needs {what}")));
                }
            }
            c.quorum_tls = Some(quorum_tls);
        }
        if c.secure_client_port.is_some() || c.port_unification {
            if client_tls.key_store.is_none() {
                let k = if c.secure_client_port.is_some() {
                    "secureClientPort"
                } else {
                    "client.portUnification"
                };
                let (k, v) = raw.get(k).unwrap_or((k, ""));
                return Err(bad(
                    k,
                    v,
                    "needs ssl.keyStore.location (the server's certificate)",
                ));
            }
            c.client_tls = Some(client_tls);
        }
        c.sasl = sasl_server(&raw)?;
        // As ZooKeeper's AuthenticationHelper: sessionRequireClientSASLAuth wins; every
        // scheme must have a provider.
        if require_sasl {
            c.enforce_auth = vec!["sasl".into()];
        } else if enforce {
            if enforce_schemes.is_empty() {
                let (k, v) = raw
                    .get("enforce.auth.enabled")
                    .unwrap_or(("enforce.auth.enabled", ""));
                return Err(bad(k, v, "enforce.auth.schemes names no scheme"));
            }
            c.enforce_auth = enforce_schemes;
        }
        let schemes = c.acl_schemes();
        for s in &c.enforce_auth {
            let registered = match s.as_str() {
                "ip" | "digest" => true,
                "x509" => schemes.x509,
                "sasl" => schemes.sasl,
                _ => false,
            };
            if !registered {
                let k = if require_sasl {
                    "sessionRequireClientSASLAuth"
                } else {
                    "enforce.auth.schemes"
                };
                let (k, v) = raw.get(k).unwrap_or((k, ""));
                return Err(bad(
                    k,
                    v,
                    format!(
                        "no authentication provider for {s:?} (sasl needs authProvider.N=org.apache.zookeeper.server.auth.SASLAuthenticationProvider; x509 a secureClientPort)"
                    ),
                ));
            }
        }
        let mut duplicates = c.raw.duplicates.clone();
        if let Some((k, v)) = dynamic {
            let file = quorum::read_dynamic_file(k, v)?;
            log::info!(
                "{k}={v}: {} server(s), config version 0x{:x}",
                file.servers.len(),
                file.config_version
            );
            servers = file.servers;
            duplicates = file.duplicates;
            qkeys.config_version = file.config_version;
        }
        c.quorum = quorum::resolve(servers, &duplicates, &qkeys, &c.data_dir)?;
        if let Some(q) = &c.quorum {
            // Session ids carry the server id in their top byte: unique across the
            // ensemble only when each member's is its myid.
            c.server_id = q.my_id;
            // `server.N=...;[addr:]port` gives this member's client port, as in ZooKeeper;
            // a zoo.cfg clientPort(Address) that says otherwise is refused, as ZooKeeper's
            // QuorumPeerConfig.setupClientPort does.
            if let Some((addr, port)) = &q.me().client {
                let key = format!("server.{}", q.my_id);
                let ip = match addr {
                    Some(a) => Some(ip_of(&key, a, a)?),
                    None => None,
                };
                let show = |ip: Option<IpAddr>, port: u16| {
                    std::net::SocketAddr::new(ip.unwrap_or(IpAddr::from([0, 0, 0, 0])), port)
                };
                if client_port_given && c.client_port != 0 {
                    let (differs, k) = match c.client_port_address {
                        Some(s) if !s.is_unspecified() => {
                            (ip != Some(s) || *port != c.client_port, "clientPortAddress")
                        }
                        _ => (*port != c.client_port, "clientPort"),
                    };
                    if differs {
                        let (_, v) = raw.get(k).unwrap_or((k, ""));
                        return Err(bad(
                            k,
                            v,
                            format!(
                                "zoo.cfg's client address {} differs from {key}'s {} (ZooKeeper refuses this too)",
                                show(c.client_port_address, c.client_port),
                                show(ip, *port)
                            ),
                        ));
                    }
                }
                c.client_port = *port;
                client_port_given = true;
                if ip.is_some() {
                    c.client_port_address = ip;
                }
            }
        }
        c.plain_client_port = client_port_given || c.secure_client_port.is_none();
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

    /// The authentication schemes registered beyond digest and ip.
    pub fn acl_schemes(&self) -> crate::acl::Schemes {
        let provider = |class: &str| {
            self.raw.entries.iter().any(|(k, v)| {
                k.strip_prefix("zookeeper.")
                    .unwrap_or(k)
                    .starts_with("authProvider.")
                    && v == class
            })
        };
        crate::acl::Schemes {
            x509: self.client_tls.is_some() || provider(X509_PROVIDER),
            sasl: provider(SASL_PROVIDER),
        }
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

    /// Issue 13, item 4: a setting Paddock does not implement never passes silently. Each
    /// of these asks for security, membership or durability Paddock lacks: one error,
    /// naming the key and value, saying "not supported yet".
    #[test]
    fn issue_13_unimplemented_settings_are_refused() {
        for line in [
            "DigestAuthenticationProvider.enabled=false",
            "DigestAuthenticationProvider.digestAlg=SHA-256",
            "skipACL=yes",
            "skipACL=true",
            "quorum.auth.enableSasl=true",
            "quorum.auth.learnerRequireSasl=true",
            "quorum.auth.serverRequireSasl=true",
            "quorum.auth.kerberos.servicePrincipal=zkquorum/_HOST",
            "quorum.auth.learner.saslLoginContext=MyLearner",
            "reconfigEnabled=true",
            "group.1=1:2:3",
            "weight.1=1",
            "oraclePath=/tmp/oracle",
            "observerMasterPort=2191",
            "localSessionsEnabled=true",
            "syncEnabled=false",
        ] {
            let e = cfg(&format!("dataDir=/x\n{line}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!("{line}: not supported yet (")),
                "{line}: {e}"
            );
            assert_eq!(e.lines().count(), 1, "{e}");
        }
        // Issue 16 made these real: they are accepted, or refused for what they lack.
        let e = cfg("dataDir=/x\nsecureClientPort=2281\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs ssl.keyStore.location"), "{e}");
        let e = cfg("dataDir=/x\nsessionRequireClientSASLAuth=true\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no authentication provider for \"sasl\""), "{e}");
        for line in ["sslQuorum=true", "portUnification=true"] {
            let e = cfg(&format!("dataDir=/x\n{line}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("needs ssl.quorum.keyStore.location"), "{e}");
        }
        let c = cfg("dataDir=/x\nsessionRequireClientSASLAuth=true\n\
             authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n")
        .unwrap();
        assert_eq!(c.enforce_auth, vec!["sasl".to_owned()]);
        assert!(c.acl_schemes().sasl);
        let e = cfg("dataDir=/x\nelectionAlg=1\n").unwrap_err().to_string();
        assert_eq!(
            e,
            "electionAlg=1: only 3 (fast leader election) is supported, as in ZooKeeper"
        );
        // A boolean that is neither is a bad value, as everywhere else.
        let e = cfg("dataDir=/x\nsslQuorum=maybe\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected true/false"), "{e}");
    }

    /// ZooKeeper's defaults, and values that ask for nothing Paddock lacks, are accepted;
    /// admin.* and metricsProvider.* are ignored (with a warning).
    #[test]
    fn issue_13_defaults_of_unimplemented_settings_are_accepted() {
        let c = cfg("dataDir=/x\n\
             secureClientPort=0\nsslQuorum=false\nportUnification=false\n\
             authProvider.1=org.apache.zookeeper.server.auth.DigestAuthenticationProvider\n\
             authProvider.2=org.apache.zookeeper.server.auth.IPAuthenticationProvider\n\
             DigestAuthenticationProvider.enabled=true\nDigestAuthenticationProvider.digestAlg=SHA1\n\
             sessionRequireClientSASLAuth=false\nenforce.auth.enabled=false\nskipACL=no\n\
             quorum.auth.enableSasl=false\nquorum.auth.learnerRequireSasl=false\n\
             quorum.auth.serverRequireSasl=false\n\
             quorum.auth.kerberos.servicePrincipal=zkquorum/localhost\n\
             quorum.auth.learner.saslLoginContext=QuorumLearner\n\
             quorum.auth.server.saslLoginContext=QuorumServer\n\
             reconfigEnabled=false\nlocalSessionsEnabled=false\nlocalSessionsUpgradingEnabled=false\n\
             syncEnabled=true\nelectionAlg=3\nobserverMasterPort=0\n\
             admin.enableServer=true\nadmin.serverPort=8080\nmetricsProvider.className=x.Y\n\
             metricsProvider.httpPort=7000\nmaxResponseCacheSize=400\nsnapSizeLimitInKb=4194304\n\
             txnLogSizeLimitInKb=-1\nfsync.warningthresholdms=1000\n",
        );
        assert!(c.is_ok(), "{:?}", c.err());
    }

    #[test]
    fn ports_out_of_range_say_so() {
        for (line, want) in [
            (
                "clientPort=70000",
                "clientPort=70000: port out of range 0-65535",
            ),
            ("clientPort=-1", "clientPort=-1: port out of range 0-65535"),
            ("clientPort=abc", "clientPort=abc: not a valid number"),
            (
                "server.1=h:2888:70000\nserver.2=h2:2888:3888",
                "server.1=h:2888:70000: port 70000 out of range 1-65535",
            ),
            (
                "server.1=h:-5:3888\nserver.2=h2:2888:3888",
                "server.1=h:-5:3888: port -5 out of range 1-65535",
            ),
        ] {
            let e = cfg(&format!("dataDir=/x\n{line}\n"))
                .unwrap_err()
                .to_string();
            assert_eq!(e, want);
        }
        assert_eq!(
            cfg("dataDir=/x\nclientPort=65535\n").unwrap().client_port,
            65535
        );
    }

    /// As ZooKeeper's InetAddress.getByName: an address or a host name.
    #[test]
    fn client_port_address_takes_a_host_name() {
        let c = cfg("dataDir=/x\nclientPortAddress=localhost\n").unwrap();
        assert!(c.client_port_address.unwrap().is_loopback(), "{c:?}");
        let c = cfg("dataDir=/x\nclientPortAddress=[::1]\n").unwrap();
        assert_eq!(c.client_port_address, Some("::1".parse().unwrap()));
        let e = cfg("dataDir=/x\nclientPortAddress=no-such-host.invalid\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("clientPortAddress=no-such-host.invalid: cannot resolve"),
            "{e}"
        );
    }

    /// `{:#}` prints a cause and then its sources: a config error has none, so its text
    /// appears once (the quorum errors used to appear twice).
    #[test]
    fn config_errors_have_no_second_copy() {
        use std::error::Error;
        let dir = tempfile::tempdir().unwrap();
        let e = cfg(&format!(
            "dataDir={}\nserver.1=a:1:2\nserver.2=b:1:2\n",
            dir.path().display()
        ))
        .unwrap_err();
        assert!(matches!(e, ConfigError::Quorum(_)), "{e}");
        assert!(e.source().is_none(), "{e}");
        let dynamic = dir.path().join("zoo.cfg.dynamic");
        std::fs::write(&dynamic, "server.1=a:1\n").unwrap();
        let e = cfg(&format!(
            "dataDir=/x\ndynamicConfigFile={}\n",
            dynamic.display()
        ))
        .unwrap_err();
        assert!(matches!(e, ConfigError::InFile { .. }), "{e}");
        assert!(e.source().is_none(), "{e}");
        let text = e.to_string();
        assert_eq!(text.matches("server.1=a:1").count(), 1, "{text}");
    }

    /// A zoo.cfg whose servers are in `dynamicConfigFile` only is an ensemble, as in
    /// ZooKeeper 3.5+; the config version is the hex suffix of the file's name.
    #[test]
    fn dynamic_config_file_lists_the_servers() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("myid"), "2\n").unwrap();
        let dynamic = dir.path().join("zoo.cfg.dynamic.100000000");
        std::fs::write(
            &dynamic,
            "server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2181\n\
             server.2=127.0.0.2:2888:3888;127.0.0.2:2182\n\
             server.3=127.0.0.3:2888:3888:observer;2183\n",
        )
        .unwrap();
        let base = format!(
            "dataDir={}\ndynamicConfigFile={}\n",
            data.display(),
            dynamic.display()
        );
        let c = cfg(&base).unwrap();
        let q = c.quorum.as_ref().expect("an ensemble");
        assert_eq!((q.my_id, q.servers.len()), (2, 3));
        assert_eq!(q.voters().count(), 2);
        assert_eq!(q.config_version, 0x1_0000_0000);
        assert_eq!(c.client_port, 2182);
        assert_eq!(c.client_port_address, Some("127.0.0.2".parse().unwrap()));
        // zoo.cfg's clientPort(Address) may repeat the member's client address...
        assert!(cfg(&format!(
            "{base}clientPort=2182\nclientPortAddress=127.0.0.2\n"
        ))
        .is_ok());
        // ...but not contradict it (QuorumPeerConfig.setupClientPort).
        let e = cfg(&format!("{base}clientPort=2181\n"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("clientPort=2181: zoo.cfg's client address 0.0.0.0:2181 differs from server.2's 127.0.0.2:2182"), "{e}");

        // Both zoo.cfg and the dynamic file list servers: refused, as ZooKeeper does.
        let e = cfg(&format!("{base}server.1=127.0.0.1:2888:3888\n"))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "server.1=127.0.0.1:2888:3888: must be in the dynamic config file, since dynamicConfigFile is set (as in ZooKeeper)");
        let e = cfg(&format!("{base}group.1=1:2:3\n"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("group.1=1:2:3: not supported yet"), "{e}");

        // Inside the dynamic file: server lines only.
        for (extra, want) in [
            (
                "version=100000000",
                "version=100000000: a dynamic file must not hold its version",
            ),
            (
                "group.1=1:2:3",
                "group.1=1:2:3: not supported yet (hierarchical quorums)",
            ),
            (
                "weight.1=2",
                "weight.1=2: not supported yet (hierarchical quorums)",
            ),
            (
                "tickTime=2000",
                "tickTime=2000: not allowed in a dynamic config file",
            ),
            (
                "server.4=h:1",
                "server.4=h:1: expected host:quorumPort:electionPort",
            ),
            ("server.1=127.0.0.9:2888:3888", "server.1 is given twice"),
        ] {
            let other = dir.path().join("other.dynamic");
            let text = std::fs::read_to_string(&dynamic).unwrap();
            std::fs::write(&other, format!("{text}{extra}\n")).unwrap();
            let e = cfg(&format!(
                "dataDir={}\ndynamicConfigFile={}\n",
                data.display(),
                other.display()
            ))
            .unwrap_err()
            .to_string();
            assert!(e.contains(want), "{extra}: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }

        // No version in the name: 0. A zoo.cfg listing its own servers may give one.
        let plain = dir.path().join("servers");
        std::fs::copy(&dynamic, &plain).unwrap();
        let c = cfg(&format!(
            "dataDir={}\ndynamicConfigFile={}\n",
            data.display(),
            plain.display()
        ))
        .unwrap();
        assert_eq!(c.quorum.unwrap().config_version, 0);
        let c = cfg(&format!(
            "dataDir={}\nversion=2a\nserver.1=a:1:2\nserver.2=b:1:2\n",
            data.display()
        ))
        .unwrap();
        assert_eq!(c.quorum.unwrap().config_version, 0x2a);

        // Missing: one line naming the key.
        let e = cfg(&format!(
            "dataDir={}\ndynamicConfigFile={}\n",
            data.display(),
            dir.path().join("absent").display()
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("dynamicConfigFile=") && e.contains("cannot read it"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1, "{e}");

        // zoo.cfg.dynamic.next: a reconfiguration ZooKeeper had not finished.
        let zoo = dir.path().join("zoo.cfg");
        std::fs::write(&zoo, &base).unwrap();
        assert!(Config::load(&zoo).is_ok());
        std::fs::write(quorum::pending_reconfig_file(&zoo), "").unwrap();
        let e = Config::load(&zoo).unwrap_err().to_string();
        assert!(e.contains("zoo.cfg.dynamic.next exists"), "{e}");
    }
}
