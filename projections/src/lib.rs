//! kefu-projections: see ARCHITECTURE.md.

pub mod search;
