//! Configuration: a TOML file, every key overridable by an environment variable
//! `KEYWARD_<KEY>`, resolved once at start-up into typed values.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::projector::SnapshotSchedule;

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_DATA_DIR: &str = "./data";
const DEFAULT_MAIL_FROM: &str = "keyward <keyward@localhost>";
/// A snapshot per this many events folds at most this many at start-up (about 0.15 s on
/// the 2-core reference machine, docs/cost.md); zero turns the trigger off.
const DEFAULT_SNAPSHOT_EVERY_EVENTS: u64 = 100_000;
/// And one this often if anything happened, so a quiet service also restarts from near
/// its head; zero turns the trigger off.
const DEFAULT_SNAPSHOT_INTERVAL_SECONDS: u64 = 300;

/// One EVM chain the Intents module may sign for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    pub name: String,
    pub display_name: String,
    pub chain_id: u64,
    pub rpc_url: Url,
    pub native_currency: String,
    pub is_testnet: bool,
}

impl ChainConfig {
    /// The registry's view of this configured chain.
    pub fn settings(&self) -> domain::evm_chain::ChainSettings {
        domain::evm_chain::ChainSettings {
            name: self.name.clone(),
            display_name: self.display_name.clone(),
            chain_id: self.chain_id,
            rpc_url: self.rpc_url.to_string(),
            ws_url: None,
            explorer_url: None,
            native_currency: self.native_currency.clone(),
            is_testnet: self.is_testnet,
            is_enabled: true,
        }
    }

    /// The chain used when none is configured: a local anvil node.
    pub fn local_anvil() -> Self {
        Self {
            name: "anvil".into(),
            display_name: "Anvil (local)".into(),
            chain_id: 31337,
            rpc_url: Url::parse("http://127.0.0.1:8545").unwrap_or_else(|_| unreachable!("static URL")),
            native_currency: "ETH".into(),
            is_testnet: true,
        }
    }
}

/// The file as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: Option<String>,
    database_url: Option<String>,
    data_dir: Option<PathBuf>,
    public_url: Option<String>,
    admins: Option<Vec<String>>,
    chains: Option<Vec<ChainConfig>>,
    trusted_proxies: Option<Vec<String>>,
    smtp_url: Option<String>,
    mail_from: Option<String>,
    snapshot_every_events: Option<u64>,
    snapshot_interval_seconds: Option<u64>,
    metrics_token: Option<String>,
}

/// Where emails go: an SMTP server (`smtp://` plain or STARTTLS with `?tls=required`,
/// `smtps://` TLS), with any credentials in the URL, which never reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl(Url);

impl SmtpUrl {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl std::fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redacted(self.0.as_str()))
    }
}

/// The bearer token that opens `GET /metrics`; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct MetricsToken(String);

impl MetricsToken {
    /// The shortest token accepted: long enough that it cannot be guessed.
    pub const MIN_LENGTH: usize = 16;

    /// Whether `presented` is this token, compared as SHA-256 digests so that the time
    /// taken tells nothing of how much of it was right.
    pub fn admits(&self, presented: &str) -> bool {
        use sha2::{Digest, Sha256};
        Sha256::digest(presented.as_bytes()) == Sha256::digest(self.0.as_bytes())
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub data_dir: PathBuf,
    pub public_url: Url,
    /// Emails of platform administrators, lower-cased.
    pub admins: Vec<String>,
    pub chains: Vec<ChainConfig>,
    /// Peers whose X-Forwarded-For header is believed (load balancers, reverse proxies).
    pub trusted_proxies: Vec<IpNet>,
    /// Without an SMTP server, every email is written as an .eml file under
    /// `<data_dir>/outbox/`.
    pub smtp_url: Option<SmtpUrl>,
    /// The sender of keyward's emails, `Name <address>` or a bare address.
    pub mail_from: String,
    /// When read-model snapshots are written (docs/cost.md).
    pub snapshots: SnapshotSchedule,
    /// `GET /metrics` answers whoever presents this token; without one it is not served.
    pub metrics_token: Option<MetricsToken>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// A whole number setting, `default` when unset.
fn number(key: &'static str, text: Option<String>, default: u64) -> Result<u64, ConfigError> {
    match text {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse()
            .map_err(|_| invalid(key, format!("{text:?} is not a whole number"))),
    }
}

impl Config {
    /// Loads `path` (if given) and applies the process environment on top.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(path, |key| std::env::var(key).ok())
    }

    /// Loads with an explicit environment lookup, so tests need not touch the process's.
    pub fn load_with(path: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let file = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?
            }
            None => ConfigFile::default(),
        };
        let overridden =
            |key: &str, from_file: Option<String>| env(&format!("KEYWARD_{}", key.to_uppercase())).or(from_file);

        let listen_text = overridden("listen", file.listen).unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            invalid(
                "listen",
                format!("{listen_text:?} is not an address such as 127.0.0.1:8080"),
            )
        })?;

        let data_dir = overridden("data_dir", file.data_dir.map(|d| d.to_string_lossy().into_owned()))
            .map_or_else(|| PathBuf::from(DEFAULT_DATA_DIR), PathBuf::from);

        let database_url = overridden("database_url", file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("keyward.db").display()));
        check_database_url(&database_url)?;

        let public_url_text = overridden("public_url", file.public_url).unwrap_or_else(|| format!("http://{listen}"));
        let public_url = Url::parse(&public_url_text)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| invalid("public_url", format!("{public_url_text:?} is not an http(s) URL")))?;

        let admins = match env("KEYWARD_ADMINS") {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_owned)
                .collect(),
            None => file.admins.unwrap_or_default(),
        };
        let admins = admins
            .into_iter()
            .map(|email| match email.split_once('@') {
                Some((local, domain)) if !local.is_empty() && domain.contains('.') => Ok(email.to_lowercase()),
                _ => Err(invalid("admins", format!("{email:?} is not an email address"))),
            })
            .collect::<Result<Vec<_>, _>>()?;

        let chains = match env("KEYWARD_CHAINS") {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| invalid("chains", format!("KEYWARD_CHAINS is not a JSON array of chains: {e}")))?,
            None => file.chains.unwrap_or_default(),
        };
        let chains = if chains.is_empty() {
            vec![ChainConfig::local_anvil()]
        } else {
            chains
        };
        check_chains(&chains)?;

        let trusted_proxies = match env("KEYWARD_TRUSTED_PROXIES") {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
            None => file.trusted_proxies.unwrap_or_default(),
        };
        let trusted_proxies = trusted_proxies
            .iter()
            .map(|proxy| {
                parse_net(proxy).ok_or_else(|| invalid("trusted_proxies", format!("{proxy:?} is not an IP or CIDR")))
            })
            .collect::<Result<Vec<_>, _>>()?;

        let smtp_url = overridden("smtp_url", file.smtp_url)
            .map(|text| {
                Url::parse(&text)
                    .ok()
                    .filter(|url| matches!(url.scheme(), "smtp" | "smtps") && url.host_str().is_some())
                    .map(SmtpUrl)
                    .ok_or_else(|| {
                        invalid(
                            "smtp_url",
                            format!("{:?} is not an smtp:// or smtps:// URL with a host", redacted(&text)),
                        )
                    })
            })
            .transpose()?;
        let mail_from = overridden("mail_from", file.mail_from).unwrap_or_else(|| DEFAULT_MAIL_FROM.into());
        if mail_from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(invalid(
                "mail_from",
                format!("{mail_from:?} is not a mailbox such as \"keyward <keyward@example.com>\""),
            ));
        }

        let snapshots = SnapshotSchedule {
            every_events: number(
                "snapshot_every_events",
                overridden(
                    "snapshot_every_events",
                    file.snapshot_every_events.map(|n| n.to_string()),
                ),
                DEFAULT_SNAPSHOT_EVERY_EVENTS,
            )?,
            every: Duration::from_secs(number(
                "snapshot_interval_seconds",
                overridden(
                    "snapshot_interval_seconds",
                    file.snapshot_interval_seconds.map(|n| n.to_string()),
                ),
                DEFAULT_SNAPSHOT_INTERVAL_SECONDS,
            )?),
        };

        let metrics_token = overridden("metrics_token", file.metrics_token)
            .map(|token| match token.trim() {
                token if token.len() >= MetricsToken::MIN_LENGTH => Ok(MetricsToken(token.to_owned())),
                _ => Err(invalid(
                    "metrics_token",
                    format!("must be at least {} characters", MetricsToken::MIN_LENGTH),
                )),
            })
            .transpose()?;

        Ok(Config {
            listen,
            database_url,
            data_dir,
            public_url,
            admins,
            chains,
            trusted_proxies,
            smtp_url,
            mail_from,
            snapshots,
            metrics_token,
        })
    }

    /// The client a request comes from: the socket peer, unless the peer is a trusted
    /// proxy, in which case the nearest address in X-Forwarded-For that is not itself a
    /// trusted proxy. Addresses a client wrote further left are never believed.
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let trusted = |ip: &IpAddr| self.trusted_proxies.iter().any(|net| net.contains(ip));
        if !trusted(&peer) {
            return peer;
        }
        let Some(forwarded_for) = forwarded_for else {
            return peer;
        };
        let mut client = peer;
        for hop in forwarded_for.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if trusted(&ip) => client = ip,
                Ok(ip) => return ip,
                Err(_) => return client,
            }
        }
        client
    }
}

/// A CIDR (`10.0.0.0/8`) or a single address (`10.0.0.7`, taken as /32 or /128).
pub fn parse_net(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

/// A database or SMTP URL fit for messages and logs: any password replaced by `***`.
pub fn redacted(url_text: &str) -> String {
    match Url::parse(url_text) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => url_text.to_owned(),
    }
}

fn check_database_url(url: &str) -> Result<(), ConfigError> {
    let scheme_ok = ["sqlite:", "postgres://", "postgresql://"]
        .iter()
        .any(|prefix| url.starts_with(prefix));
    if !scheme_ok {
        return Err(invalid(
            "database_url",
            format!("{url:?} must start with sqlite:// (embedded) or postgres:// (production)"),
        ));
    }
    if url.starts_with("postgres") {
        Url::parse(url).map_err(|e| invalid("database_url", format!("malformed Postgres URL: {e}")))?;
    }
    Ok(())
}

fn check_chains(chains: &[ChainConfig]) -> Result<(), ConfigError> {
    for (index, chain) in chains.iter().enumerate() {
        let duplicate = chains[..index]
            .iter()
            .any(|c| c.name == chain.name || c.chain_id == chain.chain_id);
        if duplicate {
            return Err(invalid(
                "chains",
                format!("chain {:?} (id {}) is configured twice", chain.name, chain.chain_id),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(file: Option<&str>, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyward.toml");
        if let Some(text) = file {
            std::fs::write(&path, text).unwrap();
        }
        let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::load_with(file.map(|_| path.as_path()), |key| env.get(key).cloned())
    }

    #[test]
    fn defaults_give_an_embedded_service_on_localhost() {
        let config = load(None, &[]).unwrap();
        assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.database_url, "sqlite://./data/keyward.db");
        assert_eq!(config.public_url.as_str(), "http://127.0.0.1:8080/");
        assert!(config.admins.is_empty());
        assert_eq!(config.chains, vec![ChainConfig::local_anvil()]);
        assert!(config.trusted_proxies.is_empty());
    }

    #[test]
    fn environment_overrides_every_file_key() {
        let file = r#"
            listen = "127.0.0.1:9000"
            database_url = "sqlite:///tmp/file.db"
            data_dir = "/var/lib/from-file"
            public_url = "https://file.example"
            admins = ["file@example.com"]
            [[chains]]
            name = "file"
            display_name = "File"
            chain_id = 1
            rpc_url = "http://file:8545"
            native_currency = "ETH"
            is_testnet = false
        "#;
        let config = load(
            Some(file),
            &[
                ("KEYWARD_LISTEN", "0.0.0.0:7000"),
                ("KEYWARD_DATABASE_URL", "postgres://u@db:5432/keyward"),
                ("KEYWARD_DATA_DIR", "/srv/keyward"),
                ("KEYWARD_PUBLIC_URL", "https://vault.example"),
                ("KEYWARD_ADMINS", "Ops@Example.com, root@example.com"),
                (
                    "KEYWARD_CHAINS",
                    r#"[{"name":"base","display_name":"Base","chain_id":8453,"rpc_url":"https://rpc.base.example","native_currency":"ETH","is_testnet":false}]"#,
                ),
            ],
        )
        .unwrap();
        assert_eq!(config.listen, "0.0.0.0:7000".parse().unwrap());
        assert_eq!(config.database_url, "postgres://u@db:5432/keyward");
        assert_eq!(config.data_dir, PathBuf::from("/srv/keyward"));
        assert_eq!(config.public_url.as_str(), "https://vault.example/");
        assert_eq!(config.admins, vec!["ops@example.com", "root@example.com"]);
        assert_eq!(config.chains.len(), 1);
        assert_eq!(
            (config.chains[0].name.as_str(), config.chains[0].chain_id),
            ("base", 8453)
        );
    }

    #[test]
    fn file_keys_apply_without_environment() {
        let config = load(Some("data_dir = \"/srv/k\"\nadmins = [\"a@b.io\"]\n"), &[]).unwrap();
        assert_eq!(config.database_url, "sqlite:///srv/k/keyward.db");
        assert_eq!(config.admins, vec!["a@b.io"]);
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let config = load(None, &[("KEYWARD_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1")]).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // An untrusted peer is the client, whatever it claims.
        assert_eq!(config.client_ip(ip("203.0.113.9"), Some("1.2.3.4")), ip("203.0.113.9"));
        // A trusted proxy forwards for the nearest untrusted hop; spoofed hops further left are ignored.
        assert_eq!(
            config.client_ip(ip("10.1.2.3"), Some("6.6.6.6, 198.51.100.7, 192.168.1.1")),
            ip("198.51.100.7")
        );
        assert_eq!(config.client_ip(ip("10.1.2.3"), None), ip("10.1.2.3"));
        assert_eq!(config.client_ip(ip("10.1.2.3"), Some("garbage")), ip("10.1.2.3"));
        assert!(load(None, &[("KEYWARD_TRUSTED_PROXIES", "not-an-ip")]).is_err());
    }

    #[test]
    fn passwords_are_redacted_from_database_urls() {
        assert_eq!(
            redacted("postgres://app:s3cret@db:5432/keyward"),
            "postgres://app:***@db:5432/keyward"
        );
        assert_eq!(redacted("postgres://app@db/keyward"), "postgres://app@db/keyward");
        assert_eq!(redacted("sqlite://./data/keyward.db"), "sqlite://./data/keyward.db");
    }

    #[test]
    fn bad_configuration_is_a_clear_error() {
        let message = |result: Result<Config, ConfigError>| result.unwrap_err().to_string();
        assert!(message(load(Some("listen = 8080"), &[])).contains("is not valid"));
        assert!(message(load(Some("lisen = \"x\""), &[])).contains("unknown field `lisen`"));
        assert!(message(load(None, &[("KEYWARD_LISTEN", "localhost")])).starts_with("invalid listen"));
        assert!(message(load(None, &[("KEYWARD_DATABASE_URL", "mysql://x")])).starts_with("invalid database_url"));
        assert!(
            message(load(None, &[("KEYWARD_DATABASE_URL", "postgres://u@h:port/db")]))
                .contains("malformed Postgres URL")
        );
        assert!(message(load(None, &[("KEYWARD_PUBLIC_URL", "ftp://x")])).starts_with("invalid public_url"));
        assert!(message(load(None, &[("KEYWARD_ADMINS", "not-an-email")])).starts_with("invalid admins"));
        assert!(message(load(None, &[("KEYWARD_CHAINS", "{")])).starts_with("invalid chains"));
    }
}
