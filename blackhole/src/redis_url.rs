//! The `--redis` URL: checked once, and shown everywhere with its password replaced by `***`.

use std::fmt;

/// Why `--redis` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RedisUrlError {
    /// This binary was built without the `redis` feature.
    #[error("this blackhole was built without Redis support; use the ghcr.io image or build with --features redis")]
    NotBuiltIn,
    /// The URL is not one the Redis client takes; `url` is shown without its password.
    #[error("--redis {url} is not usable: {reason}")]
    Invalid {
        /// The URL, password hidden.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Where the instances' shared streams live: a `redis://` or `rediss://` URL. Its `Display` and
/// `Debug` hide the password.
#[derive(Clone)]
pub struct RedisUrl {
    /// As given, password included, for connecting only.
    url: String,
    /// With the password (or the whole user part when it has no `:`) replaced by `***`.
    shown: String,
}

impl RedisUrl {
    /// Checks a URL: a `redis://` or `rediss://` scheme, then whatever the Redis client checks.
    pub fn parse(text: &str) -> Result<RedisUrl, RedisUrlError> {
        let shown = redact(text);
        let invalid = |reason| RedisUrlError::Invalid { url: shown.clone(), reason };
        if !(text.starts_with("redis://") || text.starts_with("rediss://")) {
            return Err(invalid("give redis://[:PASSWORD@]HOST:PORT[/DB] or rediss://… for TLS"));
        }
        #[cfg(feature = "redis")]
        if redis::Client::open(text).is_err() {
            return Err(invalid("the Redis client does not accept it (host, port, database number)"));
        }
        Ok(RedisUrl { url: text.to_string(), shown })
    }

    /// The URL with its password, for the client only.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn expose(&self) -> &str {
        &self.url
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({})", self.shown)
    }
}

/// `text` with what could be a password hidden: of everything between the scheme and the last `@`,
/// only a user name before a `:` is kept (`redis://secret@host` may well mean a password).
fn redact(text: &str) -> String {
    let Some(at) = text.rfind('@') else { return text.to_string() };
    let start = text.find("://").map(|i| i + 3).filter(|start| *start <= at).unwrap_or(0);
    let shown_user = text[start..at].split_once(':').map_or("", |(user, _)| user);
    let colon = if text[start..at].contains(':') { ":" } else { "" };
    format!("{}{shown_user}{colon}***{}", &text[..start], &text[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_never_shown() {
        assert_eq!(redact("redis://:s3cret@host:6379/0"), "redis://:***@host:6379/0");
        assert_eq!(redact("rediss://default:s3cret@host:6380"), "rediss://default:***@host:6380");
        assert_eq!(redact("redis://s3cret@host"), "redis://***@host");
        assert_eq!(redact("redis://u:p@ss@host"), "redis://u:***@host");
        assert_eq!(redact("s3cret@host"), "***@host");
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
        for bad in ["http://:s3cret@host", "redis:/:s3cret@host", "s3cret@host"] {
            let error = RedisUrl::parse(bad).unwrap_err().to_string();
            assert!(!error.contains("s3cret"), "{error}");
        }
        let url = RedisUrl::parse("redis://:s3cret@127.0.0.1:1/0").unwrap();
        assert!(!format!("{url} {url:?}").contains("s3cret"));
    }
}
