//! Mutations: each is a desk operation (one or more commands), checked against the caller's
//! role first. A refused mutation writes nothing. Each returns a [`Receipt`] with the log
//! position its events reached and the request's correlation id, and takes an
//! `idempotencyKey` that makes a resend answer the first receipt (`idempotency.rs`).

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use async_graphql::{Context, InputObject, Object, Result};
use kefu_desk::Done;
use kefu_desk::{MANUAL_ROUTING, NewEntry, NewTicket, QueueDefinition, TicketUpdate, Transfer};
use kefu_domain::agent::AgentEvent;
use kefu_domain::common::{BusinessLine, Party};
use kefu_domain::conversation::ConversationEvent;
use kefu_domain::conversation::{HandoffReason, RoutingReason};
use kefu_domain::customer::CustomerEvent;
use kefu_domain::decider::DomainEvent;
use kefu_domain::ids::{
    AgentId, Category, ConversationId, CustomerId, KnowledgeEntryId, Locale, MerchantId, MessageId,
    OrderId, QueueId, ScenarioCode, Skill, TicketId,
};
use kefu_domain::knowledge::KnowledgeEdit;
use kefu_domain::knowledge::KnowledgeEvent;
use kefu_domain::queue::QueueEvent;
use kefu_domain::queue::{OpeningHours, SlaTargets};
use kefu_domain::switches::SwitchEvent;
use kefu_domain::ticket::TicketEdit;
use kefu_domain::ticket::TicketEvent;

use super::idempotency::{Effect, IdOf, IdempotencyKey, Keyed};
use super::integration::OrderInput;
use super::policy::{self, Root, require};
use super::types::{
    AgentStatus, Channel, CloseReason, FaultState, FaultTarget, Receipt, Switch, TicketKind,
    TicketPriority, TicketStatus,
};
use super::views::CustomerTier;
use super::{Api, ApiError, Caller, api, caller, uuid};
use crate::auth::{Principal, Role};

pub struct Mutation;

/// Runs a mutation's body once the caller's role may run the field: once per idempotency key
/// when the caller sent one (the body then gets the caller with the key's correlation id),
/// else simply. `effect` says how the receipt is read back from the log after a crash.
async fn once<F, Fut>(
    ctx: &Context<'_>,
    key: Option<IdempotencyKey>,
    effect: Effect,
    body: F,
) -> Result<Receipt>
where
    F: FnOnce(Arc<Api>, Caller) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Receipt, ApiError>> + Send + 'static,
{
    let (api, caller) = (api(ctx).clone(), caller(ctx)?.clone());
    let field = ctx.field();
    require(&caller, Root::Mutation, field.name())?;
    let Some(key) = key else {
        return Ok(body(api, caller).await?);
    };
    let request = Keyed::new(&caller.principal, key, field.name(), &field.arguments()?);
    let (keys, log) = (api.keys.clone(), api.log.clone());
    let receipt = keys
        .once(&*log, &request, &effect, move |correlation| {
            body(
                api,
                Caller {
                    correlation,
                    ..caller
                },
            )
        })
        .await?;
    // The answer's X-Correlation-Id names the correlation the events carry: the key's.
    ctx.insert_http_header("x-correlation-id", receipt.correlation_id.clone());
    Ok(receipt)
}

const CONVERSATION: &str = ConversationEvent::CATEGORY;
const TICKET: &str = TicketEvent::CATEGORY;
const QUEUE: &str = QueueEvent::CATEGORY;
const AGENT: &str = AgentEvent::CATEGORY;
const KNOWLEDGE: &str = KnowledgeEvent::CATEGORY;
const CUSTOMER: &str = CustomerEvent::CATEGORY;
const SWITCHES: &str = SwitchEvent::CATEGORY;

/// A mutation that creates a stream of `category`; its receipt's id is the new stream's.
fn creates(category: &'static str) -> Effect {
    Effect {
        category,
        id: IdOf::Stream,
    }
}

/// A mutation that changes a stream of `category` and returns no id.
fn changes(category: &'static str) -> Effect {
    Effect {
        category,
        id: IdOf::Nothing,
    }
}

fn receipt<T: ToString>(caller: &Caller, done: Done<T>) -> Receipt {
    Receipt {
        id: Some(done.value.to_string()),
        position: done.position.map(|p| p.0.to_string()),
        correlation_id: caller.correlation.to_string(),
    }
}

fn receipt_of(caller: &Caller, done: Done<()>) -> Receipt {
    Receipt {
        id: None,
        position: done.position.map(|p| p.0.to_string()),
        correlation_id: caller.correlation.to_string(),
    }
}

/// The party a ticket or conversation change is recorded as.
fn party(p: &Principal) -> Result<Party, ApiError> {
    Ok(match p.role {
        Role::Customer => Party::Customer,
        Role::Agent => Party::Agent {
            agent: policy::agent_id(p)?,
        },
        _ => Party::System,
    })
}

/// Messages longer than this are refused before anything is written.
fn check_text(api: &Api, field: &str, text: &str) -> Result<(), ApiError> {
    let chars = text.chars().count();
    if chars > api.limits.max_message_chars {
        return Err(ApiError::Validation(format!(
            "{field}: {chars} characters; the limit is {}",
            api.limits.max_message_chars
        )));
    }
    Ok(())
}

#[derive(InputObject)]
pub struct QueueInput {
    pub name: String,
    /// The merchant whose own team runs the queue; absent for the self-operated business.
    pub merchant: Option<String>,
    /// The order categories it serves: at least one.
    pub categories: Vec<String>,
    #[graphql(default)]
    pub skills: Vec<String>,
    #[graphql(default = 5)]
    pub priority: i32,
    pub first_response_secs: i32,
    pub resolution_secs: i32,
}

#[derive(InputObject)]
pub struct TicketInput {
    pub customer: String,
    pub conversation_id: Option<String>,
    pub kind: TicketKind,
    #[graphql(default_with = "TicketPriority::Normal")]
    pub priority: TicketPriority,
    pub subject: String,
    pub description: String,
    pub order_id: Option<String>,
}

fn u32_of(field: &str, v: i32) -> Result<u32, ApiError> {
    u32::try_from(v).map_err(|_| ApiError::Validation(format!("{field}: must not be negative")))
}

#[Object]
impl Mutation {
    /// A customer starts a chat. Returns the conversation id.
    async fn start_conversation(
        &self,
        ctx: &Context<'_>,
        channel: Channel,
        order_id: Option<String>,
        locale: Option<String>,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        once(
            ctx,
            idempotency_key,
            creates(CONVERSATION),
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                let p = &caller.principal;
                let customer = policy::customer_id(p)?;
                if channel == Channel::Probe {
                    return Err(ApiError::Validation(
                        "channel: PROBE is kefu's own probes' channel; use WEB, APP, PC or IVR"
                            .into(),
                    ));
                }
                let done = api
                    .desk
                    .start_conversation(
                        customer,
                        locale.map(Locale::new),
                        channel.into(),
                        order_id.map(OrderId::new),
                        // With the bot switched off, conversations go straight to humans.
                        api.desk
                            .switchboard()
                            .await
                            .map_err(ApiError::from)?
                            .is_on(kefu_domain::switches::Switch::Bot),
                        &caller.metadata(),
                    )
                    .await
                    .map_err(ApiError::from)?;
                Ok(receipt(caller, done))
            },
        )
        .await
    }

    /// The customer, or the agent who has the conversation, writes a message. Resending with
    /// the same `messageId` records it once.
    async fn send_message(
        &self,
        ctx: &Context<'_>,
        conversation_id: String,
        text: String,
        message_id: Option<String>,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        once(
            ctx,
            idempotency_key,
            Effect {
                category: CONVERSATION,
                id: IdOf::Message,
            },
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                let p = &caller.principal;
                check_text(api, "text", &text)?;
                let conversation =
                    ConversationId::from_uuid(uuid("conversationId", &conversation_id)?);
                let message = match message_id {
                    Some(m) => MessageId::from_uuid(uuid("messageId", &m)?),
                    None => MessageId::from_uuid(api.desk.commands().new_id()),
                };
                policy::conversation(api, caller, conversation).await?;
                let meta = caller.metadata();
                let done = if p.role == Role::Customer {
                    api.desk
                        .customer_message(conversation, message, text, &meta)
                        .await
                } else {
                    api.desk
                        .agent_message(conversation, policy::agent_id(p)?, message, text, &meta)
                        .await
                }
                .map_err(ApiError::from)?;
                Ok(receipt(caller, done))
            },
        )
        .await
    }

    /// The customer confirms or corrects the predicted scenario.
    async fn confirm_scenario(
        &self,
        ctx: &Context<'_>,
        conversation_id: String,
        scenario: String,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        once(
            ctx,
            idempotency_key,
            changes(CONVERSATION),
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                let conversation =
                    ConversationId::from_uuid(uuid("conversationId", &conversation_id)?);
                policy::conversation(api, caller, conversation).await?;
                let done = api
                    .desk
                    .settle_scenario(
                        conversation,
                        ScenarioCode::new(scenario),
                        &caller.metadata(),
                    )
                    .await
                    .map_err(ApiError::from)?;
                Ok(receipt_of(caller, done))
            },
        )
        .await
    }

    /// The customer asks for a human (转人工).
    async fn request_human(
        &self,
        ctx: &Context<'_>,
        conversation_id: String,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        once(
            ctx,
            idempotency_key,
            changes(CONVERSATION),
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                let conversation =
                    ConversationId::from_uuid(uuid("conversationId", &conversation_id)?);
                policy::conversation(api, caller, conversation).await?;
                let done = api
                    .desk
                    .hand_off(
                        conversation,
                        HandoffReason::CustomerAsked,
                        &caller.metadata(),
                    )
                    .await
                    .map_err(ApiError::from)?;
                Ok(receipt_of(caller, done))
            },
        )
        .await
    }

    /// A supervisor (or admin) sends a conversation waiting for a human to a queue.
    async fn route_conversation(
        &self,
        ctx: &Context<'_>,
        conversation_id: String,
        queue_id: String,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        once(
            ctx,
            idempotency_key,
            changes(CONVERSATION),
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                let queue = QueueId::from_uuid(uuid("queueId", &queue_id)?);
                policy::require_queue(caller, queue)?;
                let conversation =
                    ConversationId::from_uuid(uuid("conversationId", &conversation_id)?);
                let reasons = vec![RoutingReason::Other {
                    code: format!("manual:{}", caller.principal.role),
                }];
                let done = api
                    .desk
                    .route(
                        conversation,
                        queue,
                        reasons,
                        MANUAL_ROUTING,
                        Default::default(),
                        &caller.metadata(),
                    )
                    .await
                    .map_err(ApiError::from)?;
                Ok(receipt_of(caller, done))
            },
        )
        .await
    }

    /// An agent takes a conversation waiting in one of their queues.
    async fn accept_conversation(
        &self,
        ctx: &Context<'_>,
        conversation_id: String,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        once(
            ctx,
            idempotency_key,
            changes(CONVERSATION),
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                let p = &caller.principal;
                let conversation =
                    ConversationId::from_uuid(uuid("conversationId", &conversation_id)?);
                policy::conversation(api, caller, conversation).await?;
                let done = api
                    .desk
                    .assign(conversation, policy::agent_id(p)?, &caller.metadata())
                    .await
                    .map_err(ApiError::from)?;
                Ok(receipt_of(caller, done))
            },
        )
        .await
    }

    /// A supervisor gives a queued conversation of their queue to an agent.
    async fn assign_conversation(
        &self,
        ctx: &Context<'_>,
        conversation_id: String,
        agent_id: String,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        once(
            ctx,
            idempotency_key,
            changes(CONVERSATION),
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                let conversation =
                    ConversationId::from_uuid(uuid("conversationId", &conversation_id)?);
                policy::conversation(api, caller, conversation).await?;
                let agent = AgentId::from_uuid(uuid("agentId", &agent_id)?);
                let done = api
                    .desk
                    .assign(conversation, agent, &caller.metadata())
                    .await
                    .map_err(ApiError::from)?;
                Ok(receipt_of(caller, done))
            },
        )
        .await
    }

    /// The agent who has a conversation hands it to another agent or back to a queue.
    async fn transfer_conversation(
        &self,
        ctx: &Context<'_>,
        conversation_id: String,
        to_agent: Option<String>,
        to_queue: Option<String>,
        reason: String,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        once(
            ctx,
            idempotency_key,
            changes(CONVERSATION),
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                let p = &caller.principal;
                let conversation =
                    ConversationId::from_uuid(uuid("conversationId", &conversation_id)?);
                let to = match (to_agent, to_queue) {
                    (Some(a), None) => Transfer::ToAgent(AgentId::from_uuid(uuid("toAgent", &a)?)),
                    (None, Some(q)) => Transfer::ToQueue(QueueId::from_uuid(uuid("toQueue", &q)?)),
                    _ => {
                        return Err(ApiError::Validation(
                            "name exactly one of toAgent and toQueue".into(),
                        ));
                    }
                };
                policy::conversation(api, caller, conversation).await?;
                let done = api
                    .desk
                    .transfer(
                        conversation,
                        policy::agent_id(p)?,
                        to,
                        reason,
                        &caller.metadata(),
                    )
                    .await
                    .map_err(ApiError::from)?;
                Ok(receipt_of(caller, done))
            },
        )
        .await
    }

    /// An internal note, for agents only.
    async fn add_note(
        &self,
        ctx: &Context<'_>,
        conversation_id: String,
        text: String,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        once(
            ctx,
            idempotency_key,
            changes(CONVERSATION),
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                let p = &caller.principal;
                check_text(api, "text", &text)?;
                let conversation =
                    ConversationId::from_uuid(uuid("conversationId", &conversation_id)?);
                policy::conversation(api, caller, conversation).await?;
                let done = api
                    .desk
                    .add_note(conversation, policy::agent_id(p)?, text, &caller.metadata())
                    .await
                    .map_err(ApiError::from)?;
                Ok(receipt_of(caller, done))
            },
        )
        .await
    }

    /// The customer, or the agent who has it, closes a conversation.
    async fn close_conversation(
        &self,
        ctx: &Context<'_>,
        conversation_id: String,
        #[graphql(default_with = "CloseReason::Resolved")] reason: CloseReason,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        once(
            ctx,
            idempotency_key,
            changes(CONVERSATION),
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                let p = &caller.principal;
                let conversation =
                    ConversationId::from_uuid(uuid("conversationId", &conversation_id)?);
                policy::conversation(api, caller, conversation).await?;
                let done = api
                    .desk
                    .close(conversation, party(p)?, reason.into(), &caller.metadata())
                    .await
                    .map_err(ApiError::from)?;
                Ok(receipt_of(caller, done))
            },
        )
        .await
    }

    async fn reopen_conversation(
        &self,
        ctx: &Context<'_>,
        conversation_id: String,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        once(
            ctx,
            idempotency_key,
            changes(CONVERSATION),
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                let p = &caller.principal;
                let conversation =
                    ConversationId::from_uuid(uuid("conversationId", &conversation_id)?);
                policy::conversation(api, caller, conversation).await?;
                let done = api
                    .desk
                    .reopen(conversation, party(p)?, &caller.metadata())
                    .await
                    .map_err(ApiError::from)?;
                Ok(receipt_of(caller, done))
            },
        )
        .await
    }

    /// The agent who closed a conversation offers the satisfaction survey.
    async fn offer_survey(
        &self,
        ctx: &Context<'_>,
        conversation_id: String,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        once(
            ctx,
            idempotency_key,
            changes(CONVERSATION),
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                let conversation =
                    ConversationId::from_uuid(uuid("conversationId", &conversation_id)?);
                policy::conversation(api, caller, conversation).await?;
                let done = api
                    .desk
                    .offer_survey(conversation, &caller.metadata())
                    .await
                    .map_err(ApiError::from)?;
                Ok(receipt_of(caller, done))
            },
        )
        .await
    }

    /// The customer answers the survey: 1 to 5 stars.
    async fn answer_survey(
        &self,
        ctx: &Context<'_>,
        conversation_id: String,
        score: i32,
        comment: Option<String>,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        once(
            ctx,
            idempotency_key,
            changes(CONVERSATION),
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                if let Some(c) = &comment {
                    check_text(api, "comment", c)?;
                }
                let score = u8::try_from(score)
                    .map_err(|_| ApiError::Validation(format!("score: {score} is not 1 to 5")))?;
                let conversation =
                    ConversationId::from_uuid(uuid("conversationId", &conversation_id)?);
                policy::conversation(api, caller, conversation).await?;
                let done = api
                    .desk
                    .answer_survey(conversation, score, comment, &caller.metadata())
                    .await
                    .map_err(ApiError::from)?;
                Ok(receipt_of(caller, done))
            },
        )
        .await
    }

    // ---- tickets ----

    async fn open_ticket(
        &self,
        ctx: &Context<'_>,
        input: TicketInput,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        once(
            ctx,
            idempotency_key,
            creates(TICKET),
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                let p = &caller.principal;
                let conversation = match &input.conversation_id {
                    Some(c) => {
                        let id = ConversationId::from_uuid(uuid("conversationId", c)?);
                        policy::conversation(api, caller, id).await?;
                        Some(id)
                    }
                    None => None,
                };
                let ticket = NewTicket {
                    customer: kefu_domain::ids::CustomerId::from_uuid(uuid(
                        "customer",
                        &input.customer,
                    )?),
                    conversation,
                    kind: input.kind.into(),
                    priority: input.priority.into(),
                    subject: input.subject,
                    description: input.description,
                    order: input.order_id.map(OrderId::new),
                };
                let done = api
                    .desk
                    .open_ticket(ticket, Some(policy::agent_id(p)?), &caller.metadata())
                    .await
                    .map_err(ApiError::from)?;
                Ok(receipt(caller, done))
            },
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn update_ticket(
        &self,
        ctx: &Context<'_>,
        ticket_id: String,
        kind: Option<TicketKind>,
        priority: Option<TicketPriority>,
        subject: Option<String>,
        status: Option<TicketStatus>,
        assignee: Option<String>,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        once(
            ctx,
            idempotency_key,
            changes(TICKET),
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                let p = &caller.principal;
                let ticket = TicketId::from_uuid(uuid("ticketId", &ticket_id)?);
                policy::ticket(api, caller, ticket).await?;
                let update = TicketUpdate {
                    edit: TicketEdit {
                        kind: kind.map(Into::into),
                        priority: priority.map(Into::into),
                        subject,
                        order: None,
                    },
                    status: status.map(Into::into),
                    assignee: assignee
                        .map(|a| uuid("assignee", &a).map(AgentId::from_uuid))
                        .transpose()?,
                };
                let done = api
                    .desk
                    .update_ticket(ticket, update, party(p)?, &caller.metadata())
                    .await
                    .map_err(ApiError::from)?;
                Ok(receipt_of(caller, done))
            },
        )
        .await
    }

    async fn comment_ticket(
        &self,
        ctx: &Context<'_>,
        ticket_id: String,
        body: String,
        #[graphql(default)] public: bool,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        once(
            ctx,
            idempotency_key,
            changes(TICKET),
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                let p = &caller.principal;
                check_text(api, "body", &body)?;
                let ticket = TicketId::from_uuid(uuid("ticketId", &ticket_id)?);
                policy::ticket(api, caller, ticket).await?;
                let done = api
                    .desk
                    .comment_ticket(ticket, party(p)?, body, public, &caller.metadata())
                    .await
                    .map_err(ApiError::from)?;
                Ok(receipt_of(caller, done))
            },
        )
        .await
    }

    // ---- administration ----

    async fn define_queue(
        &self,
        ctx: &Context<'_>,
        input: QueueInput,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        once(
            ctx,
            idempotency_key,
            creates(QUEUE),
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                let priority = u8::try_from(input.priority).map_err(|_| {
                    ApiError::Validation(format!("priority: {} is not 0 to 255", input.priority))
                })?;
                let definition = QueueDefinition {
                    name: input.name,
                    business_line: match input.merchant {
                        Some(m) => BusinessLine::Merchant {
                            merchant: MerchantId::new(m),
                        },
                        None => BusinessLine::SelfOperated,
                    },
                    categories: input.categories.into_iter().map(Category::new).collect(),
                    skills: input.skills.into_iter().map(Skill::new).collect(),
                    priority,
                    sla: SlaTargets {
                        first_response_secs: u32_of(
                            "firstResponseSecs",
                            input.first_response_secs,
                        )?,
                        resolution_secs: u32_of("resolutionSecs", input.resolution_secs)?,
                    },
                    hours: OpeningHours::Always,
                };
                let done = api
                    .desk
                    .define_queue(definition, &caller.metadata())
                    .await
                    .map_err(ApiError::from)?;
                Ok(receipt(caller, done))
            },
        )
        .await
    }

    /// Changes a queue; absent fields stay as they are.
    #[allow(clippy::too_many_arguments)]
    async fn change_queue(
        &self,
        ctx: &Context<'_>,
        queue_id: String,
        name: Option<String>,
        categories: Option<Vec<String>>,
        skills: Option<Vec<String>>,
        priority: Option<i32>,
        first_response_secs: Option<i32>,
        resolution_secs: Option<i32>,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        once(
            ctx,
            idempotency_key,
            changes(QUEUE),
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                let queue = QueueId::from_uuid(uuid("queueId", &queue_id)?);
                let sla = match (first_response_secs, resolution_secs) {
                    (None, None) => None,
                    (Some(f), Some(r)) => Some(SlaTargets {
                        first_response_secs: u32_of("firstResponseSecs", f)?,
                        resolution_secs: u32_of("resolutionSecs", r)?,
                    }),
                    _ => {
                        return Err(ApiError::Validation(
                            "firstResponseSecs and resolutionSecs change together".into(),
                        ));
                    }
                };
                let priority = priority
                    .map(|p| {
                        u8::try_from(p).map_err(|_| {
                            ApiError::Validation(format!("priority: {p} is not 0 to 255"))
                        })
                    })
                    .transpose()?;
                let changes = kefu_domain::queue::QueueChanges {
                    name,
                    categories: categories.map(|c| c.into_iter().map(Category::new).collect()),
                    skills: skills.map(|s| s.into_iter().map(Skill::new).collect()),
                    priority,
                    sla,
                    hours: None,
                };
                let done = api
                    .desk
                    .change_queue(queue, changes, &caller.metadata())
                    .await
                    .map_err(ApiError::from)?;
                Ok(receipt_of(caller, done))
            },
        )
        .await
    }

    /// Sets a drill's faults on a dependency of this server (not the others): latency added
    /// to every call and the share of calls that fail. Zero and zero turn the drill off.
    async fn set_fault(
        &self,
        ctx: &Context<'_>,
        target: FaultTarget,
        latency_ms: i32,
        error_rate: f64,
    ) -> Result<FaultState> {
        let (api, caller) = (api(ctx), caller(ctx)?);
        require(caller, Root::Mutation, "setFault")?;
        let latency = u64::try_from(latency_ms)
            .map_err(|_| ApiError::Validation(format!("latencyMs: {latency_ms} is negative")))?;
        let dial = api.faults.dial(target);
        dial.set(kefu_eventlog::faults::FaultSettings {
            latency: std::time::Duration::from_millis(latency),
            error_rate,
        })
        .map_err(|e| ApiError::Validation(e.to_string()))?;
        tracing::warn!(?target, latency_ms, error_rate, by = %caller.principal.id, "drill faults set");
        Ok(api.faults.state(target))
    }

    /// Turns a degradation switch off or back on (bot, ranker, emotion, search indexing, the
    /// order gateway), for every server.
    async fn set_switch(
        &self,
        ctx: &Context<'_>,
        switch: Switch,
        on: bool,
        reason: String,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        once(
            ctx,
            idempotency_key,
            changes(SWITCHES),
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                let done = api
                    .desk
                    .set_switch(switch.into(), on, reason, &caller.metadata())
                    .await
                    .map_err(ApiError::from)?;
                Ok(receipt_of(caller, done))
            },
        )
        .await
    }

    async fn retire_queue(
        &self,
        ctx: &Context<'_>,
        queue_id: String,
        reason: String,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        once(
            ctx,
            idempotency_key,
            changes(QUEUE),
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                let queue = QueueId::from_uuid(uuid("queueId", &queue_id)?);
                let done = api
                    .desk
                    .retire_queue(queue, reason, &caller.metadata())
                    .await
                    .map_err(ApiError::from)?;
                Ok(receipt_of(caller, done))
            },
        )
        .await
    }

    /// Registers an agent; `agentId` is the id their login carries (a new one when absent).
    async fn register_agent(
        &self,
        ctx: &Context<'_>,
        agent_id: Option<String>,
        name: String,
        skills: Vec<String>,
        max_concurrent: i32,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        once(
            ctx,
            idempotency_key,
            creates(AGENT),
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                let agent = match agent_id {
                    Some(a) => AgentId::from_uuid(uuid("agentId", &a)?),
                    None => AgentId::from_uuid(api.desk.commands().new_id()),
                };
                let skills: BTreeSet<Skill> = skills.into_iter().map(Skill::new).collect();
                let done = api
                    .desk
                    .register_agent(
                        agent,
                        name,
                        skills,
                        u32_of("maxConcurrent", max_concurrent)?,
                        &caller.metadata(),
                    )
                    .await
                    .map_err(ApiError::from)?;
                Ok(receipt(caller, done))
            },
        )
        .await
    }

    /// Changes an agent's skills or how many chats they take at once.
    async fn change_agent(
        &self,
        ctx: &Context<'_>,
        agent_id: String,
        skills: Option<Vec<String>>,
        max_concurrent: Option<i32>,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        once(
            ctx,
            idempotency_key,
            changes(AGENT),
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                let agent = AgentId::from_uuid(uuid("agentId", &agent_id)?);
                policy::manage_agent(api, caller, agent).await?;
                let skills: Option<BTreeSet<Skill>> =
                    skills.map(|s| s.into_iter().map(Skill::new).collect());
                if let Some(s) = &skills {
                    policy::skills_change(api, caller, agent, s).await?;
                }
                let done = api
                    .desk
                    .change_agent(
                        agent,
                        skills,
                        max_concurrent
                            .map(|m| u32_of("maxConcurrent", m))
                            .transpose()?,
                        &caller.metadata(),
                    )
                    .await
                    .map_err(ApiError::from)?;
                Ok(receipt_of(caller, done))
            },
        )
        .await
    }

    /// An agent sets their own status; supervisors and admins set anyone's.
    async fn set_agent_status(
        &self,
        ctx: &Context<'_>,
        status: AgentStatus,
        agent_id: Option<String>,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        once(
            ctx,
            idempotency_key,
            changes(AGENT),
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                let p = &caller.principal;
                let agent = policy::target_agent(p, agent_id.as_deref(), "set the status")?;
                policy::manage_agent(api, caller, agent).await?;
                let done = api
                    .desk
                    .set_agent_status(agent, status.into(), &caller.metadata())
                    .await
                    .map_err(ApiError::from)?;
                Ok(receipt_of(caller, done))
            },
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn create_knowledge_entry(
        &self,
        ctx: &Context<'_>,
        question: String,
        #[graphql(default)] paraphrases: Vec<String>,
        answer: String,
        category: String,
        locale: String,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        once(
            ctx,
            idempotency_key,
            creates(KNOWLEDGE),
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                let entry = KnowledgeEntryId::from_uuid(api.desk.commands().new_id());
                let new = NewEntry {
                    question,
                    paraphrases,
                    answer,
                    category: Category::new(category),
                    locale: Locale::new(locale),
                };
                let done = api
                    .desk
                    .create_entry(entry, new, &caller.metadata())
                    .await
                    .map_err(ApiError::from)?;
                Ok(receipt(caller, done))
            },
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn edit_knowledge_entry(
        &self,
        ctx: &Context<'_>,
        entry_id: String,
        question: Option<String>,
        paraphrases: Option<Vec<String>>,
        answer: Option<String>,
        category: Option<String>,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        once(
            ctx,
            idempotency_key,
            changes(KNOWLEDGE),
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                let entry = KnowledgeEntryId::from_uuid(uuid("entryId", &entry_id)?);
                let edit = KnowledgeEdit {
                    question,
                    paraphrases,
                    answer,
                    category: category.map(Category::new),
                    locale: None,
                };
                let done = api
                    .desk
                    .edit_entry(entry, edit, &caller.metadata())
                    .await
                    .map_err(ApiError::from)?;
                Ok(receipt_of(caller, done))
            },
        )
        .await
    }

    async fn retire_knowledge_entry(
        &self,
        ctx: &Context<'_>,
        entry_id: String,
        reason: String,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        once(
            ctx,
            idempotency_key,
            changes(KNOWLEDGE),
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                let entry = KnowledgeEntryId::from_uuid(uuid("entryId", &entry_id)?);
                let done = api
                    .desk
                    .retire_entry(entry, reason, &caller.metadata())
                    .await
                    .map_err(ApiError::from)?;
                Ok(receipt_of(caller, done))
            },
        )
        .await
    }

    // ---- the shop's order system ----

    /// The order system records a customer's profile (creates it, or records a changed tier
    /// or locale). Returns the customer id.
    async fn record_customer_profile(
        &self,
        ctx: &Context<'_>,
        customer_id: String,
        tier: CustomerTier,
        locale: String,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        once(
            ctx,
            idempotency_key,
            creates(CUSTOMER),
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                let customer = CustomerId::from_uuid(uuid("customerId", &customer_id)?);
                let done = api
                    .desk
                    .record_customer_profile(
                        customer,
                        tier.into(),
                        Locale::new(locale),
                        &caller.metadata(),
                    )
                    .await
                    .map_err(ApiError::from)?;
                Ok(receipt(caller, done))
            },
        )
        .await
    }

    /// The order system records its latest snapshot of an order (an upsert: a resent or
    /// older snapshot records nothing; an order moving backwards is refused). The customer's
    /// profile must be recorded first. Returns the order id.
    async fn record_order(
        &self,
        ctx: &Context<'_>,
        input: OrderInput,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt> {
        // Read before the key is looked at: the receipt's id is the order's, known up front.
        let customer = CustomerId::from_uuid(uuid("customerId", &input.customer_id)?);
        let order = input.into_order()?;
        let effect = Effect {
            category: CUSTOMER,
            id: IdOf::Known(order.order.to_string()),
        };
        once(
            ctx,
            idempotency_key,
            effect,
            move |api, caller| async move {
                let (api, caller) = (&*api, &caller);
                let done = api
                    .desk
                    .record_order(customer, order, &caller.metadata())
                    .await
                    .map_err(ApiError::from)?;
                Ok(receipt(caller, done))
            },
        )
        .await
    }
}
