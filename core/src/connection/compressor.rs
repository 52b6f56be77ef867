//! A connection's permessage-deflate: what was agreed, and the compressor
//! and inflater it uses, its own (dedicated) or its thread's (shared).

use std::cell::RefCell;

use crate::policy::compression::Compression;
use crate::protocol::ProtocolError;
use crate::protocol::deflate::{Deflater, Inflater};
use crate::protocol::negotiate::Agreed;

thread_local! {
    /// Shared mode's compressors and inflaters, by window bits: they keep
    /// no window between messages, so any connection of the thread can use
    /// them, one message at a time.
    static DEFLATERS: RefCell<Vec<(u8, Deflater)>> = const { RefCell::new(Vec::new()) };
    static INFLATERS: RefCell<Vec<(u8, Inflater)>> = const { RefCell::new(Vec::new()) };
}

/// One connection's compression, once negotiated.
pub(crate) struct Session {
    agreed: Agreed,
    threshold: usize,
    dedicated: bool,
    /// Dedicated mode's own, made at first use.
    deflater: Option<Box<Deflater>>,
    inflater: Option<Box<Inflater>>,
}

impl Session {
    pub(crate) fn new(settings: &Compression, agreed: Agreed) -> Self {
        Session {
            agreed,
            threshold: settings.threshold,
            // Shared compressors must not carry a window: only when both
            // directions reset between messages can they be shared.
            dedicated: settings.dedicated
                || !agreed.server_no_context_takeover
                || !agreed.client_no_context_takeover,
            deflater: None,
            inflater: None,
        }
    }

    /// The payload compressed, when it is long enough to be worth it.
    pub(crate) fn compress(&mut self, payload: &[u8]) -> Option<Vec<u8>> {
        if payload.len() < self.threshold {
            return None;
        }
        let (bits, reset) = (
            self.agreed.server_max_window_bits,
            self.agreed.server_no_context_takeover,
        );
        if self.dedicated {
            let d = self
                .deflater
                .get_or_insert_with(|| Box::new(Deflater::new(bits, reset)));
            return Some(d.compress(payload));
        }
        Some(shared(&DEFLATERS, bits, Deflater::new, |d| {
            d.compress(payload)
        }))
    }

    /// Inflates a compressed message against `limit`.
    pub(crate) fn inflate(
        &mut self,
        payload: &[u8],
        limit: usize,
        text: bool,
    ) -> Result<Vec<u8>, ProtocolError> {
        let (bits, reset) = (
            self.agreed.client_max_window_bits,
            self.agreed.client_no_context_takeover,
        );
        if self.dedicated {
            let i = self
                .inflater
                .get_or_insert_with(|| Box::new(Inflater::new(bits, reset)));
            return i.inflate(payload, limit, text);
        }
        shared(&INFLATERS, bits, Inflater::new, |i| {
            i.inflate(payload, limit, text)
        })
    }
}

/// Runs `f` with this thread's compressor (or inflater) for `bits`, made
/// on first use; shared ones reset after every message.
fn shared<T: 'static, R>(
    pool: &'static std::thread::LocalKey<RefCell<Vec<(u8, T)>>>,
    bits: u8,
    make: fn(u8, bool) -> T,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    pool.with(|all| {
        let mut all = all.borrow_mut();
        let at = match all.iter().position(|(b, _)| *b == bits) {
            Some(at) => at,
            None => {
                all.push((bits, make(bits, true)));
                all.len() - 1
            }
        };
        f(&mut all[at].1)
    })
}
