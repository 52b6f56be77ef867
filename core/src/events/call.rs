//! Event handlers with their argument and reply types erased.

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::error::{EventError, Reply};
use crate::boxed::BoxFuture;
use crate::connection::socket::Ws;

/// An event handler with its argument and reply types erased. Returns the
/// acknowledgement's `data` as JSON (only when `ack` is set).
pub(super) trait Call<D>: Send + Sync {
    fn call<'a>(
        &'a self,
        ws: &'a mut Ws<D>,
        data: Option<&'a RawValue>,
        ack: bool,
    ) -> BoxFuture<'a, Result<String, EventError>>;
}
/// Names `T` and `R` in a handler wrapper without owning them.
pub(super) type Marker<T, R> = std::marker::PhantomData<fn(T) -> R>;

pub(super) fn marker<T, R>() -> Marker<T, R> {
    std::marker::PhantomData
}

pub(super) struct SyncCall<F, T, R>(pub(super) F, pub(super) Marker<T, R>);
pub(super) struct AsyncCall<F, T, R>(pub(super) F, pub(super) Marker<T, R>);

/// Deserializes a call's data (absent reads as `null`); a mismatch is the
/// client's `bad_data`.
fn typed<T: DeserializeOwned>(data: Option<&RawValue>) -> Result<T, EventError> {
    serde_json::from_str(data.map_or("null", RawValue::get))
        .map_err(|e| EventError::new("bad_data", e.to_string()))
}

/// Serializes a reply's data, when an ack will carry it.
fn reply<R: Reply>(r: R, ack: bool) -> Result<String, EventError> {
    let data = r.into_result()?;
    if !ack {
        return Ok(String::new());
    }
    Ok(serde_json::to_string(&data)?)
}

impl<D, F, T, R> Call<D> for SyncCall<F, T, R>
where
    D: Send + 'static,
    F: Fn(&mut Ws<D>, T) -> R + Send + Sync + 'static,
    T: DeserializeOwned + Send + 'static,
    R: Reply,
{
    fn call<'a>(
        &'a self,
        ws: &'a mut Ws<D>,
        data: Option<&'a RawValue>,
        ack: bool,
    ) -> BoxFuture<'a, Result<String, EventError>> {
        Box::pin(async move { reply((self.0)(ws, typed(data)?), ack) })
    }
}

impl<D, F, T, R> Call<D> for AsyncCall<F, T, R>
where
    D: Send + 'static,
    F: for<'b> Fn(&'b mut Ws<D>, T) -> BoxFuture<'b, R> + Send + Sync + 'static,
    T: DeserializeOwned + Send + 'static,
    R: Reply,
{
    fn call<'a>(
        &'a self,
        ws: &'a mut Ws<D>,
        data: Option<&'a RawValue>,
        ack: bool,
    ) -> BoxFuture<'a, Result<String, EventError>> {
        Box::pin(async move { reply((self.0)(ws, typed(data)?).await, ack) })
    }
}
