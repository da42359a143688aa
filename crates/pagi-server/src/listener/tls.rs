//! TLS on rustls: the certificate and key from PEM files (re-read on
//! [`Acceptor::reload`] without dropping connections), optional or required
//! client certificates, and what the scope's `tls` extension reports
//! ([`TlsInfo`], as `Spec-Tls.pod` defines it).

use std::fmt;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;

use super::Io;
use crate::config::{ClientCertMode, TlsConfig};
use crate::Error;

#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
compile_error!("pagi-server needs a TLS crypto provider: enable feature `aws-lc-rs` or `ring`");

/// The crypto provider: aws-lc-rs unless only `ring` is enabled.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    return Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    return Arc::new(rustls::crypto::ring::default_provider());
}

/// Accepts TLS connections with the current certificate.
#[derive(Clone)]
pub(crate) struct Acceptor {
    files: TlsConfig,
    /// Offer `h2` by ALPN (before `http/1.1`).
    http2: bool,
    current: Arc<RwLock<Arc<Loaded>>>,
}

/// One load of the files: what handshakes use until the next reload.
struct Loaded {
    config: Arc<ServerConfig>,
    /// The server certificate as PEM, for `tls.server_cert` (shared by every
    /// connection).
    server_pem: Arc<str>,
    /// With optional client certificates: the real verifier, run after the
    /// handshake to fill `tls.client_cert_error`.
    verifier: Option<Arc<dyn ClientCertVerifier>>,
}

impl Acceptor {
    /// Load the certificate, key and client CA named by `files`.
    pub(crate) fn new(files: &TlsConfig, http2: bool) -> Result<Acceptor, Error> {
        let loaded = load(files, http2)?;
        Ok(Acceptor {
            files: files.clone(),
            http2,
            current: Arc::new(RwLock::new(Arc::new(loaded))),
        })
    }

    /// Read the files again: new handshakes use what they hold now,
    /// connections already open keep theirs. On an error the old
    /// certificate stays in use.
    pub(crate) fn reload(&self) -> Result<(), Error> {
        let loaded = load(&self.files, self.http2)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded);
        Ok(())
    }

    /// Run the handshake on `io`, bounded by `timeout`. The error says why
    /// it failed (logged at debug: a failed handshake is the client's
    /// business, never the app's).
    pub(crate) async fn accept<I>(
        &self,
        io: I,
        timeout: Option<Duration>,
    ) -> Result<(TlsStream<I>, TlsInfo), String>
    where
        I: AsyncRead + AsyncWrite + Unpin,
    {
        let loaded = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let acceptor = tokio_rustls::TlsAcceptor::from(loaded.config.clone());
        // Boxed: the handshake's state is large and only needed here; the
        // connection task would otherwise keep room for it all its life.
        let stream = match super::within(timeout, Box::pin(acceptor.accept(io))).await {
            Some(Ok(s)) => s,
            Some(Err(e)) => return Err(format!("TLS handshake failed: {e}")),
            None => return Err(format!("TLS handshake timed out after {timeout:?}")),
        };
        let info = TlsInfo::of(stream.get_ref().1, &loaded);
        Ok((stream, info))
    }
}

impl fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acceptor")
            .field("cert", &self.files.cert)
            .finish_non_exhaustive()
    }
}

fn tls_error(path: &Path, what: impl fmt::Display) -> Error {
    Error::tls(format!("{}: {what}", path.display()))
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_error(path, pem_error(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(path, pem_error(e)))?;
    if certs.is_empty() {
        return Err(tls_error(
            path,
            "no certificate (BEGIN CERTIFICATE) in the file",
        ));
    }
    Ok(certs)
}

fn pem_error(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(e) => format!("cannot read: {e}"),
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM item of the expected kind".into(),
        other => format!("not a valid PEM file: {other}"),
    }
}

fn load(files: &TlsConfig, http2: bool) -> Result<Loaded, Error> {
    let provider = provider();
    let certs = load_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => tls_error(
            &files.key,
            "no private key (BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY) in the file",
        ),
        e => tls_error(&files.key, pem_error(e)),
    })?;
    let server_pem: Arc<str> = to_pem(&certs[0]).into();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .map_err(|e| Error::tls(format!("TLS setup: {e}")))?;
    let (builder, verifier) = match files.client_cert {
        ClientCertMode::None => (builder.with_no_client_auth(), None),
        mode => {
            let ca = files.client_ca.as_deref().ok_or_else(|| {
                Error::tls("client certificates need a CA file (--ssl-ca)".to_owned())
            })?;
            let mut roots = RootCertStore::empty();
            for c in load_certs(ca)? {
                roots.add(c).map_err(|e| tls_error(ca, e))?;
            }
            let roots = Arc::new(roots);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            match mode {
                ClientCertMode::Required => {
                    let v = verifier.build().map_err(|e| tls_error(ca, e))?;
                    (builder.with_client_cert_verifier(v), None)
                }
                _ => {
                    let v = verifier
                        .allow_unauthenticated()
                        .build()
                        .map_err(|e| tls_error(ca, e))?;
                    let reporting = Arc::new(Reporting(v.clone()));
                    (builder.with_client_cert_verifier(reporting), Some(v))
                }
            }
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => tls_error(
            &files.key,
            format!(
                "the key does not match the certificate {}",
                files.cert.display()
            ),
        ),
        e => tls_error(&files.cert, e),
    })?;
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Loaded {
        config: Arc::new(config),
        server_pem,
        verifier,
    })
}

/// Optional client certificates: accept any certificate the client proves
/// it holds the key of (the signature checks still run), and report the
/// chain's verification after the handshake (`client_cert_error`) instead
/// of refusing the connection.
#[derive(Debug)]
struct Reporting(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for Reporting {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// What the scope's `tls` extension reports about one connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TlsInfo {
    pub(crate) server_cert: Option<Arc<str>>,
    /// PEM, leaf first.
    pub(crate) client_cert_chain: Vec<String>,
    /// RFC 4514.
    pub(crate) client_cert_name: Option<String>,
    pub(crate) client_cert_error: Option<String>,
    pub(crate) tls_version: Option<u16>,
    /// The client chose HTTP/2 by ALPN.
    pub(crate) h2: bool,
    pub(crate) cipher_suite: Option<u16>,
}

impl TlsInfo {
    fn of(conn: &rustls::ServerConnection, loaded: &Loaded) -> TlsInfo {
        let chain = conn.peer_certificates().unwrap_or(&[]);
        let client_cert_error = match (&loaded.verifier, chain.split_first()) {
            (Some(v), Some((leaf, rest))) => v
                .verify_client_cert(leaf, rest, UnixTime::now())
                .err()
                .map(|e| e.to_string()),
            _ => None,
        };
        TlsInfo {
            server_cert: Some(loaded.server_pem.clone()),
            client_cert_chain: chain.iter().map(to_pem).collect(),
            client_cert_name: chain.first().and_then(|c| subject_rfc4514(c)),
            client_cert_error,
            tls_version: conn.protocol_version().map(u16::from),
            h2: conn.alpn_protocol() == Some(b"h2"),
            cipher_suite: conn.negotiated_cipher_suite().map(|s| u16::from(s.suite())),
        }
    }
}

impl TlsInfo {
    /// The scope's `tls` extension, as `Spec-Tls.pod` lays it out.
    /// The scope's `tls` extension (the ALPN choice is not part of it).
    pub(crate) fn into_extension(self) -> pagi::ExtensionData {
        use pagi::Value;
        let opt_str = |s: Option<String>| s.map_or(Value::Null, Value::Str);
        let opt_int = |n: Option<u16>| n.map_or(Value::Null, |n| Value::Int(i64::from(n)));
        [
            (
                "server_cert",
                opt_str(self.server_cert.map(|s| s.to_string())),
            ),
            (
                "client_cert_chain",
                Value::List(self.client_cert_chain.into_iter().map(Value::Str).collect()),
            ),
            ("client_cert_name", opt_str(self.client_cert_name)),
            ("client_cert_error", opt_str(self.client_cert_error)),
            ("tls_version", opt_int(self.tls_version)),
            ("cipher_suite", opt_int(self.cipher_suite)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

fn to_pem(der: &CertificateDer<'_>) -> String {
    pem_rfc7468::encode_string("CERTIFICATE", pem_rfc7468::LineEnding::LF, der).unwrap_or_default()
}

/// A certificate's subject as an RFC 4514 string (most specific RDN first).
fn subject_rfc4514(der: &CertificateDer<'_>) -> Option<String> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    Some(cert.tbs_certificate().subject().to_string())
}

/// TLS streams cannot tell readiness from the socket (rustls may hold
/// decrypted bytes), so they use the default, "always ready".
impl<I: Io> Io for TlsStream<I> {}
