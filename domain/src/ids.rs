//! Typed ids, so that a queue id can never be passed where an agent id is expected.
//!
//! Ids of things kefu creates are UUIDs chosen by the caller (the command service mints them;
//! the domain never generates ids, which keeps `decide` deterministic). Ids owned by the outside
//! world (the shop's order numbers, merchant ids) stay strings because we do not control their
//! format.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            JsonSchema,
        )]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub const fn from_uuid(id: Uuid) -> Self {
                $name(id)
            }

            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                $name(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
        )]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(raw: impl Into<String>) -> Self {
                $name(raw.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(raw: &str) -> Self {
                $name(raw.to_owned())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

uuid_id!(
    /// A customer (the shop's account, mirrored into kefu by the gateway).
    CustomerId
);
uuid_id!(
    /// One chat session.
    ConversationId
);
uuid_id!(
    /// A queue of conversations waiting for a human agent.
    QueueId
);
uuid_id!(
    /// A human agent.
    AgentId
);
uuid_id!(
    /// A ticket (工单).
    TicketId
);
uuid_id!(
    /// A knowledge-base (FAQ) entry; also the bot's answer id.
    KnowledgeEntryId
);
uuid_id!(
    /// The desk's switchboard (there is one: `switches::SWITCHBOARD`).
    SwitchBoardId
);
uuid_id!(
    /// One scheduled run of the probes (`probe::ProbeRunId::for_slot` derives it from the
    /// schedule slot, so two probe workers name the same run).
    ProbeRunId
);
uuid_id!(
    /// One message in a conversation. Chosen by the sender's client, so a retried send is
    /// recognised and recorded once.
    MessageId
);

string_id!(
    /// The shop's order number.
    OrderId
);
string_id!(
    /// A third-party (POP) merchant, as the shop names it.
    MerchantId
);
string_id!(
    /// A skill an agent has and a queue requires, e.g. `after-sales` or `lang:en`.
    Skill
);
string_id!(
    /// A product or business category, e.g. `mobile-phones`.
    Category
);
string_id!(
    /// A request scenario the triage model predicts, e.g. `refund-progress`.
    ScenarioCode
);
string_id!(
    /// A BCP 47 language tag such as `zh-CN`.
    Locale
);
