//! permessage-deflate alone: arbitrary offers and compressed messages
//! (bombs, truncated streams, bad window bits) must be refused or read
//! within the limit, never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wsway_protocol::fuzzing::deflate(data);
});
