//! `insight` core (pure Rust, no PyO3 types). See the module's issue for its scope.
