//! Placeholder: the smol adapter arrives with issue 3.
