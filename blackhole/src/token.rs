//! Stream tokens: kept only as SHA-256 digests, checked in constant time.
//!
//! Comparing digests rather than the tokens makes every comparison the same
//! length, so neither a token's content nor its length leaks through timing.

use hyper::header::HeaderValue;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Error;

/// The stream tokens a subscriber may present; several at once so that one can be rotated.
#[derive(Clone)]
pub struct Tokens(Vec<[u8; 32]>);

impl Tokens {
    /// Parses a comma-separated list; blanks around and between tokens are ignored.
    pub fn parse(list: &str) -> Result<Tokens, Error> {
        let digests: Vec<[u8; 32]> =
            list.split(',').map(str::trim).filter(|token| !token.is_empty()).map(digest).collect();
        if digests.is_empty() {
            return Err(Error::NoStreamToken);
        }
        Ok(Tokens(digests))
    }

    /// Whether an `Authorization` header carries one of the tokens as `Bearer`.
    pub(crate) fn accepts(&self, header: Option<&HeaderValue>) -> bool {
        let Some(presented) = header.and_then(|value| bearer(value.as_bytes())) else { return false };
        let presented = digest(presented);
        // Fold over every token without stopping early, so timing says nothing about which matched.
        self.0.iter().fold(subtle::Choice::from(0), |found, token| found | token.ct_eq(&presented)).into()
    }
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens(*** x{})", self.0.len())
    }
}

/// The token of a `Bearer` credential; the scheme is case-insensitive (RFC 9110).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then(|| token.trim_ascii())
}

fn digest(token: impl AsRef<[u8]>) -> [u8; 32] {
    Sha256::digest(token.as_ref()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(value: &str) -> HeaderValue {
        HeaderValue::from_str(value).unwrap()
    }

    #[test]
    fn accepts_each_listed_token_and_nothing_else() {
        let tokens = Tokens::parse(" old-token , new-token,").unwrap();
        assert!(tokens.accepts(Some(&header("Bearer old-token"))));
        assert!(tokens.accepts(Some(&header("bearer new-token"))));
        assert!(!tokens.accepts(Some(&header("Bearer new-toke"))));
        assert!(!tokens.accepts(Some(&header("Bearer new-token2"))));
        assert!(!tokens.accepts(Some(&header("Basic new-token"))));
        assert!(!tokens.accepts(Some(&header("Bearer "))));
        assert!(!tokens.accepts(None));
    }

    #[test]
    fn an_empty_list_is_refused() {
        assert!(matches!(Tokens::parse(" , "), Err(Error::NoStreamToken)));
    }

    #[test]
    fn debug_never_shows_a_token() {
        let shown = format!("{:?}", Tokens::parse("s3cret-value").unwrap());
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
