//! TLS for the channel: serving material from files or a generated CA, the CA published in a
//! ConfigMap for data planes to trust, and the TLS server itself (HTTP/1.1 and HTTP/2).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Field manager of the operator's server-side applies.
pub const FIELD_MANAGER: &str = "switchyard-operator";

/// Key of the CA certificate in the published ConfigMap.
pub const CA_KEY: &str = "ca.crt";

/// TLS problems.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// PEM text without the expected certificate or key.
    #[error("{0}")]
    Pem(String),
    /// Certificate generation failed.
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the material.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A serving certificate chain and key, and the CA that signed it when known.
#[derive(Clone)]
pub struct TlsMaterial {
    cert_chain_pem: String,
    key_pem: String,
    ca_pem: Option<String>,
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("cert_chain_pem", &self.cert_chain_pem)
            .field("key_pem", &"<redacted>")
            .field("ca_pem", &self.ca_pem)
            .finish()
    }
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Io {
        path: path.to_owned(),
        source,
    })
}

impl TlsMaterial {
    /// Reads a PEM certificate chain (leaf first) and its PEM private key, e.g. from a
    /// cert-manager Secret mounted as files.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        Self::from_pem(read(cert)?, read(key)?)
            .map_err(|e| TlsError::Pem(format!("{} / {}: {e}", cert.display(), key.display())))
    }

    /// From PEM text (checked now, so a bad pair fails at startup).
    pub fn from_pem(cert_chain_pem: String, key_pem: String) -> Result<Self, TlsError> {
        let m = Self {
            cert_chain_pem,
            key_pem,
            ca_pem: None,
        };
        m.server_config()?;
        Ok(m)
    }

    /// Sets the CA certificate (PEM) data planes should trust, e.g. `ca.crt` of the Secret.
    pub fn with_ca_pem(mut self, ca_pem: String) -> Self {
        self.ca_pem = Some(ca_pem);
        self
    }

    /// Generates a CA and a serving certificate for `names` (DNS names and IP addresses, e.g.
    /// `switchyard-operator.switchyard-system.svc`, `127.0.0.1`), both ECDSA P-256, valid from
    /// yesterday for ten years.
    pub fn self_signed(names: &[String]) -> Result<Self, TlsError> {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair, KeyUsagePurpose,
        };
        if names.is_empty() {
            return Err(TlsError::Pem(
                "a serving certificate needs at least one name".into(),
            ));
        }
        let today = jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date();
        let from = today.yesterday().unwrap_or(today);
        let until = from.saturating_add(jiff::Span::new().years(10));
        let (not_before, not_after) = (
            rcgen::date_time_ymd(
                i32::from(from.year()),
                from.month().unsigned_abs(),
                from.day().unsigned_abs(),
            ),
            rcgen::date_time_ymd(
                i32::from(until.year()),
                until.month().unsigned_abs(),
                until.day().unsigned_abs(),
            ),
        );

        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Switchyard operator channel CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        ca_params.not_before = not_before;
        ca_params.not_after = not_after;
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

        let mut params = CertificateParams::new(names.to_vec())?;
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].as_str());
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca)?;
        Ok(Self {
            cert_chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            ca_pem: Some(ca.pem()),
        })
    }

    /// The CA certificate (PEM) data planes should trust, when known (always for
    /// [`TlsMaterial::self_signed`]).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The serving certificate chain (PEM).
    pub fn cert_chain_pem(&self) -> &str {
        &self.cert_chain_pem
    }

    /// The private key (PEM), e.g. to keep a generated CA's serving pair in a Secret. Never log
    /// it.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A rustls server configuration (ring provider; ALPN `h2`, `http/1.1`).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let certs = CertificateDer::pem_slice_iter(self.cert_chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Pem(format!("certificate chain: {e}")))?;
        if certs.is_empty() {
            return Err(TlsError::Pem("no certificate in the chain".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| TlsError::Pem(format!("private key: {e}")))?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Publishes the CA for data planes: server-side applies ConfigMap `namespace/name` with key
/// `ca.crt` (field manager `switchyard-operator`, forced). Data planes mount it and pass
/// `--operator-ca-file`.
pub async fn publish_ca(
    client: kube::Client,
    namespace: &str,
    name: &str,
    ca_pem: &str,
) -> Result<(), kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    let cm = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER},
        },
        "data": {CA_KEY: ca_pem},
    });
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&cm),
    )
    .await?;
    Ok(())
}

/// A running channel server (see [`serve_tls`]): stop it with `shutdown(grace)`, which asks
/// open connections to finish (HTTP/2 GOAWAY, HTTP/1.1 close after the current response) and
/// after `grace` closes what is still open (snapshot streams never finish by themselves; data
/// planes reconnect elsewhere or later).
pub type ChannelServer = switchyard_runtime::serve::Server;

/// Serves `router` over TLS on `listener` (HTTP/1.1 and HTTP/2 by ALPN) until
/// `ChannelServer::shutdown`. Each request carries its peer as a
/// [`super::server::RemoteAddr`] extension.
pub fn serve_tls(
    listener: TcpListener,
    router: Router,
    material: &TlsMaterial,
) -> Result<ChannelServer, TlsError> {
    let acceptor = TlsAcceptor::from(material.server_config()?);
    let options = switchyard_runtime::serve::Options {
        name: "tls",
        tls: Some(acceptor),
        ..Default::default()
    };
    // No log here: this serves the data-plane channel and the REST facade alike; each caller
    // says what it listens for.
    switchyard_runtime::serve::serve(listener, router, options).map_err(|source| TlsError::Io {
        path: PathBuf::from("<listener>"),
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[tokio::test]
    async fn serving_a_router_does_not_claim_to_be_the_data_plane_channel() {
        // serve_tls also serves the REST facade: naming the listener is the caller's job.
        let captured = switchyard_runtime::telemetry::Captured::default();
        let _guard = tracing::subscriber::set_default(captured.subscriber(tracing::Level::INFO));
        let _ = rustls::crypto::ring::default_provider().install_default();
        let material = TlsMaterial::self_signed(&["localhost".to_owned()]).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = serve_tls(listener, Router::new(), &material).unwrap();
        tracing::info!("marker");
        let text = captured.text();
        assert!(text.contains("marker"), "the capture works: {text}");
        assert!(!text.contains("data-plane channel"), "{text}");
        drop(server);
    }
}
