//! The event layer: named JSON events routed to typed handlers, with
//! acknowledgements, on top of the raw [`Handler`] trait.
//!
//! [`Events`] *is* a [`Handler`]: register it on a route like any other.
//! The wire format is in the README ("Events") and in `envelope`.

mod ack;
mod call;
#[cfg(feature = "typescript")]
mod contract;
pub(crate) mod envelope;
mod error;
mod fragment;
mod group;
mod hooks;
mod join;
mod layer;
mod routes;

pub use error::{EventError, Reply};
pub use fragment::{Fragment, RENDER_EVENT, escape_html};
pub use group::{EventGroup, EventRoute};
pub use join::{JOIN_EVENT, LEAVE_EVENT};
pub use layer::{EVENTS_PROTOCOL, Events, GAP_EVENT};
