//! The guide: what wsway does and how to use it, chapter by chapter.
//! These pages are the repository's `docs/*.md`; every Rust block in them
//! compiles (and runs, unless marked `no_run`) under `cargo test`.

#[doc = include_str!("../../docs/handlers.md")]
pub mod handlers {}

#[doc = include_str!("../../docs/topics.md")]
pub mod topics {}

#[doc = include_str!("../../docs/nodes.md")]
pub mod nodes {}

#[doc = include_str!("../../docs/history.md")]
pub mod history {}

#[doc = include_str!("../../docs/events.md")]
pub mod events {}

#[doc = include_str!("../../docs/client.md")]
pub mod client {}

#[doc = include_str!("../../docs/testing.md")]
pub mod testing {}

#[doc = include_str!("../../docs/defaults.md")]
pub mod defaults {}

#[doc = include_str!("../../docs/deploying.md")]
pub mod deploying {}

#[doc = include_str!("../../docs/axum.md")]
pub mod axum {}

#[doc = include_str!("../../docs/http2.md")]
pub mod http2 {}

#[doc = include_str!("../../docs/server-api.md")]
pub mod server_api {}

#[doc = include_str!("../../docs/emitters.md")]
pub mod emitters {}

#[doc = include_str!("../../docs/admin.md")]
pub mod admin {}

#[doc = include_str!("../../docs/operating.md")]
pub mod operating {}

#[doc = include_str!("../../docs/runtimes.md")]
pub mod runtimes {}

#[doc = include_str!("../../docs/compression.md")]
pub mod compression {}

#[doc = include_str!("../../docs/conformance.md")]
pub mod conformance {}

#[doc = include_str!("../../docs/performance.md")]
pub mod performance {}
