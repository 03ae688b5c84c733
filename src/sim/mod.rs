//! `sim` core (pure Rust, no PyO3 types): the synthetic population and environment with ground
//! truth. See `growthmachine.sim` for the Python API and the documented default world.
//!
//! - [`config`]: the serde mirror of `WorldConfig`, validated with dotted field paths;
//! - [`model`]: prepared tables and per-user parameters drawn from per-user streams;
//! - [`population`]: users, hidden truth and a buy-till-you-die order history;
//! - [`env`]: the world's state per user, applying a window, exact expected effects (true uplift);
//! - [`treatments`]: a window's treatment table checked (ranges, channel rules) and grouped by user;
//! - [`response`]: the response model of one user to its touches, drawn and in expectation;
//! - [`expected`]: the expected outcome of a whole treatment table, without advancing the world;
//! - [`sessions`]: the multi-step site-visit stream for the real-time engine.

pub mod config;
pub mod defaults;
pub mod env;
pub mod expected;
pub mod model;
pub mod oracle;
pub mod population;
pub mod response;
pub mod sessions;
pub mod treatments;

#[cfg(test)]
mod tests;
