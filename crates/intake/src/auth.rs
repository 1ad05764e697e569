//! Who is calling: every call to the propdesk services carries `authorization: Bearer
//! <token>`, checked by [`AuthLayer`] before the service sees the call; the [`Actor`] it
//! names goes into the request's extensions, where handlers read it with [`actor`].
//!
//! Two kinds of token are accepted:
//! - the company's identity provider's (OIDC, RS256/ES256, checked by
//!   [`propdesk_oidc::Verifier`]). The token says only who the person is; their role,
//!   department and property come from the directory (the staff member whose
//!   `external_id` the token names), read again after a few seconds, so a directory change
//!   or a deactivation takes effect without a new token;
//! - HS256 tokens signed with the shared secret ([`TokenKeys`]), for `propdesk dev`, tests
//!   and service accounts. They carry role and properties themselves. Production can
//!   switch them off.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use propdesk_domain::{Actor, Role};
use propdesk_oidc::{Refused, Verifier};
use propdesk_proto::v1::ErrorReason;
use propdesk_store::Store;
use propdesk_store::entity::staff;
use serde::{Deserialize, Serialize};
use tonic::codegen::http;
use tonic::server::NamedService;
use tonic::{Request, Status};
use tower::{Layer, Service};

use crate::error::{ApiError, ApiResult};

/// The claims of a propdesk token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Staff id.
    pub sub: String,
    /// Role code, e.g. "agent".
    pub role: String,
    /// Property ids served.
    pub properties: Vec<String>,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the signing secret must be at least 32 bytes")]
    WeakSecret,
    #[error("could not sign the token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Signs and verifies tokens with one shared secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: Arc<EncodingKey>,
    decoding: Arc<DecodingKey>,
    validation: Arc<Validation>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(<secret>)")
    }
}

pub const MIN_SECRET_LEN: usize = 32;

impl TokenKeys {
    pub fn new(secret: &[u8]) -> Result<TokenKeys, TokenError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(TokenError::WeakSecret);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(TokenKeys {
            encoding: Arc::new(EncodingKey::from_secret(secret)),
            decoding: Arc::new(DecodingKey::from_secret(secret)),
            validation: Arc::new(validation),
        })
    }

    /// A token for `actor`, valid for `lifetime_secs` from `issued_at` (unix seconds).
    pub fn mint(&self, actor: &Actor, issued_at: i64, lifetime_secs: i64) -> Result<String, TokenError> {
        let claims = Claims {
            sub: actor.staff_id.clone(),
            role: actor.role.code().to_owned(),
            properties: actor.properties.clone(),
            iat: issued_at,
            exp: issued_at + lifetime_secs,
        };
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?)
    }

    /// The actor a bearer token names, or why it is refused.
    pub fn verify(&self, token: &str) -> Result<Actor, Status> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map_err(|err| {
            use jsonwebtoken::errors::ErrorKind;
            match err.kind() {
                ErrorKind::ExpiredSignature => unauthenticated(ErrorReason::TokenExpired, "the token has expired"),
                ErrorKind::InvalidSignature => {
                    unauthenticated(ErrorReason::TokenInvalid, "the token signature is not valid")
                }
                _ => unauthenticated(ErrorReason::TokenInvalid, "the token is malformed"),
            }
        })?;
        let claims = data.claims;
        let role = claims
            .role
            .parse::<Role>()
            .map_err(|_| unauthenticated(ErrorReason::TokenInvalid, "the token names an unknown role"))?;
        Ok(Actor { staff_id: claims.sub, role, properties: claims.properties })
    }
}

fn unauthenticated(reason: ErrorReason, message: &'static str) -> Status {
    Status::from(ApiError::Unauthenticated { reason, message })
}

/// The staff records signed-in callers resolve to, by identity-provider id, each kept for
/// a few seconds: every call needs its caller's current role and property, and a directory
/// change must reach a caller who holds a token within those seconds.
pub struct SignedInStaff {
    fresh_for: Duration,
    entries: Mutex<HashMap<String, (Instant, Option<staff::Model>)>>,
}

/// Past this many callers, entries older than `fresh_for` are dropped.
const SIGNED_IN_PRUNE_AT: usize = 10_000;

impl SignedInStaff {
    pub fn new(fresh_for: Duration) -> SignedInStaff {
        SignedInStaff { fresh_for, entries: Mutex::new(HashMap::new()) }
    }

    /// The staff member with `external_id`, if any: from the cache while fresh, else from
    /// the directory.
    pub async fn find(&self, store: &Store, external_id: &str) -> ApiResult<Option<staff::Model>> {
        let now = Instant::now();
        if let Some((read_at, found)) = self.lock().get(external_id)
            && now.saturating_duration_since(*read_at) < self.fresh_for
        {
            return Ok(found.clone());
        }
        let found = store.staff_by_external_id(external_id).await?;
        let mut entries = self.lock();
        if entries.len() >= SIGNED_IN_PRUNE_AT {
            entries.retain(|_, (read_at, _)| now.saturating_duration_since(*read_at) < self.fresh_for);
        }
        entries.insert(external_id.to_owned(), (now, found.clone()));
        Ok(found)
    }

    /// Drops what is known of `external_id`: this replica's next call reads the directory.
    pub fn forget(&self, external_id: Option<&str>) {
        if let Some(external_id) = external_id {
            self.lock().remove(external_id);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Option<staff::Model>)>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Turns a bearer token into the caller.
#[derive(Clone)]
pub struct Authenticator {
    /// HS256 tokens; `None`: switched off.
    shared: Option<TokenKeys>,
    /// The identity provider's tokens; `None`: not configured.
    provider: Option<Arc<Verifier>>,
    store: Store,
    signed_in: Arc<SignedInStaff>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("shared_secret_tokens", &self.shared.is_some())
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn new(
        shared: Option<TokenKeys>,
        provider: Option<Arc<Verifier>>,
        state: &crate::IntakeState,
    ) -> Authenticator {
        Authenticator { shared, provider, store: state.store.clone(), signed_in: state.signed_in.clone() }
    }

    /// The caller a call's `authorization` header names, or why the call is refused.
    pub async fn authenticate(&self, headers: &http::HeaderMap) -> Result<Actor, Status> {
        let token = bearer_token(headers)?;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| unauthenticated(ErrorReason::TokenInvalid, "the token is malformed"))?;
        match (header.alg, &self.shared, &self.provider) {
            (Algorithm::HS256, Some(keys), _) => keys.verify(token),
            (Algorithm::HS256, None, _) => Err(unauthenticated(
                ErrorReason::TokenInvalid,
                "shared-secret tokens are switched off here: sign in through the identity provider",
            )),
            (_, _, Some(provider)) => self.signed_in_through(provider, token).await,
            (_, _, None) => {
                Err(unauthenticated(ErrorReason::TokenInvalid, "the token's signing algorithm is not accepted"))
            }
        }
    }

    async fn signed_in_through(&self, provider: &Verifier, token: &str) -> Result<Actor, Status> {
        let external_id = provider.verify(token).await.map_err(|refused| match refused {
            Refused::Expired => unauthenticated(ErrorReason::TokenExpired, "the token has expired"),
            Refused::ProviderUnavailable => Status::from(ApiError::Unavailable {
                reason: ErrorReason::IdentityProviderUnavailable,
                message: refused.to_string(),
            }),
            other => {
                tracing::debug!(refused = ?other, "identity-provider token refused");
                unauthenticated(ErrorReason::TokenInvalid, other.text())
            }
        })?;
        let staff = self.signed_in.find(&self.store, &external_id).await?.ok_or_else(|| {
            Status::from(ApiError::Forbidden {
                reason: ErrorReason::StaffNotFound,
                message: "you signed in, but no staff member in propdesk has your identity".to_owned(),
            })
        })?;
        if !staff.active {
            return Err(Status::from(ApiError::Forbidden {
                reason: ErrorReason::StaffInactive,
                message: "your staff record has been deactivated".to_owned(),
            }));
        }
        let role = staff.role().ok_or_else(|| ApiError::Internal(format!("staff {} has an unknown role", staff.id)))?;
        Ok(Actor { staff_id: staff.id, role, properties: vec![staff.property_id] })
    }
}

fn bearer_token(headers: &http::HeaderMap) -> Result<&str, Status> {
    let header = headers.get(http::header::AUTHORIZATION).ok_or_else(|| {
        unauthenticated(ErrorReason::TokenMissing, "missing `authorization: Bearer <token>` metadata")
    })?;
    let value = header
        .to_str()
        .map_err(|_| unauthenticated(ErrorReason::TokenMissing, "the authorization header is not text"))?;
    let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).ok_or_else(|| {
        unauthenticated(ErrorReason::TokenMissing, "the authorization header must be `Bearer <token>`")
    })?;
    Ok(token.trim())
}

/// Authenticates every call of the service it wraps (the propdesk services; health and
/// reflection stay open). A refused call is answered here and never reaches the service.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    authenticator: Authenticator,
}

impl AuthLayer {
    pub fn new(authenticator: Authenticator) -> AuthLayer {
        AuthLayer { authenticator }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticated { inner, authenticator: self.authenticator.clone() }
    }
}

#[derive(Clone, Debug)]
pub struct Authenticated<S> {
    inner: S,
    authenticator: Authenticator,
}

impl<S: NamedService> NamedService for Authenticated<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, R> Service<http::Request<B>> for Authenticated<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone that was polled ready serves this call; the fresh one waits for the next.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let authenticator = self.authenticator.clone();
        Box::pin(async move {
            match authenticator.authenticate(request.headers()).await {
                Ok(actor) => {
                    request.extensions_mut().insert(actor);
                    let method = request.uri().path().to_owned();
                    crate::audit::in_call(method, inner.call(request)).await
                }
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

/// The authenticated caller of a request that went through [`AuthLayer`].
pub fn actor<T>(request: &Request<T>) -> Result<Actor, Status> {
    request
        .extensions()
        .get::<Actor>()
        .cloned()
        .ok_or_else(|| unauthenticated(ErrorReason::TokenMissing, "no authenticated caller"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(&[7u8; 32]).unwrap()
    }

    fn agent() -> Actor {
        Actor { staff_id: "s1".into(), role: Role::Agent, properties: vec!["p1".into()] }
    }

    #[test]
    fn a_minted_token_verifies_to_the_same_actor() {
        let now = chrono::Utc::now().timestamp();
        let token = keys().mint(&agent(), now, 3600).unwrap();
        assert_eq!(keys().verify(&token).unwrap(), agent());
    }

    #[test]
    fn expired_forged_and_garbled_tokens_are_refused() {
        let now = chrono::Utc::now().timestamp();
        let expired = keys().mint(&agent(), now - 7200, 3600).unwrap();
        assert_eq!(keys().verify(&expired).unwrap_err().message(), "the token has expired");
        let forged = TokenKeys::new(&[8u8; 32]).unwrap().mint(&agent(), now, 3600).unwrap();
        assert_eq!(keys().verify(&forged).unwrap_err().message(), "the token signature is not valid");
        assert_eq!(keys().verify("not.a.token").unwrap_err().code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(matches!(TokenKeys::new(b"short"), Err(TokenError::WeakSecret)));
    }
}
