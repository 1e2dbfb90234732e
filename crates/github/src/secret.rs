//! A string that must never be printed: tokens, webhook secrets, private keys.

use std::fmt;

/// A secret value. `Debug` and `Display` print `***`; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A masked form for status lines: the first four characters of a token
    /// prefix (`ghp_`), then `***`. Short secrets are fully masked.
    pub fn masked(&self) -> String {
        match self.0.split_once('_') {
            Some((prefix, _)) if prefix.len() <= 8 && self.0.len() >= 20 => format!("{prefix}_***"),
            _ => "***".to_string(),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let secret = Secret::new("ghp_abcdefghijklmnopqrstuvwxyz");
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(secret.masked(), "ghp_***");
        assert_eq!(Secret::new("hunter2").masked(), "***");
    }
}
