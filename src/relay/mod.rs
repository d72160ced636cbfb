//! The relay: one session per upgraded request, moving bytes both ways inside the event
//! loop. `core` decides everything and knows no nginx; `glue` connects it to nginx;
//! `sim` proves `core` through seeded random schedules.

pub mod core;
#[cfg(not(any(test, fuzzing)))]
mod glue;
#[cfg(any(test, fuzzing))]
pub mod sim;

#[cfg(not(any(test, fuzzing)))]
pub(crate) use glue::{fail, session_of, start, Session};
