//! The application: the [`App`](crate::App) (routes, settings, topics)
//! and route [`Group`](crate::Group)s.
//!
//! Imports: every layer but the server, which serves an app.

pub(crate) mod application;
pub(crate) mod group;
pub(crate) mod readiness;
