#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cleanroom_fuzz::formats::pme_key_material(data));
