//! Cross-crate tests live in tests/tests; this library holds what they, the benchmarks and
//! the `gen_history` tool share.

pub mod bench;
pub mod history;
pub mod sim;
pub mod source;
