//! `insight` core (pure Rust, no PyO3 types): features, value models, lifecycle, cells, clustering.

pub mod kmeans;
