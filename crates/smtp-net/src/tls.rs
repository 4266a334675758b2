//! TLS for both programs: rustls with the ring provider only, client and
//! server configurations, the self-signed certificate the sink makes when
//! it is given none, and what a finished handshake negotiated.

use std::{fmt::Write as _, io, path::Path, sync::Arc};

use tokio_rustls::rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{ring, CryptoProvider},
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName, UnixTime},
    ClientConfig, DigitallySignedStruct, HandshakeKind, RootCertStore, ServerConfig,
    SignatureScheme,
};
pub use tokio_rustls::{rustls, TlsAcceptor, TlsConnector};

/// A TLS protocol version to allow alone (`--tls-protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl TlsVersion {
    /// Parses `tls1.2` or `tls1.3` (case-insensitive).
    pub fn parse(s: &str) -> Option<TlsVersion> {
        match s.to_ascii_lowercase().as_str() {
            "tls1.2" => Some(TlsVersion::Tls12),
            "tls1.3" => Some(TlsVersion::Tls13),
            _ => None,
        }
    }
}

/// Why a TLS configuration could not be built; the texts name the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// rustls refused the configuration (a key that does not match, ...).
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// The self-signed certificate could not be made.
    #[error("self-signed certificate: {0}")]
    SelfSigned(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

static ONLY_TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
static ONLY_TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

fn versions(only: Option<TlsVersion>) -> &'static [&'static rustls::SupportedProtocolVersion] {
    match only {
        None => rustls::ALL_VERSIONS,
        Some(TlsVersion::Tls12) => ONLY_TLS12,
        Some(TlsVersion::Tls13) => ONLY_TLS13,
    }
}

/// What the client side asks of TLS.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Verify the server's chain and name (`--tls-verify`); off, any
    /// certificate is accepted (load testers meet self-signed ones).
    pub verify: bool,
    /// Trust these PEM certificates instead of the system's (`--tls-ca`).
    pub ca_file: Option<std::path::PathBuf>,
    /// Allow only this version.
    pub version: Option<TlsVersion>,
    /// Keep sessions for resumption (tickets or ids), as an MTA fleet
    /// does; off forces a full handshake each time.
    pub resume: bool,
}

/// Builds the client configuration once per run; every connection shares
/// it, and with it the resumption cache.
///
/// # Errors
/// An unreadable or empty CA file, or a configuration rustls refuses.
pub fn client_config(opts: &ClientOptions) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(opts.version))?;
    let mut config = if opts.verify {
        let mut roots = RootCertStore::empty();
        match &opts.ca_file {
            Some(path) => {
                for cert in read_certs(path)? {
                    roots.add(cert)?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for cert in found.certs {
                    // A system store may hold certificates rustls cannot
                    // use; the others still count.
                    let _ = roots.add(cert);
                }
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
            .with_no_client_auth()
    };
    if !opts.resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(config))
}

/// A server configuration and, for a generated certificate, its SHA-256
/// fingerprint (printed at start so a client can pin it).
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// The configuration, shared by every session.
    pub config: Arc<ServerConfig>,
    /// `AB:CD:…` of the generated certificate; `None` for a given one.
    pub generated_fingerprint: Option<String>,
}

/// Builds the server configuration from PEM files, or with a self-signed
/// certificate for `hostname` when none are given. Session tickets are on,
/// so clients can resume.
///
/// # Errors
/// Unreadable or mismatched files, or a certificate that cannot be made.
pub fn server_config(
    cert_and_key: Option<(&Path, &Path)>,
    hostname: &str,
) -> Result<ServerTls, TlsError> {
    let (certs, key, generated_fingerprint) = match cert_and_key {
        Some((cert, key)) => (read_certs(cert)?, read_key(key)?, None),
        None => {
            let bad = |e: rcgen::Error| TlsError::SelfSigned(e.to_string());
            // The name goes in the subject (what -v and openssl show) and in
            // the subject alternative names (what clients verify).
            let mut params =
                rcgen::CertificateParams::new(vec![hostname.to_owned()]).map_err(bad)?;
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, hostname);
            let signing_key = rcgen::KeyPair::generate().map_err(bad)?;
            let cert = params.self_signed(&signing_key).map_err(bad)?;
            let der = cert.der().clone();
            let fingerprint = sha256_fingerprint(&der);
            let key = PrivateKeyDer::try_from(signing_key.serialize_der())
                .map_err(|e| TlsError::SelfSigned(e.to_owned()))?;
            (vec![der], key, Some(fingerprint))
        }
    };
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(rustls::ALL_VERSIONS)?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.ticketer = ring::Ticketer::new()?;
    Ok(ServerTls {
        config: Arc::new(config),
        generated_fingerprint,
    })
}

/// `AB:CD:…`: the SHA-256 of a certificate, as `openssl x509 -fingerprint
/// -sha256` prints it.
pub fn sha256_fingerprint(der: &[u8]) -> String {
    let digest = ::ring::digest::digest(&::ring::digest::SHA256, der);
    let mut out = String::with_capacity(95);
    for (i, b) in digest.as_ref().iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{b:02X}");
    }
    out
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |what: String| TlsError::Pem {
        path: path.display().to_string(),
        what,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate in the file".to_owned()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Pem {
        path: path.display().to_string(),
        what: e.to_string(),
    })
}

/// The server name to send (SNI) and check: a DNS name or an IP address.
///
/// # Errors
/// A name that is neither.
pub fn server_name(name: &str) -> io::Result<ServerName<'static>> {
    ServerName::try_from(name.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// What a finished handshake negotiated, for `-v`, reports and dumps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1.3` or `TLSv1.2`.
    pub protocol: &'static str,
    /// The IANA name, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// The session was resumed (no certificate exchange).
    pub resumed: bool,
    /// The peer's certificate, DER (the server's, on a client).
    pub peer_certificate: Option<Vec<u8>>,
}

impl TlsInfo {
    /// The peer certificate's subject, as `CN=mail.example.org, O=…`.
    pub fn peer_subject(&self) -> Option<String> {
        let der = self.peer_certificate.as_deref()?;
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        Some(cert.subject().to_string())
    }
}

pub(crate) fn info_of(conn: &rustls::CommonState) -> TlsInfo {
    let protocol = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "TLS",
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();
    TlsInfo {
        protocol,
        cipher,
        resumed: conn.handshake_kind() == Some(HandshakeKind::Resumed),
        peer_certificate: conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec()),
    }
}

/// Accepts any server certificate (the default of a load tester, as of
/// swaks), while still checking the handshake's signatures.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
