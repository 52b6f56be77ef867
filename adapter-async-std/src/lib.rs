//! Placeholder: the async-std adapter arrives with issue 3.
