//! Where the token comes from: environment, the GitHub CLI, or a GitHub App.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use serde::Serialize;

use crate::{Error, Result, Secret};

/// How the client authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    /// A personal, fine-grained, OAuth or installation token.
    Token(Secret),
    /// A GitHub App: a JWT for `/app/*`, an installation token for the rest.
    App(AppCredentials),
}

/// A GitHub App's identity.
#[derive(Debug, Clone)]
pub struct AppCredentials {
    /// The App id.
    pub app_id: u64,
    /// The private key, PEM.
    pub private_key: Secret,
    /// The installation to act as on repositories and organizations.
    pub installation_id: Option<u64>,
}

/// Where the credentials were found, for the Ready line and `doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// An environment variable, such as `GITHUB_TOKEN`.
    Env(&'static str),
    /// `gh auth token`.
    GhCli,
    /// A GitHub App private key file.
    App(PathBuf),
}

/// Credentials and where they came from.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// How to authenticate.
    pub auth: Auth,
    /// Where it came from.
    pub source: CredentialSource,
}

/// The environment variables that may hold a token, in the order they are tried.
const TOKEN_VARS: [&str; 2] = ["GITHUB_TOKEN", "GH_TOKEN"];

impl Credentials {
    /// Finds credentials in order: `GITHUB_TOKEN`, `GH_TOKEN`, `gh auth token`
    /// (honouring `GH_HOST`, only when `gh` is installed), then `app`.
    /// `env` reads an environment variable, so tests need not touch the process's.
    pub fn discover(env: impl Fn(&str) -> Option<String>, app: Option<(AppCredentials, PathBuf)>) -> Result<Self> {
        for var in TOKEN_VARS {
            if let Some(token) = env(var).map(|value| value.trim().to_string()).filter(|value| !value.is_empty()) {
                return Ok(Self { auth: Auth::Token(Secret::new(token)), source: CredentialSource::Env(var) });
            }
        }
        if let Some(gh) = env("PATH").and_then(|path| find_on_path(GH, &path)) {
            let host = env("GH_HOST").filter(|host| !host.trim().is_empty());
            if let Some(token) = gh_auth_token(&gh, host.as_deref()) {
                return Ok(Self { auth: Auth::Token(token), source: CredentialSource::GhCli });
            }
        }
        if let Some((app, path)) = app {
            return Ok(Self { auth: Auth::App(app), source: CredentialSource::App(path) });
        }
        Err(Error::NoCredentials)
    }
}

/// The GitHub CLI's file name: on Windows it is `gh.exe`.
const GH: &str = if cfg!(windows) { "gh.exe" } else { "gh" };

/// The first executable file called `name` in the `PATH`-style list `path`.
fn find_on_path(name: &str, path: &str) -> Option<PathBuf> {
    std::env::split_paths(path).map(|dir| dir.join(name)).find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// Runs `gh auth token`; a failure (not logged in, unknown host) means "no token here".
/// Its output is never logged: it is the token.
fn gh_auth_token(gh: &Path, host: Option<&str>) -> Option<Secret> {
    let mut command = Command::new(gh);
    command.args(["auth", "token"]);
    if let Some(host) = host {
        command.args(["--hostname", host]);
    }
    let output = command.stdin(Stdio::null()).stderr(Stdio::null()).output().ok()?;
    if !output.status.success() {
        tracing::debug!(status = ?output.status.code(), "`gh auth token` found no token");
        return None;
    }
    let token = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (!token.is_empty()).then(|| Secret::new(token))
}

/// The claims of a GitHub App JWT.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct AppClaims {
    /// Issued at, backdated 60 s against clock drift, as GitHub recommends.
    pub(crate) iat: i64,
    /// Expiry, under GitHub's 10-minute maximum.
    pub(crate) exp: i64,
    /// The App id.
    pub(crate) iss: String,
}

impl AppClaims {
    /// The claims of a JWT minted at `now`.
    pub(crate) fn new(app_id: u64, now: DateTime<Utc>) -> Self {
        let now = now.timestamp();
        Self { iat: now - 60, exp: now + 9 * 60, iss: app_id.to_string() }
    }
}

/// A GitHub App's signing key, parsed once.
#[derive(Clone)]
pub(crate) struct AppSigner {
    /// The App id.
    pub(crate) app_id: u64,
    /// The installation to act as, if any.
    pub(crate) installation_id: Option<u64>,
    /// The parsed private key.
    key: Arc<RsaKeyPair>,
}

impl std::fmt::Debug for AppSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSigner")
            .field("app_id", &self.app_id)
            .field("installation_id", &self.installation_id)
            .finish_non_exhaustive()
    }
}

impl AppSigner {
    /// Parses the private key and checks that it can sign.
    pub(crate) fn new(app: &AppCredentials) -> Result<Self> {
        // The parser's error is not shown: it says nothing the user can act on,
        // and this way no part of the key can ever leak through it.
        let key = rsa_private_key(app.private_key.expose()).ok_or_else(|| Error::AppCredentials {
            reason: format!("the private key of App {} is not an RSA private key in PEM form", app.app_id),
        })?;
        let signer = Self { app_id: app.app_id, installation_id: app.installation_id, key: Arc::new(key) };
        signer.jwt(Utc::now())?;
        Ok(signer)
    }

    /// An RS256 JWT for `/app/*` calls, valid for nine minutes from `now`.
    pub(crate) fn jwt(&self, now: DateTime<Utc>) -> Result<Secret> {
        let claims = AppClaims::new(self.app_id, now);
        // Two integers and a string: serialising them cannot fail.
        let claims = serde_json::to_vec(&claims).expect("the claims serialise");
        let message = format!("{}.{}", URL_SAFE_NO_PAD.encode(JWT_HEADER), URL_SAFE_NO_PAD.encode(claims));
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message.as_bytes(), &mut signature).map_err(|_| {
            Error::AppCredentials { reason: format!("the private key of App {} cannot sign a JWT", self.app_id) }
        })?;
        Ok(Secret::new(format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))))
    }
}

/// The JOSE header of every App JWT: RS256 is the one algorithm GitHub accepts.
const JWT_HEADER: &[u8] = br#"{"alg":"RS256","typ":"JWT"}"#;

/// The RSA key in `pem`: PKCS#1 (`BEGIN RSA PRIVATE KEY`, what GitHub hands out) or PKCS#8.
fn rsa_private_key(pem: &str) -> Option<RsaKeyPair> {
    match PrivateKeyDer::from_pem_slice(pem.as_bytes()).ok()? {
        PrivateKeyDer::Pkcs1(key) => RsaKeyPair::from_der(key.secret_pkcs1_der()).ok(),
        PrivateKeyDer::Pkcs8(key) => RsaKeyPair::from_pkcs8(key.secret_pkcs8_der()).ok(),
        _ => None,
    }
}

/// Whether an API path is authenticated with the App's JWT rather than an installation token.
pub(crate) fn is_app_path(path: &str) -> bool {
    path == "/app" || path.starts_with("/app/")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| vars.get(name).cloned()
    }

    fn app() -> Option<(AppCredentials, PathBuf)> {
        let creds = AppCredentials { app_id: 7, private_key: Secret::new("pem"), installation_id: Some(9) };
        Some((creds, PathBuf::from("/keys/app.pem")))
    }

    fn token(credentials: &Credentials) -> &str {
        match &credentials.auth {
            Auth::Token(token) => token.expose(),
            Auth::App(_) => panic!("expected a token"),
        }
    }

    #[test]
    fn github_token_comes_first() {
        let found = Credentials::discover(env(&[("GITHUB_TOKEN", "a"), ("GH_TOKEN", "b")]), app()).unwrap();
        assert_eq!(found.source, CredentialSource::Env("GITHUB_TOKEN"));
        assert_eq!(token(&found), "a");
    }

    #[test]
    fn gh_token_is_second_and_empty_values_are_skipped() {
        let found = Credentials::discover(env(&[("GITHUB_TOKEN", " "), ("GH_TOKEN", "b\n")]), app()).unwrap();
        assert_eq!(found.source, CredentialSource::Env("GH_TOKEN"));
        assert_eq!(token(&found), "b");
    }

    #[test]
    fn app_is_used_when_no_token_and_no_gh() {
        let found = Credentials::discover(env(&[("PATH", "/nonexistent")]), app()).unwrap();
        assert_eq!(found.source, CredentialSource::App(PathBuf::from("/keys/app.pem")));
        assert!(matches!(found.auth, Auth::App(AppCredentials { app_id: 7, .. })));
    }

    #[test]
    fn nothing_found_is_no_credentials() {
        assert!(matches!(Credentials::discover(env(&[]), None), Err(Error::NoCredentials)));
    }

    #[cfg(unix)]
    fn fake_gh(script: &str) -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let gh = dir.path().join("gh");
        std::fs::write(&gh, script).unwrap();
        std::fs::set_permissions(&gh, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    #[cfg(unix)]
    #[test]
    fn gh_cli_token_is_used_before_the_app_and_honours_gh_host() {
        let dir = fake_gh("#!/bin/sh\necho \"gho_from_$4\"\n");
        let path = dir.path().to_str().unwrap();
        let found = Credentials::discover(env(&[("PATH", path), ("GH_HOST", "ghe.example")]), app()).unwrap();
        assert_eq!(found.source, CredentialSource::GhCli);
        assert_eq!(token(&found), "gho_from_ghe.example");
    }

    #[cfg(unix)]
    #[test]
    fn gh_cli_without_login_falls_through_to_the_app() {
        let dir = fake_gh("#!/bin/sh\necho 'not logged in' >&2\nexit 1\n");
        let found = Credentials::discover(env(&[("PATH", dir.path().to_str().unwrap())]), app()).unwrap();
        assert_eq!(found.source, CredentialSource::App(PathBuf::from("/keys/app.pem")));
    }

    #[test]
    fn jwt_claims_are_backdated_and_short_lived() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let claims = AppClaims::new(42, now);
        assert_eq!(claims, AppClaims { iat: 1_700_000_000 - 60, exp: 1_700_000_000 + 540, iss: "42".into() });
        assert!(claims.exp - claims.iat <= 600, "GitHub refuses JWTs valid for more than ten minutes");
    }

    #[test]
    fn a_bad_key_is_an_app_credentials_error_without_key_material() {
        let app = AppCredentials {
            app_id: 3,
            private_key: Secret::new(
                "-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END RSA PRIVATE KEY-----\n",
            ),
            installation_id: None,
        };
        let error = AppSigner::new(&app).unwrap_err();
        let text = format!("{error} {error:?}");
        assert!(matches!(error, Error::AppCredentials { .. }), "{text}");
        assert!(!text.contains("c2VjcmV0"), "{text}");
    }

    #[test]
    fn a_pkcs8_key_is_the_same_key() {
        let key = |pem: &str| rsa_private_key(pem).unwrap().public().as_ref().to_vec();
        let pkcs1 = key(include_str!("../tests/keys/app-test-key.pem"));
        assert_eq!(key(include_str!("../tests/keys/app-test-key.pkcs8.pem")), pkcs1);
    }

    #[test]
    fn signs_a_jwt_github_can_verify() {
        let app = AppCredentials {
            app_id: 42,
            private_key: Secret::new(include_str!("../tests/keys/app-test-key.pem")),
            installation_id: Some(1),
        };
        let signer = AppSigner::new(&app).unwrap();
        let jwt = signer.jwt(Utc::now()).unwrap();
        // (The stand-in GitHub verifies with the public key file: tests/client.rs.)
        let (message, signature) = jwt.expose().rsplit_once('.').unwrap();
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            signer.key.public().as_ref().to_vec(),
        );
        public.verify(message.as_bytes(), &URL_SAFE_NO_PAD.decode(signature).unwrap()).unwrap();
        let part = |n: usize| -> serde_json::Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(message.split('.').nth(n).unwrap()).unwrap()).unwrap()
        };
        assert_eq!(part(0)["alg"], "RS256");
        let claims = part(1);
        assert_eq!(claims["iss"], "42");
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 600);
    }
}
