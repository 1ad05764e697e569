//! The one place settings are built: defaults in the binary, then an optional TOML file
//! (`--config` or `PROPDESK_CONFIG`), then `PROPDESK__SECTION__KEY` environment variables.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use propdesk_domain::Policy;
use propdesk_notifier::NotifierSettings;
use serde::{Deserialize, Serialize};

/// A value that never prints.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "<unset>" } else { "<redacted>" })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub intake: IntakeSettings,
    pub auth: AuthSettings,
    pub log: LogSettings,
    pub bus: BusSettings,
    pub dispatch: DispatchSettings,
    pub notifier: NotifierSettings,
    pub attachments: AttachmentSettings,
    pub privacy: PrivacySettings,
    pub metrics: MetricsSettings,
    pub trace: TraceSettings,
    pub policy: Policy,
}

/// Residents' personal data at rest: the keys it is sealed with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrivacySettings {
    /// Data keys, `id:base64` (32 random bytes each, `propdesk keygen`), comma-separated:
    /// the active one and any older ones values may still be sealed under.
    pub data_keys: Secret,
    /// The id of the key new values are sealed with.
    pub active_key: String,
    /// The blind index's key (base64, 32 bytes): look-ups by phone. It cannot rotate
    /// without re-indexing every phone; keep it as long as the data.
    pub index_key: Secret,
    /// How long contact data stays on finished tickets, in days, where a property sets no
    /// period of its own.
    pub retention_days: i32,
    /// How often `propdesk dev` runs the retention job, in seconds.
    pub retention_interval_secs: u64,
    /// The share of its time a retention pass spends writing (above 0, at most 1): after
    /// each batch it rests so live creates find the database free the rest of the time.
    pub retention_duty: f64,
}

impl Default for PrivacySettings {
    fn default() -> Self {
        PrivacySettings {
            data_keys: Secret::default(),
            active_key: String::new(),
            index_key: Secret::default(),
            retention_days: 3 * 365,
            retention_interval_secs: 3_600,
            retention_duty: 0.5,
        }
    }
}

impl PrivacySettings {
    pub fn is_set(&self) -> bool {
        !self.data_keys.0.is_empty() || !self.index_key.0.is_empty() || !self.active_key.is_empty()
    }

    pub fn key_ring(&self) -> Result<propdesk_store::sealing::KeyRing, String> {
        if self.data_keys.0.is_empty() || self.active_key.is_empty() || self.index_key.0.is_empty() {
            return Err("privacy.data_keys, privacy.active_key and privacy.index_key are required: residents' \
                        names and phones are stored sealed (make keys with `propdesk keygen`)"
                .into());
        }
        let keys: Vec<String> =
            self.data_keys.0.split(',').map(|k| k.trim().to_owned()).filter(|k| !k.is_empty()).collect();
        propdesk_store::sealing::KeyRing::parse(&keys, &self.active_key, &self.index_key.0)
            .map_err(|e| format!("privacy: {e}"))
    }
}

/// The intake's own TLS.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TlsSettings {
    pub cert: String,
    pub key: String,
}

/// Files on tickets (AttachmentService).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttachmentSettings {
    /// `file:///folder` or `s3://bucket/prefix`; empty: no file storage (`propdesk dev`
    /// then keeps files in a folder beside its database).
    pub store: String,
    pub s3: S3Settings,
    /// The largest file accepted, in bytes (the upload call's message limit follows it).
    pub max_bytes: usize,
    pub max_per_ticket: u32,
    /// Uploads per minute per staff member, `upload_burst` of them at once.
    pub uploads_per_minute: u32,
    pub upload_burst: u32,
    /// The longer side of a thumbnail, in pixels.
    pub thumbnail_edge: u32,
    /// The most pixels an image may have (it is decoded for its thumbnail).
    pub max_pixels: u64,
    /// Stored bytes no attachment names are removed once this old (an upload in flight is
    /// younger), in seconds.
    pub orphan_grace_secs: u64,
    /// How often the intake looks for such bytes, in seconds.
    pub sweep_interval_secs: u64,
}

/// An S3-compatible service: the Secret's keys in production.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct S3Settings {
    /// e.g. `http://minio:9000` or `https://oss-cn-hangzhou.aliyuncs.com`; empty: AWS.
    pub endpoint: String,
    pub region: String,
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    /// `https://bucket.host/key` requests (Alibaba OSS needs them; the endpoint then names
    /// the bucket) instead of `https://host/bucket/key` (MinIO, Ceph).
    pub virtual_hosted_style: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TraceSettings {
    /// OTLP/HTTP (protobuf) traces endpoint, e.g. `http://otel-collector:4318/v1/traces`;
    /// empty: spans are not exported (trace ids still travel and are logged).
    pub otlp_endpoint: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricsSettings {
    /// Prometheus endpoint (`http://<listen>/metrics`); empty: off.
    pub listen: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BusSettings {
    /// `amqp://user:pass@host:5672/vhost`, or `amqps://…:5671/…` for TLS. Required by
    /// `intake` and the workers; `dev` uses the in-process bus.
    pub url: Secret,
    /// The nodes of a RabbitMQ cluster, instead of `url` (`PROPDESK__BUS__URLS=amqp://…@node-1:5672/%2f,amqp://…@node-2:5672/%2f,…`).
    /// Every connection goes to the first node that answers, so a lost node is skipped.
    #[serde(default)]
    pub urls: Vec<Secret>,
    /// For `amqps://`: a PEM file of the CA the broker's certificate chains to, when it is
    /// not one the system trusts (a cluster's own CA); empty: the system's roots only.
    pub tls_ca_file: String,
    /// Prefix of every exchange and queue name.
    pub prefix: String,
    /// Back-off before each retry of a failed message, in milliseconds.
    pub retry_delays_ms: Vec<u64>,
    /// Deliveries of a failing message before it is parked.
    pub max_attempts: u32,
    /// Unacknowledged redeliveries (crash loops) before RabbitMQ parks a message.
    pub delivery_limit: u32,
    /// Outbox messages published per relay pass.
    pub relay_batch: u64,
    /// How often the relay looks for rows written by other processes, in milliseconds.
    pub relay_poll_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DispatchSettings {
    /// Batches handled at once (SQLite: 1).
    pub concurrency: usize,
    /// Unacked messages the broker may hand over ahead.
    pub prefetch: u16,
    /// Most messages applied in one transaction.
    pub batch: usize,
    /// How long a batch waits, from its first message, for more to arrive, in
    /// milliseconds (0: only what has already arrived is batched). Each batch costs its
    /// transaction's fixed statements, so a few milliseconds here save the database far
    /// more than they add to the time to dispatch.
    pub linger_ms: u64,
    /// gRPC health endpoint of the worker (for readiness and liveness probes).
    pub health_listen: SocketAddr,
    /// How long in-flight messages may take to finish after SIGTERM, in seconds.
    pub drain_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatabaseSettings {
    /// `postgres://user@host/db` or `sqlite://path?mode=rwc`. Embedded mode (`dev`) uses a
    /// SQLite file when this is left at its default.
    pub url: Secret,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntakeSettings {
    pub listen: SocketAddr,
    pub max_request_bytes: usize,
    /// Web pages that may call through gRPC-Web: origins such as
    /// `https://desk.example.com`, or `http://localhost:*` for any port. Empty: none
    /// (`propdesk dev`: localhost and 127.0.0.1 on any port).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// A quiet WatchTickets stream sends a heartbeat this often, in seconds.
    pub watch_heartbeat_secs: u64,
    /// Serve TLS (for clusters without a mesh): PEM files of the certificate chain and its
    /// key, both or neither. Empty: plaintext.
    #[serde(default)]
    pub tls: TlsSettings,
    pub max_connection_age_secs: u64,
    /// Watch streams look for new events this often when nothing wakes them (events on
    /// the bus do, at once), in milliseconds.
    pub watch_poll_ms: u64,
    pub drain_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthSettings {
    /// HS256 signing secret for bearer tokens, at least 32 bytes.
    pub signing_secret: Secret,
    /// Lifetime of tokens minted by `propdesk token` and `propdesk dev`.
    pub token_lifetime_secs: i64,
    /// Accept HS256 tokens signed with `signing_secret` (dev, tests, service accounts).
    /// With an identity provider configured, production may switch them off.
    pub shared_secret_tokens: bool,
    /// How long a signed-in caller's directory record (role, property, active) is reused
    /// before it is read again: a directory change reaches them within this time.
    pub directory_cache_secs: u64,
    pub oidc: OidcConfig,
}

/// The company's identity provider (OpenID Connect). Off while `issuer` is empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OidcConfig {
    /// Exactly as the tokens' `iss` carries it, e.g. `https://sso.example.com/realms/staff`.
    pub issuer: String,
    /// What the tokens' `aud` must hold: the client id propdesk is registered under.
    pub audience: String,
    /// The key set's address; empty: found through `<issuer>/.well-known/openid-configuration`.
    pub jwks_url: String,
    /// The claim naming the person, matched against the staff member's `external_id`:
    /// `sub`, or e.g. `email`, `preferred_username`, `employee_number`.
    pub subject_claim: String,
    /// Keys are read again when older than this.
    pub max_key_age_secs: u64,
    /// Tokens naming an unknown key trigger at most one read per this interval.
    pub min_refresh_interval_secs: u64,
    /// A key the provider stops publishing still verifies for this long.
    pub rotation_overlap_secs: u64,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// A private CA (PEM file) the provider's certificate chains to; empty: public roots.
    pub ca_file: String,
}

impl OidcConfig {
    pub fn enabled(&self) -> bool {
        !self.issuer.is_empty()
    }

    /// The verifier's settings, the CA read from its file.
    pub fn verifier_settings(&self) -> Result<propdesk_oidc::OidcSettings, String> {
        let mut settings = propdesk_oidc::OidcSettings::new(&self.issuer, &self.audience);
        settings.jwks_url = Some(self.jwks_url.clone()).filter(|url| !url.is_empty());
        settings.subject_claim = self.subject_claim.clone();
        settings.max_key_age = Duration::from_secs(self.max_key_age_secs);
        settings.min_refresh_interval = Duration::from_secs(self.min_refresh_interval_secs);
        settings.rotation_overlap = Duration::from_secs(self.rotation_overlap_secs);
        settings.leeway = Duration::from_secs(self.leeway_secs);
        if !self.ca_file.is_empty() {
            let pem = std::fs::read(&self.ca_file).map_err(|e| format!("auth.oidc.ca_file {}: {e}", self.ca_file))?;
            settings.ca_pem = Some(pem);
        }
        Ok(settings)
    }
}

/// Longest a signed-in caller's directory record may be reused.
pub const MAX_DIRECTORY_CACHE_SECS: u64 = 30;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogSettings {
    /// `pretty` or `json`.
    pub format: String,
    /// A tracing filter such as `info` or `propdesk=debug,info`.
    pub filter: String,
}

/// Dispatch's default wait for more messages to batch, in milliseconds.
pub const DISPATCH_LINGER_MS: u64 = 5;

pub const DEV_DATABASE_URL: &str = "sqlite://propdesk-dev.db?mode=rwc";

impl Default for Settings {
    fn default() -> Self {
        Settings {
            database: DatabaseSettings { url: Secret(DEV_DATABASE_URL.to_owned()), max_connections: 10 },
            intake: IntakeSettings {
                listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
                max_request_bytes: 256 * 1024,
                allowed_origins: Vec::new(),
                watch_heartbeat_secs: 15,
                tls: TlsSettings::default(),
                max_connection_age_secs: 300,
                watch_poll_ms: 2_000,
                drain_timeout_secs: 20,
            },
            auth: AuthSettings {
                signing_secret: Secret::default(),
                token_lifetime_secs: 12 * 3600,
                shared_secret_tokens: true,
                directory_cache_secs: 3,
                oidc: OidcConfig {
                    issuer: String::new(),
                    audience: String::new(),
                    jwks_url: String::new(),
                    subject_claim: "sub".to_owned(),
                    max_key_age_secs: 15 * 60,
                    min_refresh_interval_secs: 30,
                    rotation_overlap_secs: 5 * 60,
                    leeway_secs: 30,
                    ca_file: String::new(),
                },
            },
            log: LogSettings { format: "pretty".to_owned(), filter: "info".to_owned() },
            bus: BusSettings {
                url: Secret::default(),
                urls: Vec::new(),
                tls_ca_file: String::new(),
                prefix: "propdesk".to_owned(),
                retry_delays_ms: vec![1_000, 10_000, 60_000],
                max_attempts: 5,
                delivery_limit: 20,
                relay_batch: 500,
                relay_poll_ms: 500,
            },
            dispatch: DispatchSettings {
                concurrency: 8,
                prefetch: 32,
                batch: 16,
                linger_ms: DISPATCH_LINGER_MS,
                health_listen: SocketAddr::from(([127, 0, 0, 1], 50061)),
                drain_timeout_secs: 20,
            },
            notifier: NotifierSettings::default(),
            attachments: AttachmentSettings {
                store: String::new(),
                s3: S3Settings {
                    endpoint: String::new(),
                    region: String::new(),
                    access_key_id: Secret::default(),
                    secret_access_key: Secret::default(),
                    virtual_hosted_style: false,
                },
                max_bytes: 10 * 1024 * 1024,
                max_per_ticket: 20,
                uploads_per_minute: 30,
                upload_burst: 10,
                thumbnail_edge: 320,
                max_pixels: 50_000_000,
                orphan_grace_secs: 3_600,
                sweep_interval_secs: 600,
            },
            privacy: PrivacySettings::default(),
            metrics: MetricsSettings { listen: String::new() },
            trace: TraceSettings { otlp_endpoint: String::new() },
            policy: Policy::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{0}")]
    Load(#[from] config::ConfigError),
    #[error("{0}")]
    Invalid(String),
}

impl BusSettings {
    pub fn topology(&self) -> propdesk_bus::Topology {
        propdesk_bus::Topology {
            prefix: self.prefix.clone(),
            retry_delays: self.retry_delays_ms.iter().map(|ms| std::time::Duration::from_millis(*ms)).collect(),
            max_attempts: self.max_attempts,
            delivery_limit: self.delivery_limit,
        }
    }

    pub fn relay(&self) -> propdesk_bus::relay::RelaySettings {
        propdesk_bus::relay::RelaySettings {
            batch: self.relay_batch,
            poll: std::time::Duration::from_millis(self.relay_poll_ms),
            ..Default::default()
        }
    }
}

/// The origins `propdesk dev` lets call when none are configured: pages served from this
/// machine during development.
pub const DEV_ORIGINS: [&str; 2] = ["http://localhost:*", "http://127.0.0.1:*"];

impl IntakeSettings {
    /// The TLS identity, read from its files, when TLS is on.
    pub fn tls_identity(&self) -> Result<Option<propdesk_intake::TlsIdentity>, String> {
        if self.tls.cert.is_empty() {
            return Ok(None);
        }
        let read = |key: &str, path: &str| std::fs::read(path).map_err(|e| format!("intake.tls.{key} {path}: {e}"));
        Ok(Some(propdesk_intake::TlsIdentity {
            cert_pem: read("cert", &self.tls.cert)?,
            key_pem: read("key", &self.tls.key)?,
        }))
    }

    pub fn origins(&self) -> Result<Vec<propdesk_intake::web::OriginPattern>, String> {
        self.allowed_origins.iter().map(|o| propdesk_intake::web::OriginPattern::parse(o)).collect()
    }
}

impl AttachmentSettings {
    pub fn limits(&self) -> propdesk_intake::attachments::AttachmentLimits {
        propdesk_intake::attachments::AttachmentLimits {
            max_bytes: self.max_bytes,
            max_per_ticket: self.max_per_ticket,
            uploads_per_minute: self.uploads_per_minute,
            upload_burst: self.upload_burst,
            files: propdesk_files::Limits { max_pixels: self.max_pixels, thumbnail_edge: self.thumbnail_edge },
        }
    }

    pub fn s3_access(&self) -> propdesk_store::blobs::S3Access {
        propdesk_store::blobs::S3Access {
            endpoint: self.s3.endpoint.clone(),
            region: self.s3.region.clone(),
            access_key_id: self.s3.access_key_id.0.clone(),
            secret_access_key: self.s3.secret_access_key.0.clone(),
            virtual_hosted_style: self.s3.virtual_hosted_style,
        }
    }
}

impl Settings {
    pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
        let mut builder = Config::builder().add_source(Config::try_from(&Settings::default())?);
        if let Some(file) = file {
            builder = builder.add_source(File::from(file).format(FileFormat::Toml).required(true));
        }
        let settings: Settings = builder
            .add_source(
                Environment::with_prefix("PROPDESK")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    // PROPDESK__BUS__RETRY_DELAYS_MS=1000,10000,60000
                    .list_separator(",")
                    .with_list_parse_key("bus.retry_delays_ms")
                    .with_list_parse_key("bus.urls")
                    .with_list_parse_key("intake.allowed_origins"),
            )
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate_auth(&self) -> Result<(), SettingsError> {
        let auth = &self.auth;
        if auth.directory_cache_secs > MAX_DIRECTORY_CACHE_SECS {
            return Err(SettingsError::Invalid(format!(
                "auth.directory_cache_secs must be at most {MAX_DIRECTORY_CACHE_SECS}: a deactivated person keeps access that long"
            )));
        }
        let oidc = &auth.oidc;
        if oidc.enabled() && (oidc.audience.is_empty() || oidc.subject_claim.is_empty()) {
            return Err(SettingsError::Invalid(
                "auth.oidc.audience and auth.oidc.subject_claim are required with auth.oidc.issuer".into(),
            ));
        }
        if !auth.shared_secret_tokens && !oidc.enabled() {
            return Err(SettingsError::Invalid(
                "auth.shared_secret_tokens is off and auth.oidc.issuer is empty: nobody could sign in".into(),
            ));
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), SettingsError> {
        self.policy.validate().map_err(|e| SettingsError::Invalid(format!("policy.{e}")))?;
        if self.database.max_connections == 0 {
            return Err(SettingsError::Invalid("database.max_connections must be at least 1".into()));
        }
        if !self.bus.url.0.is_empty() && !self.bus.urls.is_empty() {
            return Err(SettingsError::Invalid(
                "bus.url and bus.urls both set: give one broker in bus.url or a cluster's nodes in bus.urls".into(),
            ));
        }
        if self.bus.urls.iter().any(|url| url.0.is_empty()) {
            return Err(SettingsError::Invalid("bus.urls has an empty entry".into()));
        }
        if self.bus.retry_delays_ms.is_empty() || self.bus.max_attempts == 0 {
            return Err(SettingsError::Invalid(
                "bus.retry_delays_ms and bus.max_attempts must not be empty or zero".into(),
            ));
        }
        self.intake.origins().map_err(|e| SettingsError::Invalid(format!("intake.allowed_origins: {e}")))?;
        if self.intake.tls.cert.is_empty() != self.intake.tls.key.is_empty() {
            return Err(SettingsError::Invalid(
                "intake.tls.cert and intake.tls.key go together: set both or neither".into(),
            ));
        }
        self.validate_auth()?;
        if self.privacy.is_set() {
            self.privacy.key_ring().map_err(SettingsError::Invalid)?;
        }
        use propdesk_store::retention::{MAX_DAYS, MIN_DAYS};
        if !(MIN_DAYS..=MAX_DAYS).contains(&self.privacy.retention_days) {
            return Err(SettingsError::Invalid(format!(
                "privacy.retention_days must be {MIN_DAYS} to {MAX_DAYS} (30 days to 20 years)"
            )));
        }
        let duty = self.privacy.retention_duty;
        if !(duty > 0.0 && duty <= 1.0) {
            return Err(SettingsError::Invalid(format!(
                "privacy.retention_duty must be above 0 and at most 1 (the share of a pass spent writing), not {duty}"
            )));
        }
        if self.intake.watch_heartbeat_secs == 0 {
            return Err(SettingsError::Invalid("intake.watch_heartbeat_secs must be at least 1".into()));
        }
        let files = &self.attachments;
        if files.max_bytes == 0 || files.max_per_ticket == 0 || files.thumbnail_edge == 0 || files.max_pixels == 0 {
            return Err(SettingsError::Invalid(
                "attachments.max_bytes, max_per_ticket, thumbnail_edge and max_pixels must be at least 1".into(),
            ));
        }
        if files.sweep_interval_secs == 0 {
            return Err(SettingsError::Invalid("attachments.sweep_interval_secs must be at least 1".into()));
        }
        if self.dispatch.concurrency == 0 || self.dispatch.prefetch == 0 || self.dispatch.batch == 0 {
            return Err(SettingsError::Invalid(
                "dispatch.concurrency, dispatch.prefetch and dispatch.batch must be at least 1".into(),
            ));
        }
        self.notifier.validate().map_err(|e| SettingsError::Invalid(format!("notifier.{e}")))?;
        if !self.metrics.listen.is_empty() && self.metrics.listen.parse::<SocketAddr>().is_err() {
            return Err(SettingsError::Invalid(format!("metrics.listen `{}` is not an address", self.metrics.listen)));
        }
        if !["pretty", "json"].contains(&self.log.format.as_str()) {
            return Err(SettingsError::Invalid(format!(
                "log.format must be `pretty` or `json`, not `{}`",
                self.log.format
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_a_bad_value_names_its_key() {
        let settings = Settings::load(None).unwrap();
        assert_eq!(settings.intake.listen.port(), 50051);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[database]\nmax_connections = \"many\"\n").unwrap();
        let err = Settings::load(Some(&file)).unwrap_err().to_string();
        assert!(err.contains("database.max_connections"), "{err}");
        std::fs::write(&file, "[policy.sla.p1]\nacknowledge_secs = 0\n").unwrap();
        let err = Settings::load(Some(&file)).unwrap_err().to_string();
        assert!(err.contains("policy.sla.p1.acknowledge_secs"), "{err}");
    }

    #[test]
    fn allowed_origins_are_checked_when_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("origins.toml");
        std::fs::write(&file, "[intake]\nallowed_origins = [\"https://desk.example.com\", \"http://localhost:*\"]\n")
            .unwrap();
        let settings = Settings::load(Some(&file)).unwrap();
        assert_eq!(settings.intake.origins().unwrap().len(), 2);
        std::fs::write(&file, "[intake]\nallowed_origins = [\"https://*.example.com\"]\n").unwrap();
        let err = Settings::load(Some(&file)).unwrap_err().to_string();
        assert!(err.contains("intake.allowed_origins"), "{err}");
    }

    #[test]
    fn privacy_keys_sign_in_and_retention_are_checked_when_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("privacy.toml");
        let load = |text: &str| {
            std::fs::write(&file, text).unwrap();
            Settings::load(Some(&file)).map_err(|e| e.to_string())
        };
        let key = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
        let keys = format!("[privacy]\ndata_keys = \"k1:{key}\"\nactive_key = \"k1\"\nindex_key = \"{key}\"\n");
        assert!(load(&keys).is_ok());
        let missing = load(&keys.replace("active_key = \"k1\"", "active_key = \"k2\"")).unwrap_err();
        assert!(missing.contains("privacy") && missing.contains("k2"), "{missing}");
        for days in [29, 7301] {
            let err = load(&format!("{keys}retention_days = {days}\n")).unwrap_err();
            assert!(err.contains("privacy.retention_days"), "{err}");
        }
        assert!(load(&format!("{keys}retention_days = 30\n")).is_ok());
        for duty in ["0", "-0.5", "1.5", "nan"] {
            let err = load(&format!("{keys}retention_duty = {duty}\n")).unwrap_err();
            assert!(err.contains("privacy.retention_duty"), "{duty}: {err}");
        }
        assert!(load(&format!("{keys}retention_duty = 1\n")).is_ok());
        let err = load("[auth]\nshared_secret_tokens = false\n").unwrap_err();
        assert!(err.contains("nobody could sign in"), "{err}");
        let err = load("[auth.oidc]\nissuer = \"https://sso.example.com/realms/staff\"\n").unwrap_err();
        assert!(err.contains("auth.oidc.audience"), "{err}");
        let err = load("[auth]\ndirectory_cache_secs = 60\n").unwrap_err();
        assert!(err.contains("auth.directory_cache_secs"), "{err}");
    }

    #[test]
    fn a_cluster_is_a_list_of_nodes_given_instead_of_one_url() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bus.toml");
        let load = |text: &str| {
            std::fs::write(&file, text).unwrap();
            Settings::load(Some(&file)).map_err(|e| e.to_string())
        };
        let nodes = "[bus]\nurls = [\"amqp://a:5672/%2f\", \"amqp://b:5672/%2f\"]\n";
        let settings = load(nodes).unwrap();
        assert_eq!(settings.bus.urls.len(), 2);
        assert!(!format!("{settings:?}").contains("amqp://a"), "the nodes' URLs (and passwords) never print");
        let both = load(&format!("{nodes}url = \"amqp://c:5672/%2f\"\n")).unwrap_err();
        assert!(both.contains("bus.url and bus.urls"), "{both}");
        let empty = load("[bus]\nurls = [\"amqp://a:5672/%2f\", \"\"]\n").unwrap_err();
        assert!(empty.contains("bus.urls"), "{empty}");
    }
}
