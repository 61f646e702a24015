//! Who is calling: bearer tokens (JWT, HS256) that carry a role, an id and, for supervisors,
//! the queues they run.
//!
//! HS256 is a keyed SHA-256 MAC over `header.payload`; kefu only ever signs and accepts that
//! one algorithm, so a token whose header names another (`none`, RS256 with the secret as a
//! public key, ...) is refused before its signature is looked at.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Shortest secret accepted: HS256 keys should be at least as long as the hash.
pub const MIN_SECRET_BYTES: usize = 32;

/// What a token lets its holder be.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    async_graphql::Enum,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Their own conversations only.
    Customer,
    /// Conversations assigned to them and the queues their skills cover.
    Agent,
    /// Their queues (named in the token) and the agents working them.
    Supervisor,
    /// Statistics, search and replay; read-only.
    Analyst,
    /// The audit trail and event history; read-only.
    Auditor,
    /// Queues, agents, the knowledge base and switches.
    Admin,
    /// The order system's feed: records orders and customer profiles, nothing else.
    Integration,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Customer,
        Role::Agent,
        Role::Supervisor,
        Role::Analyst,
        Role::Auditor,
        Role::Admin,
        Role::Integration,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Analyst => "analyst",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
            Role::Integration => "integration",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                AuthError::BadClaims(format!(
                    "unknown role {s:?}: use customer, agent, supervisor, analyst, auditor, admin or integration"
                ))
            })
    }
}

/// The caller, as their token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub role: Role,
    /// The customer's or agent's id (a UUID), or a name for the other roles.
    pub id: String,
    /// The queues a supervisor runs.
    pub queues: BTreeSet<String>,
}

impl Principal {
    /// Who the token speaks for, as one string: the rate limit's bucket and the scope of the
    /// caller's idempotency keys.
    pub fn identity(&self) -> String {
        format!("{}:{}", self.role, self.id)
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    #[error("no bearer token: send `Authorization: Bearer <token>`")]
    Missing,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("token signed with {0:?}; kefu accepts HS256 only")]
    Algorithm(String),
    #[error("token signature does not match")]
    Signature,
    #[error("token expired at {0}")]
    Expired(DateTime<Utc>),
    #[error("token claims: {0}")]
    BadClaims(String),
    #[error("the token secret must be at least {MIN_SECRET_BYTES} bytes")]
    WeakSecret,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    exp: i64,
    iat: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    queues: Vec<String>,
}

/// Signs and checks tokens with one secret.
#[derive(Clone)]
pub struct Tokens {
    key: Vec<u8>,
}

impl Tokens {
    pub fn new(secret: &[u8]) -> Result<Self, AuthError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(AuthError::WeakSecret);
        }
        Ok(Tokens {
            key: secret.to_vec(),
        })
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length")
    }

    pub fn mint(&self, who: &Principal, now: DateTime<Utc>, ttl: Duration) -> String {
        let header = Header {
            alg: "HS256".into(),
            typ: Some("JWT".into()),
        };
        let claims = Claims {
            sub: who.id.clone(),
            role: who.role.as_str().into(),
            exp: (now + ttl).timestamp(),
            iat: now.timestamp(),
            queues: who.queues.iter().cloned().collect(),
        };
        let signing_input = format!(
            "{}.{}",
            B64.encode(serde_json::to_vec(&header).expect("header serializes")),
            B64.encode(serde_json::to_vec(&claims).expect("claims serialize"))
        );
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let signature = B64.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Principal, AuthError> {
        self.verify_until(token, now).map(|(p, _)| p)
    }

    /// [`Tokens::verify`], and when the token expires: a connection that outlives its
    /// request (a WebSocket) stops serving then.
    pub fn verify_until(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<(Principal, DateTime<Utc>), AuthError> {
        let token = token.trim();
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed("a JWT has three dot-separated parts"));
        };
        let header: Header = decode_part(header)?;
        if header.alg != "HS256" {
            return Err(AuthError::Algorithm(header.alg));
        }
        let signature = B64
            .decode(signature)
            .map_err(|_| AuthError::Malformed("the signature is not base64url"))?;
        let mut mac = self.mac();
        let (signing_input, _) = token.rsplit_once('.').unwrap_or_default();
        mac.update(signing_input.as_bytes());
        // Constant-time comparison.
        mac.verify_slice(&signature)
            .map_err(|_| AuthError::Signature)?;
        let claims: Claims = decode_part(claims)?;
        let expires = DateTime::from_timestamp(claims.exp, 0)
            .ok_or_else(|| AuthError::BadClaims("exp is out of range".into()))?;
        if expires <= now {
            return Err(AuthError::Expired(expires));
        }
        if claims.sub.trim().is_empty() {
            return Err(AuthError::BadClaims("sub is empty".into()));
        }
        let principal = Principal {
            role: claims.role.parse()?,
            id: claims.sub,
            queues: claims.queues.into_iter().collect(),
        };
        Ok((principal, expires))
    }
}

fn decode_part<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, AuthError> {
    let bytes = B64
        .decode(part)
        .map_err(|_| AuthError::Malformed("a part is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|e| AuthError::BadClaims(e.to_string()))
}

/// The token in an `Authorization: Bearer …` header value.
pub fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
    let value = header.ok_or(AuthError::Missing)?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or(AuthError::Malformed("expected `Bearer <token>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed("expected `Bearer <token>`"));
    }
    Ok(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(b"0123456789abcdef0123456789abcdef").unwrap()
    }

    fn agent() -> Principal {
        Principal {
            role: Role::Agent,
            id: "0192e0a0-0000-7000-8000-000000000001".into(),
            queues: BTreeSet::new(),
        }
    }

    #[test]
    fn a_minted_token_verifies_until_it_expires() {
        let now = Utc::now();
        let token = tokens().mint(&agent(), now, Duration::hours(1));
        assert_eq!(tokens().verify(&token, now).unwrap(), agent());
        assert!(matches!(
            tokens().verify(&token, now + Duration::hours(2)),
            Err(AuthError::Expired(_))
        ));
    }

    #[test]
    fn tampering_and_other_algorithms_are_refused() {
        let now = Utc::now();
        let token = tokens().mint(&agent(), now, Duration::hours(1));
        let other = Tokens::new(b"another secret that is long enough!!").unwrap();
        assert_eq!(other.verify(&token, now), Err(AuthError::Signature));

        // Promote oneself to admin by editing the claims.
        let parts: Vec<&str> = token.split('.').collect();
        let claims = String::from_utf8(B64.decode(parts[1]).unwrap())
            .unwrap()
            .replace("\"agent\"", "\"admin\"");
        let forged = format!("{}.{}.{}", parts[0], B64.encode(claims), parts[2]);
        assert_eq!(tokens().verify(&forged, now), Err(AuthError::Signature));

        let none = format!("{}.{}.", B64.encode(r#"{"alg":"none"}"#), parts[1]);
        assert_eq!(
            tokens().verify(&none, now),
            Err(AuthError::Algorithm("none".into()))
        );
        assert!(matches!(
            tokens().verify("not a token", now),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn short_secrets_and_bad_headers_are_named() {
        assert_eq!(Tokens::new(b"short").err(), Some(AuthError::WeakSecret));
        assert_eq!(bearer(None), Err(AuthError::Missing));
        assert!(bearer(Some("Basic abc")).is_err());
        assert_eq!(bearer(Some("Bearer abc")).unwrap(), "abc");
    }
}
