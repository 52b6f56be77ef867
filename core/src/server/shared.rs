//! What every connection task of a server shares: the app, the runtime,
//! the registry and the HTTP settings.

use std::sync::Arc;
use std::time::Duration;

use crate::app::application::App;
use crate::connection::registry::Registry;
use crate::runtime::Rt;

/// What every connection task shares.
pub(crate) struct ServerInner {
    pub(crate) app: App,
    pub(crate) rt: Rt,
    pub(crate) registry: Arc<Registry>,
    pub(crate) http: hyper::server::conn::http1::Builder,
    /// HTTP/2 beside HTTP/1.1, when on.
    #[cfg(feature = "http2")]
    pub(crate) http2: Option<hyper::server::conn::http2::Builder<crate::runtime::HyperExec>>,
    pub(crate) has_ws: bool,
    /// The server-wide cap on open TCP connections.
    pub(crate) connection_limit: Option<usize>,
    /// The idle sweeper's period, when any route has an idle timeout.
    pub(crate) tick: Option<Duration>,
    /// wss://: the certificate new handshakes get.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<Arc<crate::server::tls::Acceptor>>,
}

impl ServerInner {
    /// Whether connections start with a TLS handshake.
    pub(crate) fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }
}
