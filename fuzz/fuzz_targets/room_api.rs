#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cleanroom_fuzz::room::room_api(data));
