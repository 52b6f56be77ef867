//! A connection whose peer sends arbitrary bytes: frames, fragments, control
//! frames, close payloads, garbage.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wsway::__fuzz::connection(data);
});
