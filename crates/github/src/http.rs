//! Every HTTP client hookfwd makes starts here: rustls on ring, the binary's one crypto backend,
//! and Mozilla's CA roots built in, so that a container with no OS trust store (the static
//! `Dockerfile.hookfwd` image) still verifies GitHub's certificate.

/// A client builder with hookfwd's TLS. reqwest is built without a crypto provider of its own
/// (its `rustls` feature would link aws-lc-rs beside ring), so this installs ring's as the
/// process default first; one installed before, by whoever, stays.
#[allow(clippy::disallowed_methods)] // the one place that may: clippy.toml
pub fn http_client() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().tls_certs_merge(builtin_roots())
}

/// The built-in roots: they are added to the OS store where there is one (an enterprise CA stays
/// trusted), and stand alone where there is none.
fn builtin_roots() -> Vec<reqwest::Certificate> {
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

    #[test]
    fn a_client_builds_with_ring_as_the_provider() {
        assert!(super::http_client().build().is_ok());
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
