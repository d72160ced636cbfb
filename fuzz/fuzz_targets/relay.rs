//! The relay state machine under schedules drawn from fuzzer bytes: the same simulation
//! and invariants as `cargo test` (src/relay/sim.rs), with libFuzzer steering the choices.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ngx_http_websockify_module::relay::sim;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = sim::run(&mut sim::Bytes::new(data)) {
        panic!("{e}");
    }
});
