//! `cargo +nightly fuzz run remote_read_frames` (from crates/loader/fuzz): the streamed
//! remote-read answer (frames, their checksums, the protobuf, the XOR chunks) on arbitrary bytes.
//! The properties live in `remote_read_check.rs`, which a stable test also runs.
#![no_main]

#[path = "../remote_read_check.rs"]
#[allow(dead_code)] // each target uses a part of the properties
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::frames(data));
