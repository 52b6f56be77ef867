//! The RFC 6455 decoder alone: arbitrary bytes, split two ways, must read
//! the same within the limits.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wsway_protocol::fuzzing::decoder(data);
});
