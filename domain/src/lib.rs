//! kefu-domain: see ARCHITECTURE.md.
