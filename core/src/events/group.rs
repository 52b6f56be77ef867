//! Event groups (a name prefix and shared checks) and per-event settings.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::call::{AsyncCall, SyncCall, marker};
use super::error::{EventError, Reply};
use super::routes::{Check, Route, Routes};
use crate::boxed::BoxFuture;
use crate::connection::socket::Ws;

/// An event being configured; returned by [`Events::on`](crate::Events::on).
/// `T` and `R` are its handler's data and reply types, for
/// [`EventRoute::typed`].
pub struct EventRoute<'a, D, T = (), R = ()> {
    pub(super) route: &'a mut Route<D>,
    pub(super) types: PhantomData<fn() -> (T, R)>,
}

impl<'a, D, T, R> EventRoute<'a, D, T, R> {
    pub(super) fn new(route: &'a mut Route<D>) -> Self {
        EventRoute {
            route,
            types: PhantomData,
        }
    }

    /// Adds a check for this event alone, run after the layer's and its
    /// groups'.
    pub fn middleware<F>(self, check: F) -> Self
    where
        F: Fn(&mut Ws<D>, &str) -> Result<(), EventError> + Send + Sync + 'static,
    {
        self.route.checks.push(Arc::new(check));
        self
    }

    /// The page elements a call of this event may render into: a client's
    /// `emit(event, data, { target })` with any other target is refused
    /// with `bad_target` before the handler runs. The handler answers with
    /// a [`Fragment`](crate::Fragment).
    pub fn targets<I, S>(self, targets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.route
            .targets
            .extend(targets.into_iter().map(Into::into));
        self
    }
}

#[cfg(feature = "typescript")]
impl<D, T, R> EventRoute<'_, D, T, R>
where
    T: ts_rs::TS + 'static,
    R: Reply,
    R::Data: ts_rs::TS + 'static,
{
    /// Puts this event in the app's TypeScript contract
    /// ([`Events::typescript`](crate::Events::typescript)), with its
    /// handler's data and reply types (both `ts_rs::TS`, derived beside
    /// `Serialize` and `Deserialize`). Feature `typescript`.
    pub fn typed(self) -> Self {
        let errors = self
            .route
            .shape
            .take()
            .map(|s| s.errors)
            .unwrap_or_default();
        self.route.shape = Some(super::contract::CallShape {
            data: super::contract::Collector::type_of::<T>,
            reply: super::contract::Collector::type_of::<R::Data>,
            errors,
        });
        self
    }

    /// The error codes this event's handler fails with, for the contract
    /// (the client's `EventError.code`); implies [`typed`](Self::typed).
    /// wsway's own codes (`bad_data`, `internal` ...) go without saying.
    pub fn errors<I, S>(self, codes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let this = if self.route.shape.is_none() {
            self.typed()
        } else {
            self
        };
        if let Some(shape) = &mut this.route.shape {
            shape.errors.extend(codes.into_iter().map(Into::into));
        }
        this
    }
}

/// Events sharing a name prefix and checks; see [`Events::group`](crate::Events::group).
pub struct EventGroup<'a, D> {
    routes: &'a mut Routes<D>,
    prefix: String,
    checks: Vec<Check<D>>,
    names: Vec<String>,
}

impl<'a, D: Send + 'static> EventGroup<'a, D> {
    pub(super) fn build(
        routes: &'a mut Routes<D>,
        prefix: String,
        build: impl FnOnce(&mut EventGroup<'_, D>),
    ) -> Vec<String> {
        let mut group = EventGroup {
            routes,
            prefix,
            checks: Vec::new(),
            names: Vec::new(),
        };
        build(&mut group);
        let EventGroup {
            routes,
            checks,
            names,
            ..
        } = group;
        for name in &names {
            if let Some(route) = routes.get_mut(name) {
                route.checks.splice(0..0, checks.iter().cloned());
            }
        }
        names
    }

    fn name(&mut self, event: &str) -> String {
        let name = format!("{}:{event}", self.prefix);
        self.names.push(name.clone());
        name
    }

    /// As [`Events::on`](crate::Events::on), for `prefix:event`.
    pub fn on<T, R, F>(&mut self, event: &str, handler: F) -> EventRoute<'_, D, T, R>
    where
        F: Fn(&mut Ws<D>, T) -> R + Send + Sync + 'static,
        T: DeserializeOwned + Send + 'static,
        R: Reply,
    {
        let name = self.name(event);
        EventRoute::new(
            self.routes
                .insert(name, Box::new(SyncCall(handler, marker()))),
        )
    }

    /// As [`Events::on_async`](crate::Events::on_async), for `prefix:event`.
    pub fn on_async<T, R, F>(&mut self, event: &str, handler: F) -> EventRoute<'_, D, T, R>
    where
        F: for<'b> Fn(&'b mut Ws<D>, T) -> BoxFuture<'b, R> + Send + Sync + 'static,
        T: DeserializeOwned + Send + 'static,
        R: Reply,
    {
        let name = self.name(event);
        EventRoute::new(
            self.routes
                .insert(name, Box::new(AsyncCall(handler, marker()))),
        )
    }

    /// Adds a check for every event in this group and its subgroups.
    pub fn middleware<F>(&mut self, check: F) -> &mut Self
    where
        F: Fn(&mut Ws<D>, &str) -> Result<(), EventError> + Send + Sync + 'static,
    {
        self.checks.push(Arc::new(check));
        self
    }

    /// A nested group, `prefix:inner:`.
    pub fn group(&mut self, prefix: &str, build: impl FnOnce(&mut EventGroup<'_, D>)) -> &mut Self {
        let inner = format!("{}:{prefix}", self.prefix);
        let names = EventGroup::build(self.routes, inner, build);
        self.names.extend(names);
        self
    }
}
