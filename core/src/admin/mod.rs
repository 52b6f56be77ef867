//! The admin page ([`App::admin`](crate::App::admin)): one self-contained
//! page (no build step, nothing fetched from elsewhere) that shows every
//! node live, fed by a WebSocket of its own on the same server.
//!
//! The page asks for the admin key with HTTP Basic authentication (any
//! user name, the key as the password) and carries a session token for
//! its stream: `<expiry>.<HMAC-SHA1 of it under the key>`, checked on any
//! node that has the same key, sent as the `bearer.` subprotocol (never
//! in a URL). Nothing is counted and nothing extra is reported while no
//! page is open (see `watch`).
//!
//! Imports: `api` beside it (the key, and its disconnect), `loop_fn`
//! beside it (the stream's socket), `topics` and `web` below.

mod session;
mod snapshot;
pub(crate) mod stream;

use std::sync::Arc;

use base64::Engine as _;
use http::header;

use crate::api::ApiKey;
use crate::web::body::{Html, IntoResponse, Response, StatusCode};
use crate::web::request::Request;

/// The page, with `{{BASE}}` and `{{TOKEN}}` to fill in.
const PAGE: &str = include_str!("page.html");

/// The subprotocol the page's stream speaks (offered beside its token).
pub(crate) const PROTOCOL: &str = "wsway.admin";

/// What the page's routes share.
pub(crate) struct Admin {
    key: ApiKey,
    /// Where the page is served; its stream is under it.
    base: String,
}

impl Admin {
    pub(crate) fn new(base: &str, key: ApiKey) -> Arc<Admin> {
        Arc::new(Admin {
            key,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// The page's path.
    pub(crate) fn page_path(&self) -> String {
        if self.base.is_empty() {
            "/".to_owned()
        } else {
            self.base.clone()
        }
    }

    /// The stream's path.
    pub(crate) fn stream_path(&self) -> String {
        format!("{}/stream", self.base)
    }

    /// `GET {base}`: the page, for the key given as a Basic password.
    pub(crate) fn page(&self, req: &Request) -> Response {
        if !self.basic_authorized(req) {
            return challenge();
        }
        let token = session::issue(&self.key);
        let page = (PAGE.replace("{{BASE}}", &html_attr(&self.base))).replace("{{TOKEN}}", &token);
        let mut res = Html(page).into_response();
        let headers = res.headers_mut();
        // The token is in the page: never cached, never framed elsewhere.
        headers.insert(
            header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            http::HeaderValue::from_static(
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'; img-src data:; frame-ancestors 'none'",
            ),
        );
        res
    }

    /// Whether `token` (the stream's `bearer.` subprotocol) is a live
    /// session of this key.
    pub(crate) fn session_valid(&self, token: &str) -> bool {
        session::valid(&self.key, token)
    }

    fn basic_authorized(&self, req: &Request) -> bool {
        let Some(value) = req.headers().get(header::AUTHORIZATION) else {
            return false;
        };
        let value = value.as_bytes();
        let scheme = b"basic ";
        if value.len() <= scheme.len() || !value[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return false;
        }
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(&value[scheme.len()..])
        else {
            return false;
        };
        // Any user name: the password is the key.
        match decoded.iter().position(|&b| b == b':') {
            Some(colon) => self.key.matches(&decoded[colon + 1..]),
            None => false,
        }
    }
}

/// A `401` that asks the browser for the key.
fn challenge() -> Response {
    let mut res = (
        StatusCode::UNAUTHORIZED,
        "the admin page needs the admin key (as the password)",
    )
        .into_response();
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static(r#"Basic realm="wsway admin", charset="UTF-8""#),
    );
    res
}

/// `s` safe inside a double-quoted HTML attribute and a JS string.
fn html_attr(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}
