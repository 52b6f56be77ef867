//! wss://: the server's TLS settings, and reloading its certificate while
//! it runs.
//!
//! The handshake runs on rustls through futures-rustls, which works on any
//! futures-io stream: one binding for every runtime. A reload swaps the
//! [`ServerConfig`] new handshakes are given; sockets already open keep the
//! session they negotiated.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

pub use futures_rustls::rustls;
use futures_rustls::rustls::ServerConfig;
use futures_rustls::rustls::pki_types::pem::PemObject;
use futures_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The TLS settings of a [`Server`](crate::Server): a certificate chain and
/// its key read from PEM files, or a rustls [`ServerConfig`] built by the
/// application.
///
/// ```no_run
/// # fn run(app: wsway::App) -> Result<(), wsway::TlsError> {
/// let tls = wsway::Tls::from_pem_files("cert.pem", "key.pem")?;
/// let server = wsway::Server::new(app).tls(tls);
/// # Ok(()) }
/// ```
///
/// A configuration made from files is re-read by
/// [`ServerHandle::reload_tls`](crate::ServerHandle::reload_tls) and on
/// SIGHUP; one given as a [`ServerConfig`] is replaced with
/// [`ServerHandle::set_tls_config`](crate::ServerHandle::set_tls_config).
pub struct Tls {
    files: Option<PemFiles>,
    config: Arc<ServerConfig>,
    /// Whether ALPN offers `h2` (the server speaks HTTP/2).
    h2: bool,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key's path is shown, never its contents.
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

#[derive(Debug, Clone)]
struct PemFiles {
    cert: PathBuf,
    key: PathBuf,
}

impl Tls {
    /// Reads a PEM certificate chain (the server's certificate first) and
    /// its PEM private key (PKCS#8, PKCS#1 or SEC1), now: a missing or bad
    /// file is an error at startup rather than at the first handshake. The
    /// server offers ALPN `http/1.1` (and `h2` first with
    /// [`Server::http2`](crate::Server::http2)).
    pub fn from_pem_files(
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Result<Tls, TlsError> {
        let files = PemFiles {
            cert: cert.into(),
            key: key.into(),
        };
        let config = files.load()?;
        Ok(Tls {
            files: Some(files),
            config,
            h2: false,
        })
    }

    /// Uses a rustls configuration as it is (its certificate resolver,
    /// client authentication, ALPN). Its crypto provider must be rustls'
    /// `ring` one or one the application installed.
    pub fn from_config(config: impl Into<Arc<ServerConfig>>) -> Tls {
        Tls {
            files: None,
            config: config.into(),
            h2: false,
        }
    }

    /// With HTTP/2 on, ALPN offers `h2` before what the configuration
    /// offered (`http/1.1` when that was nothing).
    #[cfg(feature = "http2")]
    pub(crate) fn offering_h2(mut self, on: bool) -> Tls {
        self.h2 = on;
        self.config = with_h2(self.config, on);
        self
    }
}

/// `config`, offering ALPN `h2` first when `h2` is on.
fn with_h2(config: Arc<ServerConfig>, h2: bool) -> Arc<ServerConfig> {
    if !h2 || config.alpn_protocols.iter().any(|p| p == b"h2") {
        return config;
    }
    let mut config = Arc::unwrap_or_clone(config);
    if config.alpn_protocols.is_empty() {
        config.alpn_protocols.push(b"http/1.1".to_vec());
    }
    config.alpn_protocols.insert(0, b"h2".to_vec());
    Arc::new(config)
}

impl From<ServerConfig> for Tls {
    fn from(config: ServerConfig) -> Self {
        Tls::from_config(config)
    }
}

impl From<Arc<ServerConfig>> for Tls {
    fn from(config: Arc<ServerConfig>) -> Self {
        Tls::from_config(config)
    }
}

impl PemFiles {
    fn load(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let bad = |path: &Path, problem: String| TlsError::File {
            path: path.to_owned(),
            problem,
        };
        let chain = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| bad(&self.cert, e.to_string()))?;
        if chain.is_empty() {
            return Err(bad(&self.cert, "no CERTIFICATE block in it".into()));
        }
        let key =
            PrivateKeyDer::from_pem_file(&self.key).map_err(|e| bad(&self.key, e.to_string()))?;
        let provider = Arc::new(futures_rustls::rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Rustls)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Mismatch {
                cert: self.cert.clone(),
                key: self.key.clone(),
                problem: e.to_string(),
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Why a TLS configuration could not be loaded or reloaded. The server
/// keeps the certificate it had.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    File {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        problem: String,
    },
    /// The certificate and the key were read but do not make a usable
    /// configuration (the key does not match, or is of an unsupported type).
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        problem: String,
    },
    /// The server was given a [`ServerConfig`] rather than files, so there
    /// is nothing to re-read: use `set_tls_config`.
    NotFromFiles,
    /// The server has no TLS.
    NotEnabled,
    /// rustls refused the configuration.
    Rustls(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::File { path, problem } => {
                write!(f, "TLS file {}: {problem}", path.display())
            }
            TlsError::Mismatch { cert, key, problem } => write!(
                f,
                "TLS certificate {} with key {}: {problem}",
                cert.display(),
                key.display()
            ),
            TlsError::NotFromFiles => f.write_str(
                "the TLS configuration was given as a rustls ServerConfig, not files: \
                 replace it with set_tls_config",
            ),
            TlsError::NotEnabled => f.write_str("the server was started without TLS"),
            TlsError::Rustls(e) => write!(f, "TLS configuration refused: {e}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Rustls(e) => Some(e),
            _ => None,
        }
    }
}

/// A running server's TLS: the configuration new handshakes get, swapped
/// whole by a reload.
pub(crate) struct Acceptor {
    files: Option<PemFiles>,
    current: RwLock<Arc<ServerConfig>>,
    h2: bool,
}

impl Acceptor {
    pub(crate) fn new(tls: Tls) -> Acceptor {
        Acceptor {
            files: tls.files,
            current: RwLock::new(tls.config),
            h2: tls.h2,
        }
    }

    /// The acceptor for one new connection.
    pub(crate) fn acceptor(&self) -> futures_rustls::TlsAcceptor {
        let config = self.current.read().unwrap_or_else(|e| e.into_inner());
        futures_rustls::TlsAcceptor::from(config.clone())
    }

    /// Re-reads the PEM files; on error the current configuration stays.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let files = self.files.as_ref().ok_or(TlsError::NotFromFiles)?;
        self.set(files.load()?);
        Ok(())
    }

    pub(crate) fn set(&self, config: Arc<ServerConfig>) {
        let config = with_h2(config, self.h2);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
    }

    /// Whether SIGHUP has anything to re-read.
    pub(crate) fn has_files(&self) -> bool {
        self.files.is_some()
    }
}
