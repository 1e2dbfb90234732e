//! Who is calling: a token with its scopes, or a GitHub App by its JWT.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
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

/// How far GitHub lets an App's clock be off, in seconds.
const LEEWAY: i64 = 60;

/// The App whose key signed `token` (RS256), checking `iss` and GitHub's ten-minute lifetime.
pub(crate) fn verify_jwt(state: &State, token: &str) -> Result<u64, &'static str> {
    const UNDECODABLE: &str = "A JSON web token could not be decoded";
    let (message, signature) = token.rsplit_once('.').ok_or(UNDECODABLE)?;
    let (header, claims) = message.split_once('.').ok_or(UNDECODABLE)?;
    let part = |text: &str| URL_SAFE_NO_PAD.decode(text).ok();
    let header: Value = part(header).and_then(|json| serde_json::from_slice(&json).ok()).ok_or(UNDECODABLE)?;
    if header["alg"] != "RS256" {
        return Err(UNDECODABLE);
    }
    let claims: Claims = part(claims).and_then(|json| serde_json::from_slice(&json).ok()).ok_or(UNDECODABLE)?;
    let signature = part(signature).ok_or(UNDECODABLE)?;
    let app = state
        .apps
        .values()
        .find(|app| {
            let key = ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, &app.key);
            key.verify(message.as_bytes(), &signature).is_ok()
        })
        .ok_or(UNDECODABLE)?;
    let now = Utc::now().timestamp();
    if claims.exp < now - LEEWAY {
        return Err(
            "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires.",
        );
    }
    // GitHub takes the App id as a number or a string.
    let iss = match &claims.iss {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    };
    if iss != Some(app.id) {
        return Err("'Issuer' claim ('iss') must be an Integer");
    }
    if claims.exp > now + 600 + LEEWAY || claims.exp - claims.iat > 600 + LEEWAY {
        return Err(
            "'Expiration time' claim ('exp') is too far in the future. Make sure the 'exp' claim is less than 10 minutes from now.",
        );
    }
    if claims.iat > now + LEEWAY {
        return Err("'Issued at' claim ('iat') must be an Integer representing a time in the past.");
    }
    Ok(app.id)
}

/// The RSA public key in `pem`, as ring reads it (an `RSAPublicKey`): from `BEGIN PUBLIC KEY`
/// (what `openssl rsa -pubout` writes, the key wrapped in a SubjectPublicKeyInfo) or `BEGIN RSA PUBLIC KEY`.
pub(crate) fn rsa_public_key(pem: &str) -> Option<Vec<u8>> {
    let base64: String = pem.lines().filter(|line| !line.starts_with("-----")).map(str::trim).collect();
    let der = STANDARD.decode(base64).ok()?;
    if pem.contains("BEGIN RSA PUBLIC KEY") {
        return Some(der);
    }
    // SubjectPublicKeyInfo ::= SEQUENCE { algorithm SEQUENCE, subjectPublicKey BIT STRING }
    let (info, _) = der_element(&der, 0x30)?;
    let (_algorithm, rest) = der_element(info, 0x30)?;
    let (bits, _) = der_element(rest, 0x03)?;
    // A key is whole bytes: no unused bits.
    bits.strip_prefix(&[0]).map(<[u8]>::to_vec)
}

/// The contents of the DER element tagged `tag` at the start of `input`, and what follows it.
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    if found != tag {
        return None;
    }
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count > 4 || rest.len() < count {
            return None;
        }
        let (len, rest) = rest.split_at(count);
        (len.iter().fold(0, |len, byte| len << 8 | usize::from(*byte)), rest)
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_key_read_from_either_pem_is_the_private_keys_half() {
        let private = include_str!("../../tests/keys/app.pem");
        let der = STANDARD.decode(private.lines().filter(|line| !line.starts_with("-----")).collect::<String>());
        let half = ring::signature::RsaKeyPair::from_der(&der.unwrap()).unwrap().public().as_ref().to_vec();
        assert_eq!(rsa_public_key(include_str!("../../tests/keys/app.pub.pem")).as_deref(), Some(&half[..]));
        let pkcs1 =
            format!("-----BEGIN RSA PUBLIC KEY-----\n{}\n-----END RSA PUBLIC KEY-----\n", STANDARD.encode(&half));
        assert_eq!(rsa_public_key(&pkcs1), Some(half));
        assert_eq!(rsa_public_key("-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n"), None);
    }
}
