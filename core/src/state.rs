//! Shared application state: values set once on the [`App`](crate::App)
//! and read from every request and connection by type, without a clone in
//! every closure (axum's `State`, looked up by type).

use std::any::type_name;
use std::sync::Arc;

/// The app's state values, shared by every request and connection.
#[derive(Clone, Default)]
pub(crate) struct AppState(Arc<http::Extensions>);

impl AppState {
    pub(crate) fn insert<T: Clone + Send + Sync + 'static>(&mut self, value: T) {
        Arc::make_mut(&mut self.0).insert(value);
    }

    /// The value of type `T`.
    ///
    /// # Panics
    ///
    /// When the app has none: that is a setup mistake, found on first use,
    /// and the message says what to add.
    pub(crate) fn get<T: Send + Sync + 'static>(&self) -> &T {
        self.0.get::<T>().unwrap_or_else(|| {
            panic!(
                "no app state of type `{}`: add it with `app.state(value)`",
                type_name::<T>()
            )
        })
    }
}
