//! Mozilla's CA roots built into the binary, so that a container with no OS trust store
//! (the static `Dockerfile.hookfwd` image) still verifies GitHub's certificate.

/// The built-in roots, for `reqwest::ClientBuilder::tls_certs_merge`: they are added to the
/// OS store where there is one (an enterprise CA stays trusted), and stand alone where there is none.
pub fn builtin_roots() -> Vec<reqwest::Certificate> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter_map(|der| reqwest::Certificate::from_der(der.as_ref()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_built_in_root_parses() {
        assert_eq!(super::builtin_roots().len(), webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
        assert!(super::builtin_roots().len() > 100);
    }
}
