//! The event layer fed arbitrary messages: envelopes, ids, typed data,
//! groups, and checks that close.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wsway::__fuzz::events(data);
});
