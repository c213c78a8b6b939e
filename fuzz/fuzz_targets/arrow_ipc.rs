#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cleanroom_fuzz::tabular::arrow_ipc(data));
