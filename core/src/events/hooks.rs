//! The hooks an [`Events`](crate::Events) calls around the connection's
//! life: its data from the request, open, close, joins, failures, errors.

use super::error::EventError;
use crate::boxed::BoxFuture;
use crate::connection::socket::Ws;
use crate::error::Error;
use crate::message::CloseCode;
use crate::web::body::Response;
use crate::web::request::Request;

pub(super) type DataHook<D> = Box<dyn Fn(&Request) -> Result<D, Response> + Send + Sync>;
/// A lifecycle hook, kept in the form it was given: a plain closure costs
/// no boxed future on each connection.
pub(super) enum Hook<S: ?Sized, A: ?Sized> {
    Sync(Box<S>),
    Async(Box<A>),
}
pub(super) type OpenHook<D> = Hook<
    dyn Fn(&mut Ws<D>) + Send + Sync,
    dyn for<'a> Fn(&'a mut Ws<D>) -> BoxFuture<'a, ()> + Send + Sync,
>;
pub(super) type CloseHook<D> = Hook<
    dyn Fn(&mut Ws<D>, CloseCode, &str) + Send + Sync,
    dyn for<'a> Fn(&'a mut Ws<D>, CloseCode, &'a str) -> BoxFuture<'a, ()> + Send + Sync,
>;
pub(super) type JoinHook<D> = Hook<
    dyn Fn(&mut Ws<D>, &str) -> Result<(), EventError> + Send + Sync,
    dyn for<'a> Fn(&'a mut Ws<D>, &'a str) -> BoxFuture<'a, Result<(), EventError>> + Send + Sync,
>;
pub(super) type FailureHook = Box<dyn Fn(&str, &EventError) + Send + Sync>;
pub(super) type ErrorHook<D> = Box<dyn Fn(&mut Ws<D>, &Error) + Send + Sync>;
