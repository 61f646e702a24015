//! JSON Schemas of every event payload, as published in `schemas/events/`. The files are
//! generated from the Rust types; `tests/events.rs` fails when they are stale
//! (`KEFU_BLESS=1 cargo test -p kefu-domain --test events` regenerates them).

use crate::agent::AgentEvent;
use crate::conversation::ConversationEvent;
use crate::customer::CustomerEvent;
use crate::decider::{DomainEvent, EventSchema, canonical_json};
use crate::knowledge::KnowledgeEvent;
use crate::probe::ProbeEvent;
use crate::queue::QueueEvent;
use crate::switches::SwitchEvent;
use crate::ticket::TicketEvent;

/// Every event type of every stream, in stream order.
pub fn event_schemas() -> Vec<EventSchema> {
    [
        CustomerEvent::json_schemas(),
        ConversationEvent::json_schemas(),
        QueueEvent::json_schemas(),
        AgentEvent::json_schemas(),
        TicketEvent::json_schemas(),
        KnowledgeEvent::json_schemas(),
        SwitchEvent::json_schemas(),
        ProbeEvent::json_schemas(),
    ]
    .concat()
}

/// The file name a schema is published under.
pub fn file_name(schema: &EventSchema) -> String {
    format!("{}.json", schema.event_type)
}

/// The exact contents of a schema file: pretty JSON with sorted keys and a final newline.
pub fn file_contents(schema: &EventSchema) -> String {
    let mut text = serde_json::to_string_pretty(&canonical_json(&schema.schema))
        .unwrap_or_else(|e| format!("\"schema of {} did not serialize: {e}\"", schema.event_type));
    text.push('\n');
    text
}
