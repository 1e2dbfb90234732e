//! Webhook signatures: the `X-Hub-Signature-256` and `X-Hub-Signature` headers.

use hmac::{Hmac, Mac};

use crate::Secret;

/// `sha256=<hex>`: the HMAC-SHA256 of `body` keyed with `secret`.
pub fn sha256(secret: &Secret, body: &[u8]) -> String {
    // new_from_slice accepts keys of any length for HMAC.
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// `sha1=<hex>`: the legacy HMAC-SHA1 header GitHub still sends.
pub fn sha1(secret: &Secret, body: &[u8]) -> String {
    // new_from_slice accepts keys of any length for HMAC.
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` (`sha256=<hex>`) is the signature of `body` with `secret`,
/// compared in constant time.
pub fn verify_sha256(secret: &Secret, body: &[u8], header: &str) -> bool {
    let Some(given) = header.strip_prefix("sha256=").and_then(|hex| hex::decode(hex).ok()) else {
        return false;
    };
    // new_from_slice accepts keys of any length for HMAC.
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's published test vector, from "Validating webhook deliveries".
    #[test]
    fn matches_githubs_published_vector() {
        let secret = Secret::new("It's a Secret to Everybody");
        let body = b"Hello, World!";
        let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sha256(&secret, body), expected);
        assert!(verify_sha256(&secret, body, expected));
        assert!(!verify_sha256(&Secret::new("wrong"), body, expected));
        assert!(!verify_sha256(&secret, body, "sha256=zz"));
    }

    /// GitHub publishes no SHA-1 vector; this is the HMAC-SHA1 of the same inputs, computed independently
    /// (`python3`: `hmac.new(b"It's a Secret to Everybody", b"Hello, World!", "sha1").hexdigest()`).
    #[test]
    fn sha1_is_the_hmac_sha1_of_githubs_vector() {
        let secret = Secret::new("It's a Secret to Everybody");
        assert_eq!(sha1(&secret, b"Hello, World!"), "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59");
        assert_ne!(sha1(&Secret::new("wrong"), b"Hello, World!"), sha1(&secret, b"Hello, World!"));
    }
}
