//! An arbitrary request head through every upgrade-request check.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wsway::__fuzz::handshake(data);
});
