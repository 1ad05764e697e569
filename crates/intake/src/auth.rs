//! Bearer tokens: HS256 JWTs naming a staff member, their role and their properties.
//!
//! The interceptor verifies the token of every call to the propdesk services and puts the
//! [`Actor`] in the request's extensions; handlers read it with [`actor`].

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use propdesk_domain::{Actor, Role};
use propdesk_proto::v1::ErrorReason;
use serde::{Deserialize, Serialize};
use tonic::{Request, Status};

use crate::error::ApiError;

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

    /// The interceptor for the propdesk services.
    pub fn interceptor(&self) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone + use<> {
        let keys = self.clone();
        move |mut request: Request<()>| {
            let header = request.metadata().get("authorization").ok_or_else(|| {
                unauthenticated(ErrorReason::TokenMissing, "missing `authorization: Bearer <token>` metadata")
            })?;
            let value = header
                .to_str()
                .map_err(|_| unauthenticated(ErrorReason::TokenMissing, "the authorization header is not text"))?;
            let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).ok_or_else(|| {
                unauthenticated(ErrorReason::TokenMissing, "the authorization header must be `Bearer <token>`")
            })?;
            let actor = keys.verify(token.trim())?;
            request.extensions_mut().insert(actor);
            Ok(request)
        }
    }
}

fn unauthenticated(reason: ErrorReason, message: &'static str) -> Status {
    Status::from(ApiError::Unauthenticated { reason, message })
}

/// The authenticated caller of a request that went through the interceptor.
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
