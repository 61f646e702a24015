//! Given/when/then tests for every rule `decide` enforces: given the commands that built a
//! stream, when one more command arrives, then these events, or this typed refusal.

mod support;

mod agent;
mod conversation;
mod customer;
mod knowledge;
mod queue;
mod ticket;
