//! The relay: one session per upgraded request, moving bytes both ways. `core` decides
//! everything and knows no nginx (the request layer's `relay.rs` performs its actions);
//! `buffer` and `pages` hold the data in flight; `clock` counts time past a 32-bit wrap; `sim` proves `core` through seeded
//! random schedules.

pub mod buffer;
pub mod clock;
pub mod core;
pub mod gate;
pub mod pages;
#[cfg(any(test, fuzzing))]
pub mod sim;
