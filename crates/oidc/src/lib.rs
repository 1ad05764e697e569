//! Sign-in through the company's identity provider (OpenID Connect: Keycloak, Azure AD,
//! Authing, DingTalk or WeCom single sign-on).
//!
//! A [`Verifier`] checks a bearer token the provider issued and answers who it names (the
//! `sub` claim, or the claim configured instead: an email, an employee number). A token is
//! accepted only when all of these hold:
//! - it is signed with RS256/384/512, PS256/384/512, ES256 or ES384 (never HS*, never
//!   `none`), by a key the provider publishes at its JWKS address, chosen by the token's
//!   `kid`; a key's own `alg`, when it names one, is the only algorithm it verifies;
//! - `iss` is the configured issuer and `aud` holds the configured audience;
//! - `exp` has not passed and `nbf` has (both with the configured leeway).
//!
//! The published keys are cached. They are read again when older than `max_key_age`, and
//! when a token names a key the cache does not hold (a rotation), at most once per
//! `min_refresh_interval` so a flood of tokens with made-up `kid`s cannot turn into a flood
//! of requests to the provider. A key the provider stops publishing still verifies for
//! `rotation_overlap`, so tokens signed just before a rotation keep working. When the keys
//! cannot be fetched, the last ones read stay in use; with none read yet, the answer is
//! [`Refused::ProviderUnavailable`] (retry later) rather than a refusal of the token.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

/// The algorithms a provider's token may be signed with: public-key ones only.
pub const ACCEPTED_ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// A key document larger than this is not read (a real one is a few KiB).
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Where the provider is and how its keys are kept.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The provider's issuer, exactly as its tokens' `iss` carries it.
    pub issuer: String,
    /// What the tokens' `aud` must hold (the client id propdesk is registered under).
    pub audience: String,
    /// The JWKS address; `None`: read from the issuer's discovery document
    /// (`<issuer>/.well-known/openid-configuration`).
    pub jwks_url: Option<String>,
    /// The claim naming the person: `sub`, or e.g. `email`, `employee_number`.
    pub subject_claim: String,
    /// Keys are read again when older than this.
    pub max_key_age: Duration,
    /// At most one read per this interval when tokens name unknown keys.
    pub min_refresh_interval: Duration,
    /// A key the provider stops publishing still verifies for this long.
    pub rotation_overlap: Duration,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// How long one request to the provider may take.
    pub fetch_timeout: Duration,
    /// A private CA (PEM) the provider's TLS certificate chains to, beside the public roots.
    pub ca_pem: Option<Vec<u8>>,
}

impl OidcSettings {
    /// Settings with the usual timings for `issuer` and `audience`.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> OidcSettings {
        OidcSettings {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_url: None,
            subject_claim: "sub".to_owned(),
            max_key_age: Duration::from_secs(15 * 60),
            min_refresh_interval: Duration::from_secs(30),
            rotation_overlap: Duration::from_secs(5 * 60),
            leeway: Duration::from_secs(30),
            fetch_timeout: Duration::from_secs(5),
            ca_pem: None,
        }
    }
}

/// Why a token is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Malformed,
    Algorithm,
    UnknownKey,
    Signature,
    Expired,
    NotYetValid,
    Issuer,
    Audience,
    MissingClaim,
    /// The keys cannot be read and none were read before: the token cannot be checked.
    ProviderUnavailable,
}

impl Refused {
    /// What to tell the caller: safe to send, fixed text.
    pub fn text(self) -> &'static str {
        match self {
            Refused::Malformed => "the token is not a well-formed JWT",
            Refused::Algorithm => "the token's signing algorithm is not accepted",
            Refused::UnknownKey => "the token names a signing key the identity provider does not publish",
            Refused::Signature => "the token signature is not valid",
            Refused::Expired => "the token has expired",
            Refused::NotYetValid => "the token is not valid yet",
            Refused::Issuer => "the token was issued by another issuer",
            Refused::Audience => "the token is meant for another audience",
            Refused::MissingClaim => {
                "the token lacks a claim propdesk needs (exp, iss, aud or the one naming the person)"
            }
            Refused::ProviderUnavailable => "the identity provider's signing keys cannot be fetched",
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text())
    }
}

impl std::error::Error for Refused {}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("auth.oidc.issuer and auth.oidc.audience must both be set")]
    Incomplete,
    #[error("auth.oidc.ca_file is not a PEM certificate: {0}")]
    Certificate(reqwest::Error),
    #[error("the HTTP client cannot be built: {0}")]
    Client(reqwest::Error),
}

/// Checks the provider's tokens; shared by every request of a process.
pub struct Verifier {
    settings: OidcSettings,
    http: reqwest::Client,
    keys: RwLock<Arc<KeySet>>,
    fetching: tokio::sync::Mutex<Fetching>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("issuer", &self.settings.issuer).finish_non_exhaustive()
    }
}

/// One published key and the algorithms it verifies.
struct Key {
    decoding: DecodingKey,
    algorithms: Vec<Algorithm>,
    /// When the provider stopped publishing it.
    dropped_at: Option<Instant>,
}

#[derive(Default)]
struct KeySet {
    by_id: HashMap<String, Arc<Key>>,
    read_at: Option<Instant>,
}

enum Lookup {
    Found(Arc<Key>),
    /// The key exists but does not verify this algorithm: no read would change that.
    WrongAlgorithm,
    Missing,
}

impl KeySet {
    fn find(&self, kid: Option<&str>, algorithm: Algorithm, now: Instant, overlap: Duration) -> Lookup {
        let live = |key: &Arc<Key>| key.dropped_at.is_none_or(|at| now.saturating_duration_since(at) < overlap);
        match kid {
            Some(kid) => match self.by_id.get(kid).filter(|key| live(key)) {
                Some(key) if key.algorithms.contains(&algorithm) => Lookup::Found(key.clone()),
                Some(_) => Lookup::WrongAlgorithm,
                None => Lookup::Missing,
            },
            // A token without `kid` is taken only when one key could have signed it.
            None => {
                let mut candidates = self.by_id.values().filter(|key| live(key) && key.algorithms.contains(&algorithm));
                match (candidates.next(), candidates.next()) {
                    (Some(key), None) => Lookup::Found(key.clone()),
                    _ => Lookup::Missing,
                }
            }
        }
    }

    /// The keys of a new document; keys no longer in it are kept, marked dropped, until the
    /// overlap has passed.
    fn succeeded_by(&self, published: HashMap<String, Key>, now: Instant, overlap: Duration) -> KeySet {
        let mut by_id: HashMap<String, Arc<Key>> =
            published.into_iter().map(|(kid, key)| (kid, Arc::new(key))).collect();
        for (kid, old) in &self.by_id {
            if by_id.contains_key(kid) {
                continue;
            }
            let dropped_at = old.dropped_at.unwrap_or(now);
            if now.saturating_duration_since(dropped_at) < overlap {
                let kept = Key {
                    decoding: old.decoding.clone(),
                    algorithms: old.algorithms.clone(),
                    dropped_at: Some(dropped_at),
                };
                by_id.insert(kid.clone(), Arc::new(kept));
            }
        }
        KeySet { by_id, read_at: Some(now) }
    }
}

#[derive(Default)]
struct Fetching {
    /// The JWKS address, once configured or discovered.
    jwks_url: Option<String>,
    last_attempt: Option<Instant>,
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("the document is larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge,
    #[error("the document is not JSON of the expected shape: {0}")]
    Shape(#[from] serde_json::Error),
    #[error("the discovery document names issuer {found:?}, not the configured one")]
    IssuerMismatch { found: String },
    #[error("the document holds no key propdesk can use")]
    NoUsableKey,
}

#[derive(serde::Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(serde::Deserialize)]
struct Document {
    keys: Vec<Value>,
}

impl Verifier {
    pub fn new(settings: OidcSettings) -> Result<Verifier, SetupError> {
        if settings.issuer.is_empty() || settings.audience.is_empty() {
            return Err(SetupError::Incomplete);
        }
        let mut http = reqwest::Client::builder().timeout(settings.fetch_timeout);
        if let Some(pem) = &settings.ca_pem {
            http = http.add_root_certificate(reqwest::Certificate::from_pem(pem).map_err(SetupError::Certificate)?);
        }
        let http = http.build().map_err(SetupError::Client)?;
        let fetching = Fetching { jwks_url: settings.jwks_url.clone(), last_attempt: None };
        Ok(Verifier {
            settings,
            http,
            keys: RwLock::new(Arc::new(KeySet::default())),
            fetching: tokio::sync::Mutex::new(fetching),
        })
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// Who a token names (the value of the subject claim), or why it is refused.
    pub async fn verify(&self, token: &str) -> Result<String, Refused> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refused::Malformed)?;
        if !ACCEPTED_ALGORITHMS.contains(&header.alg) {
            return Err(Refused::Algorithm);
        }
        let key = self.key_for(header.kid.as_deref(), header.alg).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.leeway = self.settings.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key.decoding, &validation)
            .map_err(|err| refusal(err.kind()))?
            .claims;
        match claims.get(&self.settings.subject_claim) {
            Some(Value::String(subject)) if !subject.is_empty() => Ok(subject.clone()),
            Some(Value::Number(number)) => Ok(number.to_string()),
            _ => Err(Refused::MissingClaim),
        }
    }

    /// Reads the provider's keys now (at start-up, so the first sign-in does not wait);
    /// answers how many are in use.
    pub async fn refresh_now(&self) -> Result<usize, Refused> {
        self.refresh(true).await?;
        Ok(self.current().by_id.len())
    }

    fn current(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    async fn key_for(&self, kid: Option<&str>, algorithm: Algorithm) -> Result<Arc<Key>, Refused> {
        let now = Instant::now();
        let overlap = self.settings.rotation_overlap;
        let keys = self.current();
        let fresh = keys.read_at.is_some_and(|at| now.saturating_duration_since(at) < self.settings.max_key_age);
        match keys.find(kid, algorithm, now, overlap) {
            Lookup::Found(key) if fresh => return Ok(key),
            Lookup::WrongAlgorithm => return Err(Refused::Algorithm),
            Lookup::Found(_) | Lookup::Missing => {}
        }
        self.refresh(false).await?;
        match self.current().find(kid, algorithm, Instant::now(), overlap) {
            Lookup::Found(key) => Ok(key),
            Lookup::WrongAlgorithm => Err(Refused::Algorithm),
            Lookup::Missing => Err(Refused::UnknownKey),
        }
    }

    /// Reads the keys unless a read was attempted within the minimum interval (`force`
    /// ignores it). Fails only when no keys were ever read.
    async fn refresh(&self, force: bool) -> Result<(), Refused> {
        let mut fetching = self.fetching.lock().await;
        let now = Instant::now();
        let recent = fetching
            .last_attempt
            .is_some_and(|at| now.saturating_duration_since(at) < self.settings.min_refresh_interval);
        if !recent || force {
            fetching.last_attempt = Some(now);
            match self.fetch(&mut fetching).await {
                Ok(published) => {
                    let count = published.len();
                    let next = self.current().succeeded_by(published, now, self.settings.rotation_overlap);
                    match self.keys.write() {
                        Ok(mut keys) => *keys = Arc::new(next),
                        Err(poisoned) => *poisoned.into_inner() = Arc::new(next),
                    }
                    tracing::info!(issuer = %self.settings.issuer, keys = count, "read the identity provider's signing keys");
                }
                Err(err) => {
                    tracing::warn!(issuer = %self.settings.issuer, error = %err, "could not read the identity provider's signing keys")
                }
            }
        }
        if self.current().read_at.is_none() { Err(Refused::ProviderUnavailable) } else { Ok(()) }
    }

    async fn fetch(&self, fetching: &mut Fetching) -> Result<HashMap<String, Key>, FetchError> {
        let jwks_url = match &fetching.jwks_url {
            Some(url) => url.clone(),
            None => {
                let address =
                    format!("{}/.well-known/openid-configuration", self.settings.issuer.trim_end_matches('/'));
                let discovery: Discovery = serde_json::from_slice(&self.get(&address).await?)?;
                if discovery.issuer != self.settings.issuer {
                    return Err(FetchError::IssuerMismatch { found: discovery.issuer });
                }
                fetching.jwks_url = Some(discovery.jwks_uri.clone());
                discovery.jwks_uri
            }
        };
        let document: Document = serde_json::from_slice(&self.get(&jwks_url).await?)?;
        let published = usable_keys(&document.keys);
        if published.is_empty() {
            return Err(FetchError::NoUsableKey);
        }
        Ok(published)
    }

    async fn get(&self, address: &str) -> Result<Vec<u8>, FetchError> {
        let response = self.http.get(address).send().await?.error_for_status()?;
        if response.content_length().is_some_and(|length| length > MAX_DOCUMENT_BYTES as u64) {
            return Err(FetchError::TooLarge);
        }
        let body = response.bytes().await?;
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(FetchError::TooLarge);
        }
        Ok(body.to_vec())
    }
}

/// The signing keys of a JWKS document propdesk can use, by `kid`. Keys of other types
/// (symmetric `oct` keys above all: a published secret is no secret), for encryption, or
/// without a `kid` are left out.
fn usable_keys(keys: &[Value]) -> HashMap<String, Key> {
    let mut usable = HashMap::new();
    for value in keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value.clone()) else { continue };
        if jwk.common.public_key_use.as_ref().is_some_and(|u| *u != PublicKeyUse::Signature) {
            continue;
        }
        let Some(kid) = jwk.common.key_id.clone() else { continue };
        let algorithms = algorithms_of(&jwk);
        if algorithms.is_empty() {
            continue;
        }
        let Ok(decoding) = DecodingKey::from_jwk(&jwk) else { continue };
        usable.insert(kid, Key { decoding, algorithms, dropped_at: None });
    }
    usable
}

/// What a key verifies: its own `alg` when it names an accepted one, else every accepted
/// algorithm of its type and curve.
fn algorithms_of(jwk: &Jwk) -> Vec<Algorithm> {
    use Algorithm::*;
    let by_type: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => &[RS256, RS384, RS512, PS256, PS384, PS512],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => &[ES256],
            EllipticCurve::P384 => &[ES384],
            _ => &[],
        },
        _ => &[],
    };
    match jwk.common.key_algorithm {
        Some(named) => match Algorithm::from_str(&named.to_string()) {
            Ok(algorithm) if by_type.contains(&algorithm) => vec![algorithm],
            _ => Vec::new(),
        },
        None => by_type.to_vec(),
    }
}

fn refusal(kind: &jsonwebtoken::errors::ErrorKind) -> Refused {
    use jsonwebtoken::errors::ErrorKind;
    match kind {
        ErrorKind::ExpiredSignature => Refused::Expired,
        ErrorKind::ImmatureSignature => Refused::NotYetValid,
        ErrorKind::InvalidIssuer => Refused::Issuer,
        ErrorKind::InvalidAudience => Refused::Audience,
        ErrorKind::InvalidSignature => Refused::Signature,
        ErrorKind::InvalidAlgorithm => Refused::Algorithm,
        ErrorKind::MissingRequiredClaim(_) => Refused::MissingClaim,
        _ => Refused::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsa_jwk(kid: &str, alg: Option<&str>) -> Value {
        // Random bytes for a modulus: enough to parse; no token is verified with it here.
        let mut jwk = serde_json::json!({
            "kty": "RSA", "kid": kid, "use": "sig",
            "n": "eVRBvyLnYHh_gzs-smYE3L9iZOQbObkIiT4gqPKLfnOtg2z626cWrfjyYOXdaINjc44D9MMJg-sO7a6v1zDU98rRczzK_zSDnUBLVcHPk1K6s7BiNdA54o5ZTTluf1gqj4TBTdWVwZJacOfnQJU27Bl8V_mGRRwuS-EmcBDVZkHCCRkk_L9Tsbuy1Hq787KVbzHeQUCJnXWGl3oirijZIU2-VMq0uR02SIXOPzjxt9lHO0JIbkRxuuyPNak77hh52kvCogrMUltY9nDb88mubgVF3Bc5cg4RiRJTFRr2fzleFcRoobWyEEcHD658ZevVJZABJcYUQiR_bhOslYY7pg",
            "e": "AQAB"
        });
        if let Some(alg) = alg {
            jwk["alg"] = Value::from(alg);
        }
        jwk
    }

    fn ec_jwk(kid: &str) -> Value {
        serde_json::json!({
            "kty": "EC", "kid": kid, "crv": "P-256",
            "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
            "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"
        })
    }

    #[test]
    fn symmetric_encryption_and_anonymous_keys_are_left_out() {
        let keys = vec![
            serde_json::json!({"kty": "oct", "kid": "secret", "k": "c2VjcmV0"}),
            {
                let mut encryption = rsa_jwk("enc", None);
                encryption["use"] = Value::from("enc");
                encryption
            },
            {
                let mut anonymous = rsa_jwk("x", None);
                anonymous.as_object_mut().unwrap().remove("kid");
                anonymous
            },
            serde_json::json!({"kty": "weird", "kid": "w"}),
            rsa_jwk("rsa", None),
            ec_jwk("ec"),
        ];
        let usable = usable_keys(&keys);
        let mut kids: Vec<_> = usable.keys().cloned().collect();
        kids.sort();
        assert_eq!(kids, ["ec", "rsa"]);
        assert_eq!(usable["ec"].algorithms, [Algorithm::ES256]);
        assert!(usable["rsa"].algorithms.contains(&Algorithm::PS256));
    }

    #[test]
    fn a_key_naming_its_algorithm_verifies_that_one_only() {
        let usable = usable_keys(&[rsa_jwk("a", Some("RS256")), rsa_jwk("b", Some("ES256"))]);
        assert_eq!(usable["a"].algorithms, [Algorithm::RS256]);
        // An RSA key claiming an EC algorithm is nonsense: left out.
        assert!(!usable.contains_key("b"));
    }

    #[test]
    fn a_dropped_key_verifies_through_the_overlap_only() {
        let start = Instant::now();
        let overlap = Duration::from_secs(60);
        let first = KeySet::default().succeeded_by(usable_keys(&[rsa_jwk("old", None)]), start, overlap);
        let rotated = first.succeeded_by(usable_keys(&[rsa_jwk("new", None)]), start, overlap);
        assert!(matches!(rotated.find(Some("old"), Algorithm::RS256, start, overlap), Lookup::Found(_)));
        assert!(matches!(rotated.find(Some("new"), Algorithm::RS256, start, overlap), Lookup::Found(_)));
        let later = start + overlap;
        assert!(matches!(rotated.find(Some("old"), Algorithm::RS256, later, overlap), Lookup::Missing));
        // Read again after the overlap: the dropped key is gone for good.
        let again = rotated.succeeded_by(usable_keys(&[rsa_jwk("new", None)]), later, overlap);
        assert!(!again.by_id.contains_key("old"));
    }

    #[test]
    fn a_key_used_with_another_algorithm_is_refused_without_a_read() {
        let now = Instant::now();
        let keys = KeySet::default().succeeded_by(usable_keys(&[ec_jwk("ec")]), now, Duration::ZERO);
        assert!(matches!(keys.find(Some("ec"), Algorithm::RS256, now, Duration::ZERO), Lookup::WrongAlgorithm));
    }

    #[test]
    fn a_token_without_kid_is_taken_only_when_one_key_fits() {
        let now = Instant::now();
        let one = KeySet::default().succeeded_by(usable_keys(&[rsa_jwk("a", None), ec_jwk("e")]), now, Duration::ZERO);
        assert!(matches!(one.find(None, Algorithm::ES256, now, Duration::ZERO), Lookup::Found(_)));
        let two =
            KeySet::default().succeeded_by(usable_keys(&[rsa_jwk("a", None), rsa_jwk("b", None)]), now, Duration::ZERO);
        assert!(matches!(two.find(None, Algorithm::RS256, now, Duration::ZERO), Lookup::Missing));
    }

    #[test]
    fn settings_without_issuer_or_audience_are_refused() {
        assert!(matches!(Verifier::new(OidcSettings::new("", "propdesk")), Err(SetupError::Incomplete)));
        assert!(matches!(Verifier::new(OidcSettings::new("https://id.example", "")), Err(SetupError::Incomplete)));
    }
}
