//! Tickets (工单): opened by an agent when a chat cannot finish the job, then worked by the
//! back office over hours and days through the ticket state machine: dispatch, comments,
//! waiting for the customer, solving, customers replying, escalation, duplicates merged, and
//! the auto-close three days after solving.

use chrono::{DateTime, Duration, Utc};
use kefu_domain::common::Party;
use kefu_domain::ids::{OrderId, TicketId};
use kefu_domain::ticket::{
    TicketCommand, TicketDecider, TicketEdit, TicketKind, TicketOrigin, TicketPriority,
    TicketState, TicketStatus,
};
use kefu_eventlog::{Actor, Metadata};
use rand::Rng;

use super::HistoryError;
use super::arrivals::exponential;
use super::conversations::missing;
use super::engine::{Action, Engine};
use super::staff::Team;
use super::stream::{Cause, Stream};
use super::texts::{
    ESCALATION_REASONS, FOLLOW_UP_TICKET, Lang, TICKET_CUSTOMER_REPLIES, TICKET_PRIVATE_COMMENTS,
    TICKET_PUBLIC_COMMENTS, TICKET_REOPEN_REASONS, TICKET_SUBJECT_SUFFIXES, pick_lang,
};

/// What a new ticket is about, as the agent fills in the form.
pub(crate) struct NewTicket {
    pub customer: usize,
    pub lang: Lang,
    pub team: Team,
    pub origin: TicketOrigin,
    pub kind: TicketKind,
    pub priority: TicketPriority,
    pub subject: String,
    pub description: String,
    pub question: String,
    pub order: Option<OrderId>,
    pub angry: bool,
    pub follow_up: bool,
}

pub(crate) struct TicketSim {
    pub stream: Stream<TicketDecider>,
    customer: usize,
    lang: Lang,
    team: Team,
    question: String,
    assignee: Option<usize>,
    merge_into: Option<usize>,
    escalate: bool,
    edit: bool,
    reopen: bool,
    /// May lead to a follow-up ticket once closed (not for follow-ups themselves).
    may_follow_up: bool,
}

impl TicketSim {
    fn status(&self) -> Option<TicketStatus> {
        match &self.stream.state {
            TicketState::Opened(t) => Some(t.status),
            TicketState::NotOpened => None,
        }
    }
}

impl Engine {
    fn ticket_request(&mut self, ticket: usize) -> (Metadata, Party) {
        match self.tickets[ticket].assignee {
            Some(a) => {
                let actor = self.agents[a].actor();
                let agent = self.agents[a].id;
                (self.sink.request(actor, false), Party::Agent { agent })
            }
            None => (
                self.sink.request(Actor::system("ticket-dispatch"), false),
                Party::System,
            ),
        }
    }

    /// Opens a ticket in the agent's request `meta`; returns the `TicketOpened` event. Now
    /// and then the form is submitted twice, and the second ticket is merged away later.
    pub(crate) fn open_ticket(
        &mut self,
        spec: NewTicket,
        meta: &Metadata,
        at: DateTime<Utc>,
        may_double: bool,
    ) -> Result<Cause, HistoryError> {
        let id = TicketId::from(self.sink.mint(at));
        let mut stream = Stream::<TicketDecider>::new(id)?;
        let customer_id = self.customers[spec.customer]
            .as_ref()
            .ok_or_else(|| missing("customer"))?
            .stream
            .id;
        let double = may_double && self.chance(0.05);
        let origin = spec.origin.clone();
        let opened = self
            .sink
            .run1(&mut stream, "TicketCommand::Open", at, meta, |at| {
                TicketCommand::Open {
                    ticket: id,
                    customer: customer_id,
                    origin,
                    kind: spec.kind,
                    priority: spec.priority,
                    subject: spec.subject.clone(),
                    description: spec.description.clone(),
                    order: spec.order.clone(),
                    at,
                }
            })?;
        let t = self.tickets.len();
        let earlier = self.customers[spec.customer]
            .as_ref()
            .and_then(|c| c.open_tickets.first().copied());
        let merge_into = match earlier {
            Some(e) if self.chance(0.5) => Some(e),
            _ => None,
        };
        let escalate = self.chance(if spec.angry { 0.3 } else { 0.1 });
        let edit = self.chance(0.25);
        let reopen = self.chance(0.15);
        let may_follow_up = !spec.follow_up && self.chance(0.1);
        self.tickets.push(TicketSim {
            stream,
            customer: spec.customer,
            lang: spec.lang,
            team: spec.team,
            question: spec.question.clone(),
            assignee: None,
            merge_into,
            escalate,
            edit,
            reopen,
            may_follow_up,
        });
        if let Some(c) = self.customers[spec.customer].as_mut() {
            c.open_tickets.push(t);
        }
        let dispatch = Duration::minutes(10) + minutes(exponential(self.rng(), 120.0));
        self.schedule(at + dispatch, Action::Ticket { ticket: t });
        if double {
            let again = NewTicket {
                origin: spec.origin.clone(),
                subject: spec.subject.clone(),
                description: spec.description.clone(),
                question: spec.question.clone(),
                order: spec.order.clone(),
                ..spec
            };
            self.open_ticket(again, meta, at + Duration::seconds(2), false)?;
            let duplicate = self.tickets.len() - 1;
            self.tickets[duplicate].merge_into = Some(t);
        }
        Ok(opened)
    }

    fn pick_assignee(&mut self, team: Team, except: Option<usize>) -> Option<usize> {
        let pool: Vec<usize> = (0..self.agents.len())
            .filter(|&a| !self.agents[a].retired && !self.agents[a].retiring && Some(a) != except)
            .collect();
        let same_team: Vec<usize> = pool
            .iter()
            .copied()
            .filter(|&a| self.agents[a].team == team)
            .collect();
        let from = if same_team.is_empty() {
            pool
        } else {
            same_team
        };
        (!from.is_empty()).then(|| from[self.rng().random_range(0..from.len())])
    }

    fn assign_ticket(
        &mut self,
        t: usize,
        except: Option<usize>,
        at: DateTime<Utc>,
    ) -> Result<(), HistoryError> {
        let Some(a) = self.pick_assignee(self.tickets[t].team, except) else {
            return Ok(());
        };
        let snapshot = self.agents[a].stream.state.snapshot(self.agents[a].id);
        let meta = self.sink.request(Actor::system("ticket-dispatch"), false);
        self.sink.run(
            &mut self.tickets[t].stream,
            "TicketCommand::Assign",
            at,
            &meta,
            |at| TicketCommand::Assign {
                assignee: snapshot,
                by: Party::System,
                at,
            },
        )?;
        self.tickets[t].assignee = Some(a);
        Ok(())
    }

    /// A retired agent's open tickets go to colleagues.
    pub(crate) fn reassign_tickets_of(
        &mut self,
        a: usize,
        at: DateTime<Utc>,
    ) -> Result<(), HistoryError> {
        for t in 0..self.tickets.len() {
            let open = !matches!(self.tickets[t].status(), Some(TicketStatus::Closed) | None);
            if open && self.tickets[t].assignee == Some(a) {
                self.assign_ticket(t, Some(a), at)?;
            }
        }
        Ok(())
    }

    /// The next thing that happens to ticket `t`, depending on where it stands.
    pub(crate) fn ticket_step(&mut self, t: usize) -> Result<(), HistoryError> {
        let now = self.sink.now;
        let Some(status) = self.tickets[t].status() else {
            return Ok(());
        };
        let next = match status {
            TicketStatus::Closed => {
                self.ticket_closed(t);
                return Ok(());
            }
            TicketStatus::New => {
                if let Some(target) = self.tickets[t].merge_into.take() {
                    let target_open = !matches!(
                        self.tickets[target].status(),
                        Some(TicketStatus::Closed) | None
                    );
                    if target_open && target != t {
                        let into = self.tickets[target]
                            .stream
                            .state
                            .snapshot(self.tickets[target].stream.id);
                        let meta = self.sink.request(Actor::system("ticket-dispatch"), false);
                        self.sink.run1(
                            &mut self.tickets[t].stream,
                            "TicketCommand::Merge",
                            now,
                            &meta,
                            |at| TicketCommand::Merge {
                                into,
                                by: Party::System,
                                at,
                            },
                        )?;
                        self.ticket_closed(t);
                        return Ok(());
                    }
                }
                self.assign_ticket(t, None, now)?;
                if self.tickets[t].edit {
                    self.tickets[t].edit = false;
                    self.edit_ticket(t, now + Duration::minutes(5))?;
                }
                Duration::minutes(20) + minutes(exponential(self.rng(), 240.0))
            }
            TicketStatus::Open => {
                let (meta, by) = self.ticket_request(t);
                if self.tickets[t].escalate {
                    self.tickets[t].escalate = false;
                    let reason = ESCALATION_REASONS
                        [self.rng().random_range(0..ESCALATION_REASONS.len())]
                    .to_owned();
                    self.sink.run1(
                        &mut self.tickets[t].stream,
                        "TicketCommand::Escalate",
                        now,
                        &meta,
                        |at| TicketCommand::Escalate { reason, by, at },
                    )?;
                    Duration::minutes(10) + minutes(exponential(self.rng(), 120.0))
                } else {
                    if self.chance(0.5) {
                        let body = TICKET_PRIVATE_COMMENTS
                            [self.rng().random_range(0..TICKET_PRIVATE_COMMENTS.len())]
                        .to_owned();
                        self.comment(t, &meta, by.clone(), body, false, now)?;
                    }
                    let waiting_for_customer = self.chance(0.45);
                    let (text, to) = if waiting_for_customer {
                        (TICKET_PUBLIC_COMMENTS[1], TicketStatus::Pending)
                    } else {
                        (TICKET_PUBLIC_COMMENTS[2], TicketStatus::Solved)
                    };
                    let body = pick_lang(&text, self.tickets[t].lang).to_owned();
                    let at = now + Duration::seconds(30);
                    self.comment(t, &meta, by.clone(), body, true, at)?;
                    self.change_status(t, &meta, by, to, at)?;
                    self.after_status(t, to)
                }
            }
            TicketStatus::Pending => {
                let u = self.rng().random::<f64>();
                if u < 0.6 {
                    self.customer_replies(t, now)?;
                    Duration::minutes(20) + minutes(exponential(self.rng(), 180.0))
                } else if u < 0.85 {
                    let (meta, by) = self.ticket_request(t);
                    let body =
                        pick_lang(&TICKET_PUBLIC_COMMENTS[2], self.tickets[t].lang).to_owned();
                    self.comment(t, &meta, by.clone(), body, true, now)?;
                    self.change_status(t, &meta, by, TicketStatus::Solved, now)?;
                    self.after_status(t, TicketStatus::Solved)
                } else {
                    let (meta, by) = self.ticket_request(t);
                    self.change_status(t, &meta, by, TicketStatus::Open, now)?;
                    Duration::minutes(10) + minutes(exponential(self.rng(), 120.0))
                }
            }
            TicketStatus::Solved => {
                if self.tickets[t].reopen {
                    self.tickets[t].reopen = false;
                    if self.chance(0.7) {
                        self.customer_replies(t, now)?;
                    } else {
                        let (meta, by) = self.ticket_request(t);
                        let reason = TICKET_REOPEN_REASONS
                            [self.rng().random_range(0..TICKET_REOPEN_REASONS.len())]
                        .to_owned();
                        self.sink.run1(
                            &mut self.tickets[t].stream,
                            "TicketCommand::Reopen",
                            now,
                            &meta,
                            |at| TicketCommand::Reopen { reason, by, at },
                        )?;
                    }
                    Duration::minutes(20) + minutes(exponential(self.rng(), 180.0))
                } else {
                    let meta = self.sink.request(Actor::system("ticket-autoclose"), false);
                    self.change_status(t, &meta, Party::System, TicketStatus::Closed, now)?;
                    self.ticket_closed(t);
                    return Ok(());
                }
            }
        };
        self.schedule(now + next, Action::Ticket { ticket: t });
        Ok(())
    }

    /// How long until the next step after moving to `to`.
    fn after_status(&mut self, t: usize, to: TicketStatus) -> Duration {
        match to {
            TicketStatus::Pending => Duration::hours(1) + minutes(exponential(self.rng(), 600.0)),
            TicketStatus::Solved if self.tickets[t].reopen => {
                Duration::hours(1) + minutes(exponential(self.rng(), 480.0))
            }
            // Solved tickets close automatically after three days without a reply.
            TicketStatus::Solved => Duration::hours(72),
            _ => Duration::minutes(10) + minutes(exponential(self.rng(), 120.0)),
        }
    }

    fn comment(
        &mut self,
        t: usize,
        meta: &Metadata,
        author: Party,
        body: String,
        public: bool,
        at: DateTime<Utc>,
    ) -> Result<(), HistoryError> {
        self.sink.run1(
            &mut self.tickets[t].stream,
            "TicketCommand::Comment",
            at,
            meta,
            |at| TicketCommand::Comment {
                author,
                body,
                public,
                at,
            },
        )?;
        Ok(())
    }

    fn change_status(
        &mut self,
        t: usize,
        meta: &Metadata,
        by: Party,
        to: TicketStatus,
        at: DateTime<Utc>,
    ) -> Result<(), HistoryError> {
        self.sink.run1(
            &mut self.tickets[t].stream,
            "TicketCommand::ChangeStatus",
            at,
            meta,
            |at| TicketCommand::ChangeStatus { to, by, at },
        )?;
        Ok(())
    }

    /// The customer answers on the ticket: a pending ticket opens again, a solved one is
    /// reopened.
    fn customer_replies(&mut self, t: usize, at: DateTime<Utc>) -> Result<(), HistoryError> {
        let c = self.tickets[t].customer;
        let customer = self.customers[c]
            .as_ref()
            .ok_or_else(|| missing("customer"))?;
        let actor = Actor::new(
            kefu_eventlog::ActorKind::Customer,
            customer.stream.id.to_string(),
        );
        let meta = self.sink.request(actor, true);
        let reply =
            TICKET_CUSTOMER_REPLIES[self.rng().random_range(0..TICKET_CUSTOMER_REPLIES.len())];
        let body = pick_lang(&reply, self.tickets[t].lang).to_owned();
        self.comment(t, &meta, Party::Customer, body, true, at)
    }

    /// The assignee corrects the form: priority, kind, subject or the order.
    fn edit_ticket(&mut self, t: usize, at: DateTime<Utc>) -> Result<(), HistoryError> {
        let TicketState::Opened(ticket) = &self.tickets[t].stream.state else {
            return Ok(());
        };
        let (priority, subject, order) = (
            ticket.priority,
            ticket.subject.clone(),
            ticket.order.clone(),
        );
        let lang = self.tickets[t].lang;
        let edit = match self.rng().random_range(0..4) {
            0 => TicketEdit {
                priority: Some(if priority >= TicketPriority::High {
                    TicketPriority::Normal
                } else {
                    TicketPriority::High
                }),
                ..TicketEdit::default()
            },
            1 => TicketEdit {
                kind: Some(TicketKind::Complaint),
                ..TicketEdit::default()
            },
            2 => {
                let suffix = TICKET_SUBJECT_SUFFIXES
                    [self.rng().random_range(0..TICKET_SUBJECT_SUFFIXES.len())];
                TicketEdit {
                    subject: Some(format!("{subject}{}", pick_lang(&suffix, lang))),
                    ..TicketEdit::default()
                }
            }
            _ => {
                // The customer meant another of their orders; with only one, the agent raises
                // the priority instead.
                let other = self.customers[self.tickets[t].customer]
                    .as_ref()
                    .and_then(|c| {
                        c.orders
                            .iter()
                            .map(|o| o.id.clone())
                            .find(|o| Some(o) != order.as_ref())
                    });
                match other {
                    Some(other) => TicketEdit {
                        order: Some(Some(other)),
                        ..TicketEdit::default()
                    },
                    None => TicketEdit {
                        priority: Some(TicketPriority::Urgent),
                        ..TicketEdit::default()
                    },
                }
            }
        };
        let (meta, by) = self.ticket_request(t);
        self.sink.run(
            &mut self.tickets[t].stream,
            "TicketCommand::Edit",
            at,
            &meta,
            |at| TicketCommand::Edit { edit, by, at },
        )?;
        Ok(())
    }

    fn ticket_closed(&mut self, t: usize) {
        let c = self.tickets[t].customer;
        if let Some(customer) = self.customers[c].as_mut() {
            customer.open_tickets.retain(|&o| o != t);
        }
        if self.tickets[t].may_follow_up {
            self.tickets[t].may_follow_up = false;
            let after = Duration::hours(self.rng().random_range(24..72));
            let now = self.sink.now;
            self.schedule(now + after, Action::FollowUpTicket { ticket: t });
        }
    }

    /// The customer came back after the ticket closed (a closed ticket is final), so an agent
    /// opens a follow-up ticket for them.
    pub(crate) fn follow_up_ticket(&mut self, t: usize) -> Result<(), HistoryError> {
        let Some(a) = self.tickets[t]
            .assignee
            .filter(|&a| !self.agents[a].retired)
        else {
            return Ok(());
        };
        let TicketState::Opened(ticket) = &self.tickets[t].stream.state else {
            return Ok(());
        };
        let (kind, order, subject) = (ticket.kind, ticket.order.clone(), ticket.subject.clone());
        let lang = self.tickets[t].lang;
        let question = self.tickets[t].question.clone();
        let description = pick_lang(&FOLLOW_UP_TICKET, lang).replace("{question}", &question);
        let prefix = if lang == Lang::En {
            "Follow-up: "
        } else {
            "跟进："
        };
        let spec = NewTicket {
            customer: self.tickets[t].customer,
            lang,
            team: self.tickets[t].team,
            origin: TicketOrigin::ByAgent(self.agents[a].stream.state.snapshot(self.agents[a].id)),
            kind,
            priority: TicketPriority::High,
            subject: format!("{prefix}{subject}").chars().take(200).collect(),
            description,
            question,
            order,
            angry: true,
            follow_up: true,
        };
        let actor = self.agents[a].actor();
        let meta = self.sink.request(actor, false);
        let now = self.sink.now;
        self.open_ticket(spec, &meta, now, false)?;
        Ok(())
    }
}

fn minutes(m: f64) -> Duration {
    Duration::milliseconds((m * 60_000.0) as i64)
}
