//! Route groups: a path prefix and a middleware stack shared by the routes
//! registered inside, nesting like axum's `nest`.

use std::future::Future;
use std::sync::Arc;

use crate::app::application::{App, Entry, WsRoute};
use crate::connection::handler::Handler;
use crate::web::body::IntoResponse;
use crate::web::middleware::{Middleware, Stack};
use crate::web::request::Request;
use crate::web::router::RouteError;

/// Routes sharing a path prefix and middleware; see [`App::group`].
pub struct Group<'a> {
    app: &'a mut App,
    prefix: String,
    stack: Stack,
    /// Full patterns registered in this group or its subgroups.
    paths: Vec<String>,
}

impl App {
    /// Adds a group of routes sharing a path prefix and a middleware stack;
    /// groups nest. A group's middleware applies to every route registered
    /// in it, wherever the call appears in the closure.
    ///
    /// ```
    /// use wsway::{App, IntoResponse, Origins, StatusCode, middleware, on_message};
    ///
    /// let mut app = App::new();
    /// app.group("/api", |api| {
    ///     api.middleware(Origins::only(["https://app.example.com"]));
    ///     api.ws("/echo", on_message(|ws, msg| { ws.send(msg); })); // /api/echo
    ///     api.group("/admin", |admin| {
    ///         admin.middleware(middleware::from_fn(|req| match req.header("x-admin") {
    ///             Some("yes") => Ok(()),
    ///             _ => Err(StatusCode::FORBIDDEN.into_response()),
    ///         }));
    ///         admin.get("/stats", |_req| async { "ok" }); // /api/admin/stats
    ///     });
    /// });
    /// ```
    ///
    /// # Panics
    ///
    /// As [`App::ws`], when a route in the group cannot be registered.
    pub fn group(&mut self, prefix: &str, build: impl FnOnce(&mut Group<'_>)) -> &mut Self {
        Group::build(self, "", prefix, build);
        self
    }
}

impl<'a> Group<'a> {
    /// Runs `build` on a group under `parent` + `prefix`, then puts the
    /// group's stack in front of every route it registered. Returns those
    /// routes' patterns, so an enclosing group can do the same.
    pub(crate) fn build(
        app: &'a mut App,
        parent: &str,
        prefix: &str,
        build: impl FnOnce(&mut Group<'_>),
    ) -> Vec<String> {
        if !prefix.starts_with('/') {
            panic!("invalid group prefix `{prefix}`: a prefix must start with `/`");
        }
        let mut group = Group {
            prefix: join(parent, prefix),
            app,
            stack: Stack::new(),
            paths: Vec::new(),
        };
        build(&mut group);
        let Group {
            app, stack, paths, ..
        } = group;
        for path in &paths {
            if let Ok(entry) = app.router.entry(path, Entry::default) {
                entry.middleware.splice(0..0, stack.iter().cloned());
            }
        }
        paths
    }

    /// Adds middleware for every route in this group and its subgroups, run
    /// after the enclosing groups' and before the routes' own.
    pub fn middleware(&mut self, middleware: impl Middleware) -> &mut Self {
        self.stack.push(Arc::new(middleware));
        self
    }

    /// Adds a WebSocket route at the group's prefix + `path`; as [`App::ws`].
    ///
    /// # Panics
    ///
    /// As [`App::ws`].
    pub fn ws<H: Handler>(&mut self, path: &str, handler: H) -> WsRoute<'_> {
        match self.try_ws(path, handler) {
            Ok(route) => route,
            Err(e) => panic!("{e}"),
        }
    }

    /// Adds a WebSocket route, or says why the pattern cannot be added.
    pub fn try_ws<H: Handler>(
        &mut self,
        path: &str,
        handler: H,
    ) -> Result<WsRoute<'_>, RouteError> {
        let full = self.track(path);
        self.app.try_ws(&full, handler)
    }

    /// Adds a `GET` route at the group's prefix + `path`; as [`App::get`].
    ///
    /// # Panics
    ///
    /// As [`App::ws`].
    pub fn get<F, Fut, R>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse,
    {
        let full = self.track(path);
        self.app.get(&full, handler);
        self
    }

    /// Adds a nested group under this group's prefix + `prefix`.
    pub fn group(&mut self, prefix: &str, build: impl FnOnce(&mut Group<'_>)) -> &mut Self {
        let paths = Group::build(self.app, &self.prefix, prefix, build);
        for path in paths {
            self.remember(path);
        }
        self
    }

    fn track(&mut self, path: &str) -> String {
        let full = join(&self.prefix, path);
        self.remember(full.clone());
        full
    }

    fn remember(&mut self, path: String) {
        if !self.paths.contains(&path) {
            self.paths.push(path);
        }
    }
}

/// `/api` + `/chat` → `/api/chat`; `/api` + `/` → `/api`.
fn join(prefix: &str, path: &str) -> String {
    if !path.is_empty() && !path.starts_with('/') {
        // Left as is, so registering it reports the missing `/`.
        return path.to_owned();
    }
    let prefix = prefix.trim_end_matches('/');
    match path {
        "" | "/" if !prefix.is_empty() => prefix.to_owned(),
        _ => format!("{prefix}{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::join;

    #[test]
    fn joins_prefixes() {
        assert_eq!(join("", "/api"), "/api");
        assert_eq!(join("/api", "/chat/:room"), "/api/chat/:room");
        assert_eq!(join("/api/", "/x"), "/api/x");
        assert_eq!(join("/api", "/"), "/api");
        assert_eq!(join("", "/"), "/");
    }
}
