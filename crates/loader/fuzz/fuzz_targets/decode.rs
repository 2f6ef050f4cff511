//! `cargo +nightly fuzz run decode` (from crates/loader/fuzz): the response decoder on arbitrary
//! bodies. The properties live in `check.rs`, which a stable test also runs over the recorded
//! fixtures and mutations of them.
#![no_main]

#[path = "../check.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::body(data));
