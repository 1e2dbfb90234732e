//! Stream tokens: each opens every path or one path prefix, kept only as a SHA-256 digest, checked in
//! constant time.
//!
//! Comparing digests rather than the tokens makes every comparison the same
//! length, so neither a token's content nor its length leaks through timing;
//! it also lets a host's configuration hold `sha256:HEX` instead of the token.

use hyper::header::HeaderValue;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// The stream tokens a subscriber may present, each for every path or for one path prefix.
/// Several may open the same paths, so that one can be rotated.
#[derive(Clone)]
pub struct Tokens(Vec<Token>);

#[derive(Clone)]
struct Token {
    /// The paths it opens: this one and those below it; empty for every path.
    scope: String,
    /// The token's SHA-256.
    digest: [u8; 32],
}

/// Why a stream token list was refused. Entries are named by position, never by content: any part of
/// a malformed entry may be a token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Nothing but commas and blanks.
    #[error("the stream token list is empty")]
    Empty,
    /// `=TOKEN`.
    #[error("entry {0} has an empty path before '='; write /PATH=TOKEN, or the token alone for every path")]
    EmptyPath(usize),
    /// `alice=TOKEN`, or an unscoped token holding `=`.
    #[error("entry {0} has a path that does not start with '/'; write /PATH=TOKEN, or /=TOKEN for every path")]
    RelativePath(usize),
    /// `/alice=` or `/alice=sha256:`.
    #[error("entry {0} has no token")]
    NoToken(usize),
    /// `sha256:` followed by anything but 64 hex digits.
    #[error("entry {0} has a sha256: value that is not 64 hexadecimal digits")]
    BadDigest(usize),
}

impl Tokens {
    /// Parses a comma-separated list of `TOKEN`, `/PATH=TOKEN`, `sha256:HEX` or `/PATH=sha256:HEX`;
    /// blanks around entries and empty entries are ignored.
    pub fn parse(list: &str) -> Result<Tokens, TokenError> {
        let mut tokens = Vec::new();
        for (index, entry) in list.split(',').map(str::trim).enumerate() {
            if !entry.is_empty() {
                tokens.push(Token::parse(entry, index + 1)?);
            }
        }
        if tokens.is_empty() {
            return Err(TokenError::Empty);
        }
        Ok(Tokens(tokens))
    }

    /// Whether an `Authorization` header carries, as `Bearer`, a token that opens `path`.
    pub(crate) fn accepts(&self, header: Option<&HeaderValue>, path: &str) -> bool {
        let Some(presented) = header.and_then(|value| bearer(value.as_bytes())) else { return false };
        let presented = digest(presented);
        // Fold over every token without stopping early, so timing says nothing about which matched.
        // Scopes are compared plainly: the path is the subscriber's own, and scopes are not secret.
        let found = self.0.iter().fold(Choice::from(0), |found, token| {
            found | (token.digest.ct_eq(&presented) & Choice::from(u8::from(token.opens(path))))
        });
        found.into()
    }

    /// A warning when some tokens open every path and others only some: the scoped paths are then
    /// readable by more than their own token's holders.
    pub fn mixed_scopes(&self) -> Option<String> {
        let every = self.0.iter().any(|token| token.scope.is_empty());
        let mut scoped: Vec<&str> =
            self.0.iter().filter(|token| !token.scope.is_empty()).map(|token| token.scope.as_str()).collect();
        scoped.sort_unstable();
        scoped.dedup();
        (every && !scoped.is_empty()).then(|| {
            format!(
                "stream tokens for every path are mixed with tokens scoped to {}: whoever holds one for every \
                 path reads those paths' deliveries too; give each token a path (/PATH=TOKEN) unless that is meant",
                scoped.join(", ")
            )
        })
    }
}

impl Token {
    /// Parses one entry; `position` (from 1) names it in errors.
    fn parse(entry: &str, position: usize) -> Result<Token, TokenError> {
        let (scope, token) = match entry.split_once('=') {
            None => ("", entry),
            Some(("", _)) => return Err(TokenError::EmptyPath(position)),
            Some((path, _)) if !path.starts_with('/') => return Err(TokenError::RelativePath(position)),
            // `/alice/` is `/alice`, and `/` every path.
            Some((path, token)) => (path.trim_end().trim_end_matches('/'), token.trim()),
        };
        let digest = match token.strip_prefix("sha256:") {
            Some("") => return Err(TokenError::NoToken(position)),
            Some(hex) => parse_hex(hex).ok_or(TokenError::BadDigest(position))?,
            None if token.is_empty() => return Err(TokenError::NoToken(position)),
            None => digest(token),
        };
        Ok(Token { scope: scope.to_owned(), digest })
    }

    /// Whether it opens `path`: its scope itself, or below it on a segment boundary (`/alice` opens
    /// `/alice/x`, not `/alicex`).
    fn opens(&self, path: &str) -> bool {
        path.strip_prefix(self.scope.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
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

/// 64 hex digits, either case, as 32 bytes.
fn parse_hex(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let nibble = |digit: u8| char::from(digit).to_digit(16);
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = u8::try_from((nibble(pair[0])? << 4) | nibble(pair[1])?).ok()?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(value: &str) -> HeaderValue {
        HeaderValue::from_str(value).unwrap()
    }

    fn opens(tokens: &Tokens, token: &str, path: &str) -> bool {
        tokens.accepts(Some(&header(&format!("Bearer {token}"))), path)
    }

    #[test]
    fn accepts_each_listed_token_and_nothing_else() {
        let tokens = Tokens::parse(" old-token , new-token,").unwrap();
        assert!(tokens.accepts(Some(&header("Bearer old-token")), "/a"));
        assert!(tokens.accepts(Some(&header("bearer new-token")), "/a"));
        assert!(!tokens.accepts(Some(&header("Bearer new-toke")), "/a"));
        assert!(!tokens.accepts(Some(&header("Bearer new-token2")), "/a"));
        assert!(!tokens.accepts(Some(&header("Basic new-token")), "/a"));
        assert!(!tokens.accepts(Some(&header("Bearer ")), "/a"));
        assert!(!tokens.accepts(None, "/a"));
    }

    #[test]
    fn a_scoped_token_opens_its_path_and_below_on_segment_boundaries_only() {
        let tokens = Tokens::parse("/alice=a-token, /team/bob/=b-token, /team/bob=b-rotated, /=any=thing").unwrap();
        for path in ["/alice", "/alice/", "/alice/x/y"] {
            assert!(opens(&tokens, "a-token", path), "{path}");
        }
        for path in ["/alicex", "/alic", "/", "/bob", "/team/bob"] {
            assert!(!opens(&tokens, "a-token", path), "{path}");
        }
        assert!(opens(&tokens, "b-token", "/team/bob") && opens(&tokens, "b-rotated", "/team/bob/pr"));
        assert!(!opens(&tokens, "b-token", "/team") && !opens(&tokens, "b-token", "/team/bobby"));
        // `/=` is every path, and a token may hold '=' after the first.
        assert!(opens(&tokens, "any=thing", "/alice") && opens(&tokens, "any=thing", "/"));
    }

    #[test]
    fn a_sha256_entry_opens_for_the_token_whose_digest_it_is() {
        // printf %s s3cret | sha256sum
        let hex = "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0";
        let tokens = Tokens::parse(&format!("/alice=sha256:{hex}, sha256:{}", hex.to_uppercase())).unwrap();
        assert!(opens(&tokens, "s3cret", "/bob"));
        assert!(!opens(&tokens, hex, "/alice") && !opens(&tokens, &format!("sha256:{hex}"), "/alice"));
    }

    #[test]
    fn malformed_entries_are_named_by_position_only() {
        let cases = [
            (" , ", "Empty"),
            ("ok, =s3cret", "EmptyPath(2)"),
            ("alice=s3cret", "RelativePath(1)"),
            ("s3cretbase64==", "RelativePath(1)"),
            ("/alice=", "NoToken(1)"),
            ("/alice=sha256:", "NoToken(1)"),
            ("sha256:s3cret", "BadDigest(1)"),
            // 64 bytes, but not 64 hex digits.
            (",,/a=sha256:éééééééééééééééééééééééééééééééé", "BadDigest(3)"),
        ];
        for (list, expected) in cases {
            let err = Tokens::parse(list).err().unwrap_or_else(|| panic!("{list:?} was accepted"));
            assert_eq!(format!("{err:?}"), expected, "{list:?}");
            assert!(!err.to_string().contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn mixing_every_path_and_scoped_tokens_is_warned_about() {
        assert!(Tokens::parse("a, b").unwrap().mixed_scopes().is_none());
        assert!(Tokens::parse("/alice=a, /bob=b").unwrap().mixed_scopes().is_none());
        let warning = Tokens::parse("s3cret, /alice=a, /alice=a2, /bob=b").unwrap().mixed_scopes().unwrap();
        assert!(warning.contains("/alice, /bob") && !warning.contains("s3cret"), "{warning}");
    }

    #[test]
    fn debug_never_shows_a_token() {
        let shown = format!("{:?}", Tokens::parse("s3cret-value").unwrap());
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
