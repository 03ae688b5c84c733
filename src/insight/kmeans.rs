//! KMeans clustering core (pure Rust).
