//! `insight` core (pure Rust, no PyO3 types): features, value models, lifecycle, cells, clustering.

pub mod cells;
pub mod features;
pub mod kmeans;
pub mod lifecycle;
pub mod value;
