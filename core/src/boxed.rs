//! The boxed future every type-erased seam returns (HTTP handlers,
//! middleware, routes, event handlers), in a module of its own so that
//! those seams depend on it rather than on each other.

use std::future::Future;
use std::pin::Pin;

/// A boxed, `Send` future borrowing for `'a`.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
