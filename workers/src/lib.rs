//! kefu-workers: see ARCHITECTURE.md.
