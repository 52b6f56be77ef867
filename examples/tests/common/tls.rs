//! wss:// in tests: self-signed certificates made on the spot, written as
//! the PEM files a server is given, and a TLS client that trusts exactly
//! the certificates it is told to.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;

use async_io::Async;
use async_tungstenite::WebSocketStream;
use futures_rustls::client::TlsStream;
use futures_rustls::rustls::pki_types::{CertificateDer, ServerName};
use futures_rustls::rustls::{self, ClientConfig, RootCertStore};

use super::{WAIT, within};

/// A self-signed certificate for `localhost` and 127.0.0.1.
pub struct Cert {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl Cert {
    pub fn self_signed() -> Cert {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(names).expect("generate a certificate");
        Cert {
            cert_pem: cert.pem(),
            key_pem: signing_key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    /// A client that trusts this certificate alone.
    pub fn client(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).expect("a root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// A directory of its own under the target's temp dir, with the server's
/// `cert.pem` and `key.pem`; removed when dropped.
pub struct PemFiles {
    pub dir: PathBuf,
}

impl PemFiles {
    pub fn new(cert: &Cert) -> PemFiles {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("wsway-tls-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let files = PemFiles { dir };
        files.write(cert);
        files
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    /// Replaces both files (each written whole, then renamed into place, as
    /// a certificate manager does).
    pub fn write(&self, cert: &Cert) {
        self.write_raw(&cert.cert_pem, &cert.key_pem);
    }

    pub fn write_raw(&self, cert: &str, key: &str) {
        for (path, text) in [(self.cert(), cert), (self.key(), key)] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text).expect("write a PEM file");
            std::fs::rename(&tmp, &path).expect("move it into place");
        }
    }

    pub fn tls(&self) -> wsway::Tls {
        wsway::Tls::from_pem_files(self.cert(), self.key()).expect("the PEM files load")
    }
}

impl Drop for PemFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub type Wss = WebSocketStream<TlsStream<Async<TcpStream>>>;

/// A TLS connection to `addr` as `localhost`, handshake done.
pub async fn tls_connect(
    addr: SocketAddr,
    client: &Arc<ClientConfig>,
) -> std::io::Result<TlsStream<Async<TcpStream>>> {
    let tcp = Async::<TcpStream>::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("a name");
    futures_rustls::TlsConnector::from(client.clone())
        .connect(name, tcp)
        .await
}

/// A wss:// WebSocket on `path`; an error when TLS or the upgrade fails.
pub async fn try_wss(
    addr: SocketAddr,
    path: &str,
    client: &Arc<ClientConfig>,
) -> Result<Wss, String> {
    // Boxed: a TLS client's handshake state is large, and a thousand of
    // them in flight would not fit on a test thread's stack.
    Box::pin(within(WAIT, "a wss connection", async {
        let tls = tls_connect(addr, client)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let url = format!("wss://localhost:{}{path}", addr.port());
        async_tungstenite::client_async(url, tls)
            .await
            .map(|(ws, _)| ws)
            .map_err(|e| format!("upgrade: {e}"))
    }))
    .await
}

/// A wss:// WebSocket on `path`, or the test fails.
pub async fn wss(addr: SocketAddr, path: &str, client: &Arc<ClientConfig>) -> Wss {
    try_wss(addr, path, client).await.expect("a wss connection")
}

/// A plain HTTP/1.1 GET over TLS; the whole response as text.
pub async fn https_get(addr: SocketAddr, path: &str, client: &Arc<ClientConfig>) -> String {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    Box::pin(within(WAIT, "an https GET", async {
        let mut tls = tls_connect(addr, client).await.expect("TLS");
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        tls.write_all(req.as_bytes()).await.expect("write");
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }))
    .await
}
