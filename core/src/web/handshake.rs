//! The opening handshake: checking an HTTP/1.1 upgrade request and building
//! its `101 Switching Protocols` answer (RFC 6455 §4.2), or, over HTTP/2, an
//! extended CONNECT and its `200` (RFC 8441 §5).
//!
//! Every failure is an HTTP status with a body that says what was wrong, sent
//! before any upgrade.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode, Version};

use crate::web::body::{Response, text};

/// Whether a request asks for a WebSocket at all: `Upgrade: websocket`.
/// A plain GET to a WebSocket-only route is answered with 426.
pub(crate) fn wants_websocket(headers: &HeaderMap) -> bool {
    header_has_token(headers, header::UPGRADE, "websocket")
}

/// True when a comma-separated header (possibly repeated) contains `token`,
/// compared case-insensitively.
pub(crate) fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// Whether a request is HTTP/2's extended CONNECT for a WebSocket: method
/// CONNECT with `:protocol = websocket` (RFC 8441 §4).
pub(crate) fn is_extended_connect(head: &http::request::Parts) -> bool {
    #[cfg(feature = "http2")]
    return head.method == Method::CONNECT
        && head
            .extensions
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"));
    #[cfg(not(feature = "http2"))]
    {
        let _ = head;
        false
    }
}

/// The accepted parts of a valid upgrade request.
#[derive(Debug)]
pub(crate) struct Handshake {
    /// Value for `Sec-WebSocket-Accept`; `None` over HTTP/2, which has no key.
    pub(crate) accept: Option<String>,
}

impl Handshake {
    /// The answer that opens the WebSocket: `101` over HTTP/1.1, `200` to
    /// an extended CONNECT.
    pub(crate) fn response(&self, protocol: Option<&str>, extensions: Option<&str>) -> Response {
        let mut res = http::Response::new(crate::web::body::Body::empty());
        let h = res.headers_mut();
        if let Some(accept) = &self.accept {
            h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            if let Ok(v) = HeaderValue::from_str(accept) {
                h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
            }
        }
        if let Some(Ok(v)) = protocol.map(HeaderValue::from_str) {
            h.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
        }
        if let Some(Ok(v)) = extensions.map(HeaderValue::from_str) {
            h.insert(header::SEC_WEBSOCKET_EXTENSIONS, v);
        }
        *res.status_mut() = match self.accept {
            Some(_) => StatusCode::SWITCHING_PROTOCOLS,
            None => StatusCode::OK,
        };
        res
    }
}

/// Checks a request for a WebSocket: an extended CONNECT over HTTP/2, an
/// upgrade otherwise.
pub(crate) fn check_request(head: &http::request::Parts) -> Result<Handshake, Response> {
    if is_extended_connect(head) {
        check_connect(&head.headers)
    } else {
        check(&head.method, head.version, &head.headers)
    }
}

/// An extended CONNECT carries no key and no `Upgrade`: only the version
/// is left to check (RFC 8441 §5).
fn check_connect(headers: &HeaderMap) -> Result<Handshake, Response> {
    match headers.get(header::SEC_WEBSOCKET_VERSION) {
        Some(v) if v.as_bytes().trim_ascii() == b"13" => Ok(Handshake { accept: None }),
        _ => {
            let mut res = text(
                StatusCode::BAD_REQUEST,
                "unsupported `Sec-WebSocket-Version`: this server speaks version 13",
            );
            res.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
            Err(res)
        }
    }
}

/// Checks an upgrade request. Order matters: each check assumes the ones
/// before it passed, and the first failure decides the status.
pub(crate) fn check(
    method: &Method,
    version: Version,
    headers: &HeaderMap,
) -> Result<Handshake, Response> {
    if method != Method::GET {
        let mut res = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "WebSocket upgrades must use GET",
        );
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        return Err(res);
    }
    if version < Version::HTTP_11 {
        return Err(text(
            StatusCode::BAD_REQUEST,
            "WebSocket upgrades need HTTP/1.1",
        ));
    }
    // An upgrade carries no body; one that claims to would leave bytes of
    // unknown meaning between the request and the first frame.
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes().trim_ascii() != b"0");
    if has_body && wants_websocket(headers) {
        return Err(text(
            StatusCode::BAD_REQUEST,
            "a WebSocket upgrade request must not have a body",
        ));
    }
    if !wants_websocket(headers) {
        return Err(upgrade_required(
            "this route only speaks WebSocket: send `Upgrade: websocket`",
        ));
    }
    if !header_has_token(headers, header::CONNECTION, "upgrade") {
        return Err(text(
            StatusCode::BAD_REQUEST,
            "missing `Connection: upgrade` header",
        ));
    }
    match headers.get(header::SEC_WEBSOCKET_VERSION) {
        Some(v) if v.as_bytes().trim_ascii() == b"13" => {}
        _ => {
            return Err(upgrade_required(
                "unsupported `Sec-WebSocket-Version`: this server speaks version 13",
            ));
        }
    }
    let mut keys = headers.get_all(header::SEC_WEBSOCKET_KEY).iter();
    let key = match (keys.next(), keys.next()) {
        (Some(key), None) if is_valid_key(key.as_bytes().trim_ascii()) => {
            key.as_bytes().trim_ascii()
        }
        _ => {
            return Err(text(
                StatusCode::BAD_REQUEST,
                "`Sec-WebSocket-Key` must be the base64 encoding of 16 bytes",
            ));
        }
    };
    Ok(Handshake {
        accept: Some(crate::protocol::handshake::accept_key(key)),
    })
}

/// 426 with the headers that tell a client how to retry.
fn upgrade_required(message: &'static str) -> Response {
    let mut res = text(StatusCode::UPGRADE_REQUIRED, message);
    let h = res.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    res
}

/// A key is 16 bytes in base64: 22 symbols, then `==`. The 22nd symbol carries
/// only 2 bits of data, so its low 4 bits must be zero in canonical base64.
fn is_valid_key(key: &[u8]) -> bool {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sextet = |c: u8| ALPHABET.iter().position(|&a| a == c);
    key.len() == 24
        && key[22..] == *b"=="
        && key[..22].iter().all(|&c| sextet(c).is_some())
        && sextet(key[21]).is_some_and(|v| v & 0x0f == 0)
}

/// Subprotocols the client offered, in its order of preference.
pub(crate) fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    const GOOD: &[(&str, &str)] = &[
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    fn status(pairs: &[(&'static str, &'static str)]) -> StatusCode {
        match check(&Method::GET, Version::HTTP_11, &headers(pairs)) {
            Ok(_) => StatusCode::SWITCHING_PROTOCOLS,
            Err(res) => res.status(),
        }
    }

    #[test]
    fn accepts_the_rfc_example() {
        let hs = check(&Method::GET, Version::HTTP_11, &headers(GOOD)).unwrap();
        assert_eq!(hs.accept.as_deref(), Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    }

    #[test]
    fn tokens_are_case_insensitive_inside_lists() {
        let mut h = GOOD.to_vec();
        h[0] = ("upgrade", "foo, WebSocket");
        h[1] = ("connection", "keep-alive, UPGRADE");
        assert_eq!(status(&h), StatusCode::SWITCHING_PROTOCOLS);
    }

    #[test]
    fn each_failure_has_its_status() {
        let r = check(&Method::POST, Version::HTTP_11, &headers(GOOD)).unwrap_err();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        let r = check(&Method::GET, Version::HTTP_10, &headers(GOOD)).unwrap_err();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);

        assert_eq!(status(&GOOD[1..]), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(
            status(&[GOOD[0], GOOD[2], GOOD[3]]),
            StatusCode::BAD_REQUEST
        );

        let mut v = GOOD.to_vec();
        v[2] = ("sec-websocket-version", "8");
        let r = check(&Method::GET, Version::HTTP_11, &headers(&v)).unwrap_err();
        assert_eq!(r.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(r.headers()["sec-websocket-version"], "13");

        for bad in [
            "",
            "abc",
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25jZR==",
            "dGhlIHNhbXBsZSBub25jZ!==",
        ] {
            let mut k = GOOD.to_vec();
            k[3] = ("sec-websocket-key", bad);
            assert_eq!(status(&k), StatusCode::BAD_REQUEST, "{bad:?}");
        }
        let mut two = GOOD.to_vec();
        two.push(("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="));
        assert_eq!(status(&two), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn protocols_in_offer_order() {
        let h = headers(&[
            ("sec-websocket-protocol", "a, b"),
            ("sec-websocket-protocol", "c"),
        ]);
        assert_eq!(offered_protocols(&h), ["a", "b", "c"]);
    }
}
