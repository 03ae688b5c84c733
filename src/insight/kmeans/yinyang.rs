//! Lloyd iterations accelerated by Yinyang group bounds (work in progress: plain Lloyd for now).

pub use super::lloyd::run;
