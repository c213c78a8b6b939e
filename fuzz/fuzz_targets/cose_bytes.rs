#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cleanroom_fuzz::policy::cose_bytes(data));
