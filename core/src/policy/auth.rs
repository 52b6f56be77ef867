//! Bearer-token authentication before the upgrade: [`Bearer`].
//!
//! Browsers cannot set headers on a WebSocket, so besides `Authorization`
//! the token may come in a query parameter or, the browser-friendly way that
//! keeps it out of URLs and access logs, as a subprotocol `bearer.<token>`
//! (what `wsway.js` sends). That subprotocol is removed from the request
//! before anything can choose it, so the token is never echoed back.

use std::future::Future;
use std::sync::Arc;

use http::header::{self, HeaderValue};

use crate::boxed::BoxFuture;
use crate::policy::expiry::{Expiring, Expiry, RefreshMargin, Renew, Renewal, Renewed};
use crate::web::body::{Response, StatusCode, text};
use crate::web::handshake::offered_protocols;
use crate::web::middleware::Middleware;
use crate::web::request::Request;

/// The subprotocol prefix that carries a token: `bearer.<token>`.
pub const TOKEN_PROTOCOL_PREFIX: &str = "bearer.";

/// Checks a token and returns the identity it stands for. Implemented for
/// async closures `Fn(String) -> impl Future<Output = V>` where `V` is a
/// [`Verdict`]: `Option<I>` (`None`: unknown, expired or revoked) or
/// `Result<I, E: Display>` (the error says why, and the client reads it).
pub trait Verify: Send + Sync + 'static {
    /// What a valid token identifies: a user, a session, a set of claims.
    type Identity: Clone + Send + Sync + 'static;

    /// Looks the token up: the identity, `Err(None)` when the token is not
    /// valid, or `Err(Some(reason))` saying why. The reason may quote the
    /// token (a session store's error often does): it is replaced by
    /// `[redacted]` before the reason goes anywhere.
    fn verify(
        &self,
        token: String,
    ) -> impl Future<Output = Result<Self::Identity, Option<String>>> + Send;
}

/// What a verifier closure returns: `Option<I>` or `Result<I, E>`.
pub trait Verdict: Send {
    /// The identity a valid token stands for.
    type Identity: Clone + Send + Sync + 'static;

    /// The identity, or the refusal with its reason if it has one.
    fn into_verdict(self) -> Result<Self::Identity, Option<String>>;
}

impl<I: Clone + Send + Sync + 'static> Verdict for Option<I> {
    type Identity = I;

    fn into_verdict(self) -> Result<I, Option<String>> {
        self.ok_or(None)
    }
}

impl<I: Clone + Send + Sync + 'static, E: std::fmt::Display + Send> Verdict for Result<I, E> {
    type Identity = I;

    fn into_verdict(self) -> Result<I, Option<String>> {
        self.map_err(|e| Some(e.to_string()))
    }
}

impl<F, Fut> Verify for F
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future + Send,
    Fut::Output: Verdict,
{
    type Identity = <Fut::Output as Verdict>::Identity;

    fn verify(
        &self,
        token: String,
    ) -> impl Future<Output = Result<Self::Identity, Option<String>>> + Send {
        let verdict = self(token);
        async move { verdict.await.into_verdict() }
    }
}

/// The token a connection was admitted with, kept (privately) so the event
/// layer can scrub it from errors a handler writes.
#[derive(Clone)]
pub(crate) struct Credential(pub(crate) Arc<str>);

/// What stands in for a token in anything a refusal says.
pub const REDACTED: &str = "[redacted]";

/// `text` with every occurrence of `secret` replaced by [`REDACTED`].
pub(crate) fn scrub(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_owned();
    }
    text.replace(secret, REDACTED)
}

/// Where a token may come from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Source {
    Header,
    Query(String),
    Protocol,
}

/// Middleware requiring a bearer token: without one the request gets `401`
/// with `WWW-Authenticate: Bearer`, with one the verifier rejects it gets
/// `401` with `error="invalid_token"` (and the verifier's reason when it
/// gave one, the token in it replaced by [`REDACTED`]), and with a good one the verifier's
/// identity is attached to the request, so every callback reads it with
/// [`Ws::value`](crate::Ws::value).
///
/// Sources are tried in the order given; the first present token decides.
///
/// ```
/// use wsway::{App, Bearer, Handler, Ws, Message};
///
/// #[derive(Clone)]
/// struct User(String);
///
/// async fn verify(token: String) -> Option<User> {
///     // Look the token up in a session store; here, one fixed token.
///     (token == "s3cret").then(|| User("ann".into()))
/// }
///
/// struct Whoami;
/// impl Handler for Whoami {
///     type Data = ();
///     async fn message(&self, ws: &mut Ws<()>, _msg: Message) {
///         let user = ws.value::<User>().expect("Bearer ran");
///         ws.send(Message::text(user.0.clone()));
///     }
/// }
///
/// let mut app = App::new();
/// app.ws("/me", Whoami).middleware(Bearer::header(verify).or_protocol());
/// ```
pub struct Bearer<V: Verify> {
    verify: Arc<V>,
    sources: Vec<Source>,
    realm: &'static str,
    /// Set by [`Bearer::refresh`]: the connections renew their token.
    refresh: Option<Expiry<V::Identity>>,
}

impl<V: Verify> Bearer<V> {
    fn with(verify: V, source: Source) -> Self {
        Bearer {
            verify: Arc::new(verify),
            sources: vec![source],
            realm: "wsway",
            refresh: None,
        }
    }

    /// The token from `Authorization: Bearer <token>`.
    pub fn header(verify: V) -> Self {
        Self::with(verify, Source::Header)
    }

    /// The token from the query parameter `name` (URLs end up in logs;
    /// prefer [`Bearer::protocol`] for browsers).
    pub fn query(name: impl Into<String>, verify: V) -> Self {
        Self::with(verify, Source::Query(name.into()))
    }

    /// The token from an offered subprotocol `bearer.<token>`, the way
    /// browsers (and `wsway.js`) can send it. The client must also offer a
    /// real subprotocol for the server to choose, as browsers fail a
    /// connection that offered protocols and got none back.
    pub fn protocol(verify: V) -> Self {
        Self::with(verify, Source::Protocol)
    }

    /// Also accepts the token from `Authorization`.
    pub fn or_header(mut self) -> Self {
        self.sources.push(Source::Header);
        self
    }

    /// Also accepts the token from the query parameter `name`.
    pub fn or_query(mut self, name: impl Into<String>) -> Self {
        self.sources.push(Source::Query(name.into()));
        self
    }

    /// Also accepts the token from a `bearer.<token>` subprotocol.
    pub fn or_protocol(mut self) -> Self {
        self.sources.push(Source::Protocol);
        self
    }

    /// The realm named in `WWW-Authenticate` (default: `wsway`).
    pub fn realm(mut self, realm: &'static str) -> Self {
        self.realm = realm;
        self
    }

    /// Keeps tokens valid inside open sockets: a connection's token
    /// expires when its identity says ([`Expiring`]), and before then (by
    /// the [`RefreshMargin`], by default 10 % of the token's lifetime,
    /// at least 5 s) the server asks the client for a new one with the
    /// push `{"event": "wsway:refresh", "data": {"expires_in_ms": ..}}`.
    /// The client answers with `{"event": "wsway:refresh", "data":
    /// {"token": ..}, "id": ..}` (`wsway.js` does, from its `token`
    /// function); the verifier checks the token, and the connection
    /// carries on with the new identity and expiry, without a reconnect.
    /// A token for another subject is refused. Without a valid answer
    /// by the expiry, the connection closes with 4001. This works on every
    /// kind of route: callbacks, events and loops (see the guide's
    /// "Authentication").
    ///
    /// ```
    /// # use std::time::{Duration, SystemTime, UNIX_EPOCH};
    /// use wsway::{App, Bearer, Events, Expiring};
    ///
    /// #[derive(Clone)]
    /// struct Claims { sub: String, exp: u64 }
    /// impl Expiring for Claims {
    ///     type Subject = String;
    ///     fn subject(&self) -> String { self.sub.clone() }
    ///     fn expires_at(&self) -> SystemTime { UNIX_EPOCH + Duration::from_secs(self.exp) }
    /// }
    /// # fn decode(_: &str) -> Option<Claims> { None }
    /// async fn verify(token: String) -> Option<Claims> {
    ///     decode(&token) // checks the signature and that `exp` is ahead
    /// }
    ///
    /// let mut app = App::new();
    /// app.ws("/chat", Events::<()>::new())
    ///     .middleware(Bearer::protocol(verify).refresh());
    /// ```
    pub fn refresh(self) -> Self
    where
        V::Identity: Expiring,
    {
        self.refresh_margin(RefreshMargin::default())
    }

    /// [`Bearer::refresh`], asking for the new token `margin` before the
    /// old one expires.
    pub fn refresh_margin(mut self, margin: RefreshMargin) -> Self
    where
        V::Identity: Expiring,
    {
        self.refresh = Some(Expiry::of(margin));
        self
    }

    /// The first token found, in source order. Takes the token out of the
    /// offered subprotocols whatever happens, so nothing can echo it.
    fn token(&self, req: &mut Request) -> Option<String> {
        let mut from_protocol = if self.sources.contains(&Source::Protocol) {
            take_protocol_token(req)
        } else {
            None
        };
        self.sources.iter().find_map(|source| match source {
            Source::Header => req
                .header("authorization")
                .and_then(|v| strip_scheme(v.trim()))
                .map(str::to_owned),
            Source::Query(name) => form_urlencoded::parse(req.uri().query()?.as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned()),
            Source::Protocol => from_protocol.take(),
        })
    }

    fn unauthorized(&self, error: Option<&str>, message: impl Into<crate::Body>) -> Response {
        let mut res = text(StatusCode::UNAUTHORIZED, message);
        let challenge = match error {
            Some(e) => format!("Bearer realm=\"{}\", error=\"{e}\"", self.realm),
            None => format!("Bearer realm=\"{}\"", self.realm),
        };
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        res
    }
}

impl<V: Verify> Middleware for Bearer<V> {
    async fn check(&self, req: &mut Request) -> Result<(), Response> {
        let Some(token) = self.token(req).filter(|t| !t.is_empty()) else {
            return Err(self.unauthorized(None, "a bearer token is required"));
        };
        // Kept to scrub the verifier's reason: it may quote the token.
        let secret = token.clone();
        match self.verify.verify(token).await {
            Ok(identity) => {
                if let Some(expiry) = self.refresh {
                    let Some(expires_at) = expiry.live_until(&identity) else {
                        return Err(self
                            .unauthorized(Some("invalid_token"), "the bearer token has expired"));
                    };
                    req.insert(Renewal {
                        expires_at,
                        margin: expiry.margin,
                        renew: Arc::new(Renewer {
                            verify: self.verify.clone(),
                            admitted: identity.clone(),
                            expiry,
                        }),
                    });
                }
                req.insert(identity);
                req.insert(Credential(secret.into()));
                Ok(())
            }
            Err(None) => Err(self.unauthorized(
                Some("invalid_token"),
                "the bearer token is invalid or expired",
            )),
            Err(Some(reason)) => Err(self.unauthorized(
                Some("invalid_token"),
                format!("the bearer token was refused: {}", scrub(&reason, &secret)),
            )),
        }
    }
}

/// The `Renew` of one connection: its verifier and the identity it was
/// admitted with (whose subject every new token must name).
pub(crate) struct Renewer<V: Verify> {
    pub(crate) verify: Arc<V>,
    pub(crate) admitted: V::Identity,
    pub(crate) expiry: Expiry<V::Identity>,
}

impl<V: Verify> Renew for Renewer<V> {
    fn renew(&self, token: String) -> BoxFuture<'static, Result<Renewed, String>> {
        let (verify, admitted, expiry) = (self.verify.clone(), self.admitted.clone(), self.expiry);
        Box::pin(async move {
            let secret = token.clone();
            let identity = match verify.verify(token).await {
                Ok(identity) => identity,
                Err(None) => return Err("the token is invalid or expired".to_owned()),
                Err(Some(reason)) => {
                    return Err(format!(
                        "the token was refused: {}",
                        scrub(&reason, &secret)
                    ));
                }
            };
            if !(expiry.same_subject)(&admitted, &identity) {
                return Err("the token is for another user".to_owned());
            }
            let Some(expires_at) = expiry.live_until(&identity) else {
                return Err("the token has expired".to_owned());
            };
            Ok(Renewed {
                expires_at,
                apply: Box::new(move |values: &mut http::Extensions| {
                    values.insert(identity);
                    values.insert(Credential(secret.into()));
                }),
            })
        })
    }
}

/// The token a `Bearer` taking every source would find (for the fuzz target).
pub(crate) fn fuzz_token(req: &mut Request) -> Option<String> {
    async fn none(_: String) -> Option<()> {
        None
    }
    Bearer::header(none)
        .or_query("token")
        .or_protocol()
        .token(req)
}

/// `Bearer <token>`, with the scheme matched case-insensitively.
fn strip_scheme(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Removes `bearer.<token>` from `Sec-WebSocket-Protocol` and returns the
/// token.
fn take_protocol_token(req: &mut Request) -> Option<String> {
    let offered = offered_protocols(req.headers());
    let (tokens, rest): (Vec<String>, Vec<String>) = offered
        .into_iter()
        .partition(|p| p.starts_with(TOKEN_PROTOCOL_PREFIX));
    let token = tokens
        .into_iter()
        .next()?
        .split_off(TOKEN_PROTOCOL_PREFIX.len());
    let headers = req.headers_mut();
    headers.remove(header::SEC_WEBSOCKET_PROTOCOL);
    if !rest.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&rest.join(", ")) {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
        }
    }
    Some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)], uri: &str) -> Request {
        let mut b = http::Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        Request::new(
            b.body(()).unwrap().into_parts().0,
            "127.0.0.1:9".parse().unwrap(),
            Vec::new(),
            Default::default(),
        )
    }

    async fn never(_: String) -> Option<()> {
        None
    }

    #[test]
    fn a_reason_never_repeats_the_token() {
        assert_eq!(
            scrub("no session tok in tok-store", "tok"),
            "no session [redacted] in [redacted]-store"
        );
        assert_eq!(scrub("nothing to hide", "tok"), "nothing to hide");
        assert_eq!(scrub("an empty token", ""), "an empty token");
    }

    #[test]
    fn finds_tokens_in_source_order() {
        let b = Bearer::header(never).or_query("token").or_protocol();
        let mut req = request(
            &[("sec-websocket-protocol", "wsway.v1, bearer.P")],
            "/x?token=Q",
        );
        assert_eq!(b.token(&mut req).as_deref(), Some("Q"));
        // The protocol token is gone even though the query's was used.
        assert_eq!(req.protocols(), ["wsway.v1"]);

        let mut req = request(&[("authorization", "bearer  H ")], "/x?token=Q");
        assert_eq!(b.token(&mut req).as_deref(), Some("H"));
        let mut req = request(&[("sec-websocket-protocol", "bearer.P")], "/x");
        assert_eq!(b.token(&mut req).as_deref(), Some("P"));
        assert!(req.header("sec-websocket-protocol").is_none());
        let mut req = request(&[("authorization", "Basic abc")], "/x");
        assert_eq!(b.token(&mut req), None);
    }
}
