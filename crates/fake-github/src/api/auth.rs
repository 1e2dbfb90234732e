//! Who is calling: a token with its scopes, or a GitHub App by its JWT.

use chrono::Utc;
use hyper::StatusCode;
use hyper::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

use crate::Inner;
use crate::state::State;

use super::*;

/// Who is calling.
pub(crate) enum Caller {
    /// A classic token (with scopes) or an installation token (without).
    Token { key: String, scopes: Option<String> },
    /// A GitHub App, by its JWT.
    App { app_id: u64 },
}

impl Caller {
    pub(crate) fn budget_key(&self) -> String {
        match self {
            Self::Token { key, .. } => format!("token:{key}"),
            Self::App { app_id } => format!("app:{app_id}"),
        }
    }
}

/// Checks the `Authorization` header: a token for the REST paths, an App JWT for `/app/*`.
pub(crate) fn authenticate(inner: &Inner, headers: &HeaderMap, segments: &[&str]) -> Result<Caller, Reply> {
    let Some(value) = headers.get(hyper::header::AUTHORIZATION).and_then(|value| value.to_str().ok()) else {
        return Err(Reply::error(StatusCode::UNAUTHORIZED, "Requires authentication", DOCS));
    };
    let credential = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .or_else(|| value.strip_prefix("token "))
        .or_else(|| value.strip_prefix("Token "))
        .map(str::trim)
        .unwrap_or("");
    let wants_jwt = matches!(segments, ["app", ..] | ["repos", _, _, "installation"]);
    let state = inner.lock();
    if wants_jwt {
        return verify_jwt(&state, credential)
            .map(|app_id| Caller::App { app_id })
            .map_err(|message| Reply::error(StatusCode::UNAUTHORIZED, message, DOCS));
    }
    match state.tokens.get(credential) {
        Some(token) if token.expires_at.is_none_or(|expires| expires > Utc::now()) => {
            Ok(Caller::Token { key: credential.to_string(), scopes: token.scopes.clone() })
        }
        _ => Err(Reply::error(StatusCode::UNAUTHORIZED, "Bad credentials", DOCS)),
    }
}

/// The claims GitHub reads from an App JWT; `iss` may be the App id as a number or a string.
#[derive(Deserialize)]
pub(crate) struct Claims {
    iss: Value,
    iat: i64,
    exp: i64,
}

/// The App whose key signed `token`, checking `iss` and GitHub's ten-minute lifetime.
pub(crate) fn verify_jwt(state: &State, token: &str) -> Result<u64, &'static str> {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.leeway = 60;
    validation.validate_aud = false;
    // `iss` is checked below: GitHub accepts the App id as a number, which jsonwebtoken does not.
    validation.set_required_spec_claims(&["exp"]);
    for app in state.apps.values() {
        match jsonwebtoken::decode::<Claims>(token, &app.key, &validation) {
            Ok(data) => {
                let claims = data.claims;
                let iss = match &claims.iss {
                    Value::Number(number) => number.as_u64(),
                    Value::String(text) => text.parse().ok(),
                    _ => None,
                };
                if iss != Some(app.id) {
                    return Err("'Issuer' claim ('iss') must be an Integer");
                }
                let now = Utc::now().timestamp();
                if claims.exp > now + 600 + 60 || claims.exp - claims.iat > 600 + 60 {
                    return Err(
                        "'Expiration time' claim ('exp') is too far in the future. Make sure the 'exp' claim is less than 10 minutes from now.",
                    );
                }
                if claims.iat > now + 60 {
                    return Err("'Issued at' claim ('iat') must be an Integer representing a time in the past.");
                }
                return Ok(app.id);
            }
            Err(error) if matches!(error.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
                return Err(
                    "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires.",
                );
            }
            Err(_) => continue,
        }
    }
    Err("A JSON web token could not be decoded")
}
