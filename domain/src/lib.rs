//! # kefu-domain
//!
//! The customer-service domain of kefu, with no I/O: no clocks, no random ids, no storage, no
//! async. Everything here is a pure function of its inputs, so the same commands always give
//! the same events, and a stream always loads to the same state.
//!
//! ## Streams
//!
//! Each stream category is a [`Decider`]: `decide(&state, command)` applies the rules and
//! returns the events that record what happened (or a typed [`DomainError`]), `evolve(state,
//! &event)` applies one event, and `initial_state()` is the state of an empty stream.
//!
//! | module | stream | what it records |
//! |---|---|---|
//! | [`customer`] | `customer-<id>` | profile (tier, locale) and orders imported from the shop |
//! | [`conversation`] | `conversation-<id>` | one chat: turns, bot, emotion, triage, queue, agent, close, survey, conversion |
//! | [`queue`] | `queue-<id>` | business line, categories, skills, priority, SLA, opening hours |
//! | [`agent`] | `agent-<id>` | skills, concurrent-chat limit, presence, chats held |
//! | [`ticket`] | `ticket-<id>` | 工单: status machine, fields, comments, escalation, merge |
//! | [`knowledge`] | `knowledge-<id>` | FAQ entries the bot answers with |
//! | [`switches`] | `switches-<id>` | the degradation switches (one switchboard) |
//! | [`probe`] | `probe-<run id>` | one scheduled run of the probes: questions asked, how many the bot answered right |
//!
//! ## Time and ids come in with the command
//!
//! Every command carries `at`, and commands that create something carry its id; `decide`
//! copies them into the events. The command service reads the clock and mints UUIDv7 ids.
//!
//! ## Rules that span streams
//!
//! A decider only sees its own stream. When a rule needs another stream (routing needs the
//! queue, assignment needs the agent, a bot answer needs the FAQ entry), the command carries a
//! *snapshot* the command service built by folding that stream: [`queue::QueueSnapshot`],
//! [`agent::AgentSnapshot`], [`knowledge::KnowledgeEntrySnapshot`],
//! [`customer::CustomerSnapshot`], [`conversation::ConversationSnapshot`],
//! [`ticket::TicketSnapshot`]. Each is `Unknown(id)` when the stream does not exist,
//! `Retired(id)` where the thing can be retired, or the current state, and has a
//! `require_…` method that turns the first two into [`DomainError::UnknownQueue`],
//! [`DomainError::QueueRetired`] and so on. Build one with the state's `snapshot(id)`.
//!
//! A snapshot can be stale by the time the conversation's events are appended, so where a
//! limit must hold under concurrency the stream that owns it guards it too. Capacity is the
//! case: the command service first appends `AgentCommand::TakeChat` to the agent's stream
//! (refused when the agent is offline, away or full), under optimistic concurrency on that
//! stream, and only then `ConversationCommand::AssignAgent` with the agent's fresh snapshot,
//! which sees the seat already held. If the assignment is then refused, it sends
//! `ReleaseChat`. `ConversationClosed::released_agent` and `ConversationTransferred::from_agent`
//! tell the worker whose seat to release afterwards.
//!
//! ## Streams and events on the log
//!
//! [`Decider::stream_id`] names an entity's stream (`ConversationDecider::stream_id(id)` is
//! `conversation-<uuid>`) and [`Decider::id_of_stream`] reads the id back. A new stream's
//! first command is decided against `initial_state()`, so the command service appends it
//! expecting the stream to be empty.
//!
//! [`DomainEvent`] maps each event to the log's envelope: [`DomainEvent::encode`] gives the
//! type name (e.g. `ConversationStarted`), the schema version new events are written with, and
//! a JSON object payload without the type tag; [`DomainEvent::decode`] takes the three back
//! and upcasts older versions first (see [`upcast`]: `SurveyAnswered` v1, a 0-10 score, reads
//! as v2, 1-5 stars). [`Event`] is any of them, decoded by its stream's category: how readers
//! of the whole log see an event (`kefu-feed` pairs it with the log's envelope).
//!
//! ## JSON Schemas
//!
//! `schemas/events/<EventType>.json` holds the schema of every payload, generated from these
//! types by [`schema::event_schemas`]. The test `tests/events.rs` fails when the files are
//! stale; after changing an event type, regenerate them with
//!
//! ```text
//! KEFU_BLESS=1 cargo test -p kefu-domain --test events
//! ```
//!
//! and commit them with the change. A change that breaks old payloads needs a new schema
//! version in the stream's `domain_events!` list and an upcaster step in [`upcast`].

pub mod agent;
pub mod common;
pub mod conversation;
pub mod customer;
pub mod decider;
pub mod error;
pub mod event;
pub mod ids;
pub mod knowledge;
pub mod probe;
pub mod queue;
pub mod schema;
pub mod switches;
pub mod ticket;
pub mod upcast;

pub use decider::{
    Decider, DomainEvent, EncodedEvent, EventSchema, already_reacted, decide_all, fold, fold_from,
};
pub use error::DomainError;
pub use event::Event;
