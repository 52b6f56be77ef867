//! permessage-deflate (RFC 7692) as an application turns it on: off by
//! default, one [`Compression`] per route (or for every route, through the
//! app's [`Limits`](crate::Limits)).

use crate::protocol::negotiate::DeflateConfig;

/// Compresses messages with permessage-deflate when the client offers it
/// (every browser does). Off unless a route asks for it:
///
/// ```
/// use wsway::{App, Compression, on_message};
///
/// let mut app = App::new();
/// app.ws("/chat", on_message(|ws, msg| { ws.send(msg); }))
///     .compression(Compression::shared());
/// ```
///
/// Two modes trade memory for ratio, as uWebSockets.js's do:
///
/// | mode | window kept between messages | memory per connection |
/// |---|---|---|
/// | [`shared`](Self::shared) | no (both directions) | no compressor of its own (they are per thread): 3.7 KiB per connection in all, measured |
/// | [`dedicated`](Self::dedicated) | yes | a compressor and an inflater, made at first use: 335 KiB per connection in all at window 15, measured; less with [`window_bits`](Self::window_bits) |
///
/// (Measured by `examples/deflate-bench`, a connection that has sent and
/// received one message; see BENCHMARKS.md. Bun's modes hold 6.7 and 223 KiB.)
///
/// Messages shorter than the [`threshold`](Self::threshold) go out
/// uncompressed. An incoming compressed message is inflated in bounded
/// steps against the route's message size limit: one that would inflate
/// past it closes the connection with 1009, with no more than the limit
/// ever held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compression {
    pub(crate) dedicated: bool,
    pub(crate) threshold: usize,
    pub(crate) window_bits: u8,
}

impl Compression {
    /// No context takeover either way: each message is compressed on its
    /// own by a compressor this thread shares with its other connections,
    /// and clients are asked to do the same. Little memory; a lower ratio
    /// on small, similar messages.
    pub fn shared() -> Self {
        Compression {
            dedicated: false,
            threshold: 128,
            window_bits: 15,
        }
    }

    /// A compressor and an inflater per connection, keeping their window
    /// from message to message: the best ratio for many small, similar
    /// messages (chat, JSON events), at the memory in the table above.
    pub fn dedicated() -> Self {
        Compression {
            dedicated: true,
            ..Compression::shared()
        }
    }

    /// Messages shorter than this many bytes are sent uncompressed.
    /// Default: 128.
    pub fn threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }

    /// The window this server compresses with, and asks clients to
    /// compress with when they allow it: 9 to 15 (512 B to 32 KiB).
    /// Smaller saves memory at some ratio. Default: 15.
    pub fn window_bits(mut self, bits: u8) -> Self {
        self.window_bits = bits.clamp(9, 15);
        self
    }

    pub(crate) fn negotiation(&self) -> DeflateConfig {
        DeflateConfig {
            server_no_context_takeover: !self.dedicated,
            client_no_context_takeover: !self.dedicated,
            server_max_window_bits: self.window_bits,
            client_max_window_bits: self.window_bits,
        }
    }
}
