//! How calls are authorized: a token as is, or a GitHub App's JWT and its installation token, cached until
//! shortly before it expires.

use chrono::{DateTime, Utc};
use reqwest::Method;
use reqwest::header::HeaderValue;
use serde::Deserialize;
use url::Url;

use super::transport::{Call, bearer};
use super::{Client, is_app_path};
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

/// An installation token and when it stops working.
pub(super) struct InstallationToken {
    /// The token.
    token: Secret,
    /// When GitHub stops accepting it.
    expires_at: DateTime<Utc>,
}

/// How long before `expires_at` an installation token is replaced.
const INSTALLATION_TOKEN_MARGIN: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

impl Client {
    /// The `Authorization` header for `url`: the token, the App's JWT, or an installation token.
    pub(super) async fn authorization(&self, url: &Url) -> Result<HeaderValue> {
        let token = match &self.inner.auth {
            AuthState::Token(token) => token.clone(),
            AuthState::App { signer, .. } if is_app_path(self.api_path(url)) => signer.jwt(Utc::now())?,
            AuthState::App { signer, installation } => self.installation_token(signer, installation).await?,
        };
        bearer(&token)
    }

    /// The cached installation token, exchanged anew when it is about to expire.
    async fn installation_token(
        &self,
        signer: &AppSigner,
        installation: &tokio::sync::Mutex<Option<InstallationToken>>,
    ) -> Result<Secret> {
        let mut cached = installation.lock().await;
        if let Some(current) =
            cached.as_ref().filter(|current| current.expires_at - INSTALLATION_TOKEN_MARGIN > Utc::now())
        {
            return Ok(current.token.clone());
        }
        let app = signer.app_id;
        let Some(id) = signer.installation_id else {
            return Err(Error::AppCredentials {
                reason: format!(
                    "App {app} needs an installation id to act on repositories and organizations; give the id of its installation"
                ),
            });
        };
        let what = format!("installation {id} of App {app}");
        let mut call = Call::new(Method::POST, self.url(&format!("/app/installations/{id}/access_tokens"))?, &what);
        // Minting a second token is harmless.
        call.idempotent = true;
        let reply = self.execute(&call).await.map_err(|error| match error {
            Error::NotFound { .. } => {
                Error::AppCredentials { reason: format!("{what} was not found; check the installation id") }
            }
            other => other,
        })?;
        /// `POST /app/installations/{id}/access_tokens`'s answer; no Debug, it holds a token.
        #[derive(Deserialize)]
        struct AccessToken {
            token: String,
            expires_at: DateTime<Utc>,
        }
        // The parse error is not shown: it could quote the token.
        let access: AccessToken = serde_json::from_slice(&reply.body).map_err(|_| Error::AppCredentials {
            reason: format!("GitHub's answer with the token of {what} could not be read"),
        })?;
        let token = Secret::new(access.token);
        *cached = Some(InstallationToken { token: token.clone(), expires_at: access.expires_at });
        Ok(token)
    }

    /// Forgets the installation token after a 401; true if there was one to forget.
    pub(super) async fn drop_installation_token(&self) -> bool {
        match &self.inner.auth {
            AuthState::App { installation, .. } => installation.lock().await.take().is_some(),
            AuthState::Token(_) => false,
        }
    }
}
