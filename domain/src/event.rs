//! [`Event`]: any stored event, typed, whatever its stream. Readers of the whole log (read
//! models, search, workers, subscriptions) decode each event once into this and match on it,
//! instead of reading payload fields by name. `kefu-feed` pairs it with the log's envelope.

use serde_json::Value;

use crate::agent::AgentEvent;
use crate::conversation::ConversationEvent;
use crate::customer::CustomerEvent;
use crate::decider::DomainEvent;
use crate::error::DomainError;
use crate::knowledge::KnowledgeEvent;
use crate::probe::ProbeEvent;
use crate::queue::QueueEvent;
use crate::switches::SwitchEvent;
use crate::ticket::TicketEvent;

/// An event of any stream category.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Conversation(ConversationEvent),
    Agent(AgentEvent),
    Queue(QueueEvent),
    Ticket(TicketEvent),
    Knowledge(KnowledgeEvent),
    Customer(CustomerEvent),
    Switches(SwitchEvent),
    Probe(ProbeEvent),
    /// An event of a category the domain does not define (written by hand with
    /// `kefu log append`, or by another system sharing the log). Readers pass over it.
    Other,
}

impl Event {
    /// Every category the domain defines, in the order of the variants.
    pub const CATEGORIES: &'static [&'static str] = &[
        ConversationEvent::CATEGORY,
        AgentEvent::CATEGORY,
        QueueEvent::CATEGORY,
        TicketEvent::CATEGORY,
        KnowledgeEvent::CATEGORY,
        CustomerEvent::CATEGORY,
        SwitchEvent::CATEGORY,
        ProbeEvent::CATEGORY,
    ];

    /// The event stored in a stream of `category` under `event_type` and `schema_version`,
    /// upcast to the current version. A category the domain does not define is
    /// [`Event::Other`]; an unknown type or a newer version of a known category is an error,
    /// since that means this build is older than the log.
    pub fn decode(
        category: &str,
        event_type: &str,
        schema_version: u32,
        payload: Value,
    ) -> Result<Self, DomainError> {
        fn typed<E: DomainEvent>(
            event_type: &str,
            schema_version: u32,
            payload: Value,
        ) -> Result<E, DomainError> {
            E::decode(event_type, schema_version, payload)
        }
        let (t, v, p) = (event_type, schema_version, payload);
        Ok(match category {
            ConversationEvent::CATEGORY => Event::Conversation(typed(t, v, p)?),
            AgentEvent::CATEGORY => Event::Agent(typed(t, v, p)?),
            QueueEvent::CATEGORY => Event::Queue(typed(t, v, p)?),
            TicketEvent::CATEGORY => Event::Ticket(typed(t, v, p)?),
            KnowledgeEvent::CATEGORY => Event::Knowledge(typed(t, v, p)?),
            CustomerEvent::CATEGORY => Event::Customer(typed(t, v, p)?),
            SwitchEvent::CATEGORY => Event::Switches(typed(t, v, p)?),
            ProbeEvent::CATEGORY => Event::Probe(typed(t, v, p)?),
            _ => Event::Other,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::event_schemas;

    const AT: &str = "2026-01-02T03:04:05Z";

    /// One stored event of each category: (category, type, payload).
    fn one_of_each() -> Vec<(&'static str, &'static str, Value)> {
        vec![
            ("conversation", "SurveyOffered", json!({ "at": AT })),
            ("agent", "AgentRetired", json!({ "at": AT })),
            ("queue", "QueueChanged", json!({ "at": AT })),
            (
                "ticket",
                "TicketCommented",
                json!({ "author": { "kind": "customer" }, "body": "hi", "public": true, "at": AT }),
            ),
            (
                "knowledge",
                "KnowledgeEntryRetired",
                json!({ "reason": "stale", "at": AT }),
            ),
            (
                "customer",
                "CustomerLocaleChanged",
                json!({ "from": "zh-CN", "to": "en", "at": AT }),
            ),
            (
                "switches",
                "SwitchFlipped",
                json!({ "switch": "bot", "on": false, "reason": "drill", "at": AT }),
            ),
            (
                "probe",
                "ProbeRunStarted",
                json!({ "run": "0193a1f2-7c4e-7d2a-9b1e-3f5a6c7d8e9f", "slot": AT, "questions": 3, "at": AT }),
            ),
        ]
    }

    #[test]
    fn every_category_the_domain_defines_decodes_to_its_own_variant() {
        let defined: std::collections::BTreeSet<_> =
            event_schemas().iter().map(|s| s.category).collect();
        let listed: std::collections::BTreeSet<_> = Event::CATEGORIES.iter().copied().collect();
        assert_eq!(
            listed, defined,
            "Event::CATEGORIES must name every category"
        );

        let samples = one_of_each();
        assert_eq!(samples.len(), Event::CATEGORIES.len());
        for ((category, event_type, payload), expected) in
            samples.into_iter().zip(Event::CATEGORIES)
        {
            assert_eq!(category, *expected);
            let event = Event::decode(category, event_type, 1, payload)
                .unwrap_or_else(|e| panic!("{category}/{event_type}: {e}"));
            let variant_category = match &event {
                Event::Conversation(e) => (ConversationEvent::CATEGORY, e.event_type()),
                Event::Agent(e) => (AgentEvent::CATEGORY, e.event_type()),
                Event::Queue(e) => (QueueEvent::CATEGORY, e.event_type()),
                Event::Ticket(e) => (TicketEvent::CATEGORY, e.event_type()),
                Event::Knowledge(e) => (KnowledgeEvent::CATEGORY, e.event_type()),
                Event::Customer(e) => (CustomerEvent::CATEGORY, e.event_type()),
                Event::Switches(e) => (SwitchEvent::CATEGORY, e.event_type()),
                Event::Probe(e) => (ProbeEvent::CATEGORY, e.event_type()),
                Event::Other => panic!("{category} decoded as Other"),
            };
            assert_eq!(variant_category, (category, event_type));
        }
    }

    #[test]
    fn old_versions_are_upcast() {
        let event = Event::decode(
            "conversation",
            "SurveyAnswered",
            1,
            json!({ "score": 10, "at": AT }),
        )
        .unwrap();
        let Event::Conversation(ConversationEvent::SurveyAnswered(answer)) = event else {
            panic!("{event:?}");
        };
        assert_eq!((answer.score, answer.legacy_score_0_to_10), (5, Some(10)));
    }

    #[test]
    fn a_category_no_code_knows_is_other_whatever_its_payload() {
        let event = Event::decode("billing", "InvoiceSent", 7, json!("not even an object"));
        assert_eq!(event, Ok(Event::Other));
    }

    #[test]
    fn unknown_types_and_newer_versions_of_a_known_category_are_errors() {
        let unknown = Event::decode("conversation", "ConversationSung", 1, json!({ "at": AT }));
        assert!(
            matches!(unknown, Err(DomainError::UnknownEventType { category: "conversation", ref event_type }) if event_type == "ConversationSung"),
            "{unknown:?}"
        );
        let newer = Event::decode("agent", "AgentRetired", 2, json!({ "at": AT }));
        assert!(
            matches!(
                newer,
                Err(DomainError::UnsupportedSchemaVersion {
                    version: 2,
                    current: 1,
                    ..
                })
            ),
            "{newer:?}"
        );
    }
}
