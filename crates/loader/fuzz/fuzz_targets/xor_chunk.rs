//! `cargo +nightly fuzz run xor_chunk` (from crates/loader/fuzz): the XOR chunk decoder on
//! arbitrary bytes, and on chunks Prometheus's encoder (mirrored in `remote_read_check.rs`)
//! writes for arbitrary samples.
#![no_main]

#[path = "../remote_read_check.rs"]
#[allow(dead_code)] // each target uses a part of the properties
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::chunk(data));
