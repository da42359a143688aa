//! TLS for the benchmarks. `pagi-bench gencert DIR` writes `ca.pem`, `server.pem` and
//! `server.key` (for `localhost` and `127.0.0.1`); servers load the latter two, clients trust
//! `ca.pem`.

use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::either::Either;

/// A stream that is plain or TLS (client or server side).
pub type MaybeTls<S, T> = Either<S, T>;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Write a CA and a server certificate signed by it into `dir`.
pub fn gencert(dir: &Path) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("gencert: {e}");
    std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
    let ca_key = KeyPair::generate().map_err(|e| err(&e))?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(|e| err(&e))?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "pagi-bench CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_pem = ca.self_signed(&ca_key).map_err(|e| err(&e))?.pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().map_err(|e| err(&e))?;
    let mut p = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .map_err(|e| err(&e))?;
    p.distinguished_name.push(DnType::CommonName, "localhost");
    let cert = p.signed_by(&key, &issuer).map_err(|e| err(&e))?;
    for (name, body) in [
        ("ca.pem", ca_pem),
        ("server.pem", cert.pem()),
        ("server.key", key.serialize_pem()),
    ] {
        std::fs::write(dir.join(name), body).map_err(|e| err(&e))?;
    }
    Ok(())
}

/// A server acceptor for `server.pem`/`server.key` in `dir` (ALPN http/1.1).
pub fn acceptor(dir: &Path) -> Result<tokio_rustls::TlsAcceptor, String> {
    let certs = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("server.pem: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key"))
        .map_err(|e| format!("server.key: {e}"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// A client connector trusting only `ca` (a PEM file).
pub fn connector(ca: &Path) -> Result<tokio_rustls::TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    let cert = CertificateDer::from_pem_file(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
    roots.add(cert).map_err(|e| e.to_string())?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Connect TLS over `io` to `localhost` when `connector` is given; otherwise pass `io` on.
pub async fn client<S: AsyncRead + AsyncWrite + Unpin>(
    connector: Option<&tokio_rustls::TlsConnector>,
    io: S,
) -> std::io::Result<MaybeTls<S, tokio_rustls::client::TlsStream<S>>> {
    match connector {
        None => Ok(Either::Left(io)),
        Some(c) => {
            let name = ServerName::try_from("localhost").expect("a valid name");
            Ok(Either::Right(c.connect(name, io).await?))
        }
    }
}

/// Accept TLS over `io` when `acceptor` is given; otherwise pass `io` on.
pub async fn server<S: AsyncRead + AsyncWrite + Unpin>(
    acceptor: Option<&tokio_rustls::TlsAcceptor>,
    io: S,
) -> std::io::Result<MaybeTls<S, tokio_rustls::server::TlsStream<S>>> {
    match acceptor {
        None => Ok(Either::Left(io)),
        Some(a) => Ok(Either::Right(a.accept(io).await?)),
    }
}
