//! kefu-projections: see ARCHITECTURE.md.
