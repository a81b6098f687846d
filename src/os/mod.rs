//! The only place that talks to the operating system: one file per
//! platform family behind one small internal interface, chosen here.
//!
//! - `linux`: every mechanism the crate has, proved by the test suite.
//!
//! Code above this module names no platform: it asks for a capability
//! (lock, exclude from dumps, what a fork child sees, secret memory, ...)
//! and gets either the platform's own mechanism or a refusal it can turn
//! into `Error::Unsupported`.

mod linux;

pub(crate) use linux::*;
