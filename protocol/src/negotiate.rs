//! Negotiating permessage-deflate (RFC 7692 §5, §7.1): reading a client's
//! offers from `Sec-WebSocket-Extensions`, choosing the first this server
//! can honour, and writing the answer.
//!
//! An offer with an unknown parameter, a parameter twice, or a value out of
//! range is declined (§7.1: "MUST decline"), never with an error: the
//! connection goes on uncompressed. An 8-bit server window is accepted:
//! zlib compressing with 9 bits never reaches further back than 250 bytes,
//! so its output fits a 256-byte window (what Node's ws does too).

/// What this server wants, within what a client allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Compress without carrying the window from message to message (so a
    /// compressor can be shared, or memory freed between messages).
    pub server_no_context_takeover: bool,
    /// Ask clients to do the same (so the server's inflater keeps no window
    /// between messages).
    pub client_no_context_takeover: bool,
    /// The window this server compresses with, 8–15.
    pub server_max_window_bits: u8,
    /// The window this server asks clients to compress with, 9–15 (only
    /// when the client offered to be limited).
    pub client_max_window_bits: u8,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }
}

/// The parameters both sides agreed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Agreed {
    /// The server forgets its window after each message.
    pub server_no_context_takeover: bool,
    /// The client forgets its window after each message.
    pub client_no_context_takeover: bool,
    /// The window the server compresses with.
    pub server_max_window_bits: u8,
    /// The window the client compresses with (the server inflates with it).
    pub client_max_window_bits: u8,
}

impl Agreed {
    /// The `Sec-WebSocket-Extensions` value of the server's answer.
    pub fn response(&self, offered_client_bits: bool) -> String {
        let mut out = String::from("permessage-deflate");
        if self.server_no_context_takeover {
            out.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            out.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits < 15 {
            out.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_max_window_bits
            ));
        }
        // Only when the client said it can be limited (§7.1.2.2).
        if offered_client_bits && self.client_max_window_bits < 15 {
            out.push_str(&format!(
                "; client_max_window_bits={}",
                self.client_max_window_bits
            ));
        }
        out
    }
}

/// The outcome: what was agreed and the answer header, or nothing (no
/// acceptable offer: no compression).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The parameters both sides use.
    pub agreed: Agreed,
    /// The server's `Sec-WebSocket-Extensions` answer.
    pub response: String,
}

/// Chooses the first acceptable permessage-deflate offer among the values
/// of every `Sec-WebSocket-Extensions` header of the request.
pub fn negotiate<'a>(
    headers: impl IntoIterator<Item = &'a str>,
    config: &DeflateConfig,
) -> Option<Negotiated> {
    headers
        .into_iter()
        .flat_map(split_outside_quotes::<','>)
        .find_map(|offer| accept(offer, config))
}

/// One offer, `permessage-deflate; param[=value]; ...`, if acceptable.
fn accept(offer: &str, config: &DeflateConfig) -> Option<Negotiated> {
    let mut parts = split_outside_quotes::<';'>(offer).into_iter();
    if !parts
        .next()?
        .trim()
        .eq_ignore_ascii_case("permessage-deflate")
    {
        return None;
    }
    let mut server_no_context = false;
    let mut client_no_context = false;
    let mut server_bits: Option<u8> = None;
    let mut client_bits: Option<Option<u8>> = None;
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(unquote(v.trim())?)),
            None => (param.trim(), None),
        };
        match (name.to_ascii_lowercase().as_str(), value) {
            ("server_no_context_takeover", None) if !server_no_context => server_no_context = true,
            ("client_no_context_takeover", None) if !client_no_context => client_no_context = true,
            ("server_max_window_bits", Some(v)) if server_bits.is_none() => {
                server_bits = Some(window_bits(v)?);
            }
            ("client_max_window_bits", v) if client_bits.is_none() => {
                client_bits = Some(match v {
                    Some(v) => Some(window_bits(v)?),
                    None => None,
                });
            }
            // Unknown, repeated, or a value where none belongs (or the
            // reverse): decline this offer.
            _ => return None,
        }
    }
    let server_max_window_bits = server_bits.map_or(config.server_max_window_bits, |b| {
        b.min(config.server_max_window_bits)
    });
    let client_max_window_bits = match client_bits {
        // The client can be limited: ask for ours (within its own limit).
        Some(limit) => config
            .client_max_window_bits
            .min(limit.unwrap_or(15))
            .max(9),
        // It cannot: it may use up to 15, and our inflater must take that.
        None => 15,
    };
    let agreed = Agreed {
        server_no_context_takeover: server_no_context || config.server_no_context_takeover,
        client_no_context_takeover: client_no_context || config.client_no_context_takeover,
        server_max_window_bits,
        client_max_window_bits,
    };
    Some(Negotiated {
        agreed,
        response: agreed.response(client_bits.is_some()),
    })
}

/// 8 to 15, digits only (RFC 7692 §7.1.2: "a decimal integer value ...
/// without leading zeros").
fn window_bits(v: &str) -> Option<u8> {
    if v.is_empty() || v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok().filter(|b| (8..=15).contains(b))
}

/// A parameter value may be a quoted string (RFC 7230 token or
/// quoted-string); window bits never need escapes.
fn unquote(v: &str) -> Option<&str> {
    match v.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"').filter(|inner| !inner.contains('"')),
        None => Some(v),
    }
}

/// Splits on `SEP` except inside double quotes.
fn split_outside_quotes<const SEP: char>(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c == SEP && !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(h: &str) -> Option<Negotiated> {
        negotiate([h], &DeflateConfig::default())
    }

    #[test]
    fn a_browser_offer_is_accepted_as_offered() {
        // What Chrome and Firefox send.
        let n = offer("permessage-deflate; client_max_window_bits").unwrap();
        assert_eq!(n.response, "permessage-deflate");
        assert_eq!(n.agreed.client_max_window_bits, 15);
        assert!(!n.agreed.server_no_context_takeover);
    }

    #[test]
    fn parameters_are_honoured_and_answered() {
        let n = offer("permessage-deflate; server_no_context_takeover; server_max_window_bits=10")
            .unwrap();
        assert_eq!(
            n.response,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10"
        );
        assert_eq!(n.agreed.server_max_window_bits, 10);
        let n =
            offer("permessage-deflate; client_max_window_bits=\"12\"; client_no_context_takeover")
                .unwrap();
        assert_eq!(n.agreed.client_max_window_bits, 12);
        assert!(n.agreed.client_no_context_takeover);
        assert_eq!(
            n.response,
            "permessage-deflate; client_no_context_takeover; client_max_window_bits=12"
        );
        // The server's own limits, where the client allows them.
        let config = DeflateConfig {
            server_no_context_takeover: true,
            client_max_window_bits: 10,
            ..DeflateConfig::default()
        };
        let n = negotiate(["permessage-deflate; client_max_window_bits"], &config).unwrap();
        assert_eq!(
            n.response,
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=10"
        );
        let n = negotiate(["permessage-deflate"], &config).unwrap();
        assert_eq!(
            n.agreed.client_max_window_bits, 15,
            "a client that cannot be limited"
        );
    }

    #[test]
    fn bad_offers_are_declined_and_the_next_is_tried() {
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits=abc",
            "permessage-deflate; client_max_window_bits=99999999999",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; unknown",
            "permessage-deflate; client_max_window_bits=\"1",
            "x-webkit-deflate-frame",
            "",
        ] {
            assert_eq!(offer(bad), None, "{bad}");
        }
        let n = negotiate(
            ["permessage-deflate; server_max_window_bits=16, permessage-deflate; server_max_window_bits=8"],
            &DeflateConfig::default(),
        )
        .unwrap();
        assert_eq!(n.agreed.server_max_window_bits, 8);
        assert_eq!(n.response, "permessage-deflate; server_max_window_bits=8");
        let n = negotiate(
            ["foo, bar", "permessage-deflate"],
            &DeflateConfig::default(),
        );
        assert!(n.is_some(), "offers across several headers");
    }
}
