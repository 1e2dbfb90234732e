//! The credentials calls are authorized with: a token as is, or a GitHub App's signer and its installation
//! token, cached until shortly before it expires. Getting that token is a call of its own, which the
//! transport makes.

use chrono::{DateTime, Utc};
use reqwest::header::HeaderValue;
use serde::Deserialize;

use crate::auth::AppSigner;
use crate::{Error, Result, Secret};

/// The credentials in a ready-to-use form.
pub(super) enum AuthState {
    /// A token sent as is.
    Token(Secret),
    /// A GitHub App: JWTs minted on demand, and a cached installation token.
    App {
        /// Mints the JWTs.
        signer: AppSigner,
        /// The installation token, once exchanged; the lock makes concurrent calls share one exchange.
        installation: tokio::sync::Mutex<Option<InstallationToken>>,
    },
}

impl AuthState {
    /// Forgets the installation token after a 401; true if there was one to forget.
    pub(super) async fn forget_installation_token(&self) -> bool {
        match self {
            AuthState::App { installation, .. } => installation.lock().await.take().is_some(),
            AuthState::Token(_) => false,
        }
    }
}

/// An installation token and when it stops working.
pub(super) struct InstallationToken {
    /// The token.
    token: Secret,
    /// When GitHub stops accepting it.
    expires_at: DateTime<Utc>,
}

/// How long before `expires_at` an installation token is replaced.
const INSTALLATION_TOKEN_MARGIN: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

impl InstallationToken {
    /// The token, unless it expires within the margin of `now` and is to be replaced.
    pub(super) fn fresh(&self, now: DateTime<Utc>) -> Option<&Secret> {
        (self.expires_at - INSTALLATION_TOKEN_MARGIN > now).then_some(&self.token)
    }

    /// The token itself.
    pub(super) fn token(&self) -> &Secret {
        &self.token
    }

    /// Reads GitHub's answer to `POST /app/installations/{id}/access_tokens` for `what` (the installation).
    pub(super) fn read(body: &[u8], what: &str) -> Result<Self> {
        /// The answer's fields; no Debug, it holds a token.
        #[derive(Deserialize)]
        struct AccessToken {
            token: String,
            expires_at: DateTime<Utc>,
        }
        // The parse error is not shown: it could quote the token.
        let access: AccessToken = serde_json::from_slice(body).map_err(|_| Error::AppCredentials {
            reason: format!("GitHub's answer with the token of {what} could not be read"),
        })?;
        Ok(Self { token: Secret::new(access.token), expires_at: access.expires_at })
    }
}

/// `Bearer <token>`, marked sensitive so that no Debug output shows it.
pub(super) fn bearer(token: &Secret) -> Result<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| Error::MalformedToken)?;
    value.set_sensitive(true);
    Ok(value)
}
