//! Loads the TLS certificate chain and key for serving HTTPS with rustls and ring.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::Error;

/// Builds a TLS acceptor from a PEM certificate chain and a PEM private key.
///
/// The ring provider is named explicitly rather than taken as the process
/// default, which would be ambiguous if another crate in the build enables aws-lc.
pub fn load_tls(cert: &Path, key: &Path) -> Result<TlsAcceptor, Error> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .and_then(|certs| if certs.is_empty() { Err(pem::Error::NoItemsFound) } else { Ok(certs) })
        .map_err(|source| Error::TlsFile { what: "certificate", path: cert.to_owned(), source })?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|source| Error::TlsFile {
        what: "private key",
        path: key.to_owned(),
        source,
    })?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key))
        .map_err(Error::TlsConfig)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
