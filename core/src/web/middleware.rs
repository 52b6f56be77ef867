//! Middleware: checks that run on a request before its route does, and
//! before the `101` for a WebSocket route.
//!
//! A middleware passes (optionally attaching typed values with
//! [`Request::insert`]) or rejects with any HTTP response. Stacks come from
//! three places and run in this order: the app's ([`App::middleware`]), each
//! enclosing group's, outermost first ([`Group::middleware`]), and the
//! route's own ([`WsRoute::middleware`]). The first rejection answers the
//! request; nothing after it runs.
//!
//! [`App::middleware`]: crate::App::middleware
//! [`Group::middleware`]: crate::Group::middleware
//! [`WsRoute::middleware`]: crate::WsRoute::middleware

use std::future::Future;
use std::sync::Arc;

use crate::boxed::BoxFuture;
use crate::web::body::Response;
use crate::web::request::Request;

/// A check on a request before its route runs. Implement it for reusable,
/// async checks; [`from_fn`] wraps a plain closure.
///
/// ```
/// use wsway::{Middleware, Request, Response, StatusCode, text};
///
/// /// Refuses requests without an `X-Tenant` header; passes the tenant on.
/// struct Tenant;
///
/// #[derive(Clone)]
/// struct TenantId(String);
///
/// impl Middleware for Tenant {
///     async fn check(&self, req: &mut Request) -> Result<(), Response> {
///         let Some(tenant) = req.header("x-tenant").map(str::to_owned) else {
///             return Err(text(StatusCode::BAD_REQUEST, "X-Tenant header required"));
///         };
///         req.insert(TenantId(tenant));
///         Ok(())
///     }
/// }
/// ```
pub trait Middleware: Send + Sync + 'static {
    /// Passes the request on (`Ok`) or answers it (`Err`).
    fn check(&self, req: &mut Request) -> impl Future<Output = Result<(), Response>> + Send;
}

/// A middleware made of a synchronous closure; see [`from_fn`].
pub struct FromFn<F>(F);

/// Middleware from a closure, for checks that need no `await`:
///
/// ```
/// use wsway::{App, IntoResponse, StatusCode, middleware, on_message};
///
/// let mut app = App::new();
/// app.middleware(middleware::from_fn(|req| {
///     match req.header("user-agent") {
///         Some(ua) if ua.contains("BadBot") => Err(StatusCode::FORBIDDEN.into_response()),
///         _ => Ok(()),
///     }
/// }));
/// # app.ws("/echo", on_message(|ws, msg| { ws.send(msg); }));
/// ```
pub fn from_fn<F>(f: F) -> FromFn<F>
where
    F: Fn(&mut Request) -> Result<(), Response> + Send + Sync + 'static,
{
    FromFn(f)
}

impl<F> Middleware for FromFn<F>
where
    F: Fn(&mut Request) -> Result<(), Response> + Send + Sync + 'static,
{
    fn check(&self, req: &mut Request) -> impl Future<Output = Result<(), Response>> + Send {
        std::future::ready((self.0)(req))
    }
}

/// A middleware with its type erased, so stacks can mix them.
pub(crate) trait Erased: Send + Sync + 'static {
    fn check<'a>(&'a self, req: &'a mut Request) -> BoxFuture<'a, Result<(), Response>>;
}

impl<M: Middleware> Erased for M {
    fn check<'a>(&'a self, req: &'a mut Request) -> BoxFuture<'a, Result<(), Response>> {
        Box::pin(Middleware::check(self, req))
    }
}

/// A stack of middleware, run in order.
pub(crate) type Stack = Vec<Arc<dyn Erased>>;

/// Runs the stacks in order; the first rejection wins.
pub(crate) async fn run(stacks: &[&Stack], req: &mut Request) -> Result<(), Response> {
    for m in stacks.iter().flat_map(|s| s.iter()) {
        m.check(req).await?;
    }
    Ok(())
}
