//! The simulation: a priority queue of pending actions by simulated time, each of which
//! decides commands against the streams it touches and plans their events.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use chrono::{DateTime, Duration, Utc};
use kefu_domain::ids::{ConversationId, KnowledgeEntryId, QueueId};
use kefu_domain::knowledge::{KnowledgeCommand, KnowledgeDecider, KnowledgeEdit};
use kefu_domain::queue::{QueueChanges, QueueCommand, QueueDecider};
use kefu_eventlog::{Actor, ActorKind};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::arrivals::arrival_times;
use super::conversations::{ConvSim, Step};
use super::staff::AgentSim;
use super::stream::{Sink, Stream, Tally};
use super::texts::{
    EXTRA_PARAPHRASES, KNOWLEDGE_RETIRE_REASONS, Lang, MERCHANT_NOTE, MERCHANT_TAG, MERCHANTS,
    REVISION_NOTES, SELF_OPERATED_NOTE, SELF_OPERATED_TAG, SERVICE_CATEGORIES, TOPICS, pick_lang,
};
use super::tickets::TicketSim;
use super::world::{
    self, CustomerSim, KbSim, QueueRole, QueueSim, QueueSpec, SELF_OPERATED, category_index,
    kb_group, knowledge_plan,
};
use super::{HistoryConfig, HistoryError, HistorySummary, PlannedAppend};

/// Something that happens at a simulated time.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    Setup,
    Arrival,
    Conversation {
        id: ConversationId,
        epoch: u32,
        step: Step,
    },
    Ticket {
        ticket: usize,
    },
    FollowUpTicket {
        ticket: usize,
    },
    OrderUpdate {
        customer: usize,
        order: usize,
    },
    ShiftStart {
        agent: usize,
    },
    ShiftEnd {
        agent: usize,
    },
    BreakStart {
        agent: usize,
        minutes: i64,
    },
    BreakEnd {
        agent: usize,
    },
    KnowledgeEdits,
    KnowledgeRetirement,
    QueueChange,
    QueueReplacement,
    AgentChanges,
    AgentRetirement,
}

#[derive(Debug)]
struct Scheduled {
    at: DateTime<Utc>,
    seq: u64,
    action: Action,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Where a queued conversation stands among the waiting: by priority, then first come.
pub(crate) type WaitKey = (u8, DateTime<Utc>, u64);

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub handed_over: u64,
    pub abandoned: u64,
    pub total_wait_secs: u64,
    pub max_wait_secs: u64,
}

pub(crate) struct Engine {
    pub cfg: HistoryConfig,
    pub sink: Sink,
    pub end: DateTime<Utc>,
    /// Nothing is scheduled after this: the history stops a day after the traffic does,
    /// and tickets still open then stay open, as in any snapshot of a live system.
    pub horizon: DateTime<Utc>,
    heap: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    arrivals: std::vec::IntoIter<DateTime<Utc>>,
    /// Windows when the bot's degradation switch is on and chats go straight to humans.
    pub outages: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    pub kb: Vec<KbSim>,
    pub kb_groups: Vec<Vec<usize>>,
    /// Entries the knowledge team writes later, to replace retired ones.
    kb_spare: Vec<(usize, Lang, bool)>,
    pub queues: Vec<QueueSim>,
    /// The active queue of each merchant.
    pub merchant_queue: Vec<usize>,
    pub agents: Vec<AgentSim>,
    pub customers: Vec<Option<CustomerSim>>,
    pub convs: HashMap<ConversationId, ConvSim>,
    pub tickets: Vec<TicketSim>,
    pub waiting: BTreeMap<WaitKey, ConversationId>,
    pub next_order: u64,
    /// Breaks ties among conversations queued at the same moment.
    pub wait_seq: u64,
    pub stats: Stats,
}

impl Engine {
    pub fn new(cfg: &HistoryConfig) -> Result<Self, HistoryError> {
        cfg.validate()?;
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let arrivals = arrival_times(&mut rng, cfg.start, cfg.days, cfg.conversations);
        let end = cfg.end();
        let mut engine = Engine {
            cfg: cfg.clone(),
            sink: Sink {
                rng,
                now: cfg.start - Duration::days(1),
                out: Default::default(),
                tally: Tally::default(),
            },
            end,
            horizon: end + Duration::days(1),
            heap: BinaryHeap::new(),
            seq: 0,
            arrivals: arrivals.into_iter(),
            outages: Vec::new(),
            kb: Vec::new(),
            kb_groups: vec![Vec::new(); SERVICE_CATEGORIES.len() * 4],
            kb_spare: Vec::new(),
            queues: Vec::new(),
            merchant_queue: Vec::new(),
            agents: Vec::new(),
            customers: (0..cfg.customers).map(|_| None).collect(),
            convs: HashMap::new(),
            tickets: Vec::new(),
            waiting: BTreeMap::new(),
            next_order: 0,
            wait_seq: 0,
            stats: Stats::default(),
        };
        engine.outages = engine.outage_windows();
        let setup_at = engine.sink.now;
        engine.schedule(setup_at, Action::Setup);
        Ok(engine)
    }

    /// Plans `action` for `at`; anything past the horizon is dropped.
    pub fn schedule(&mut self, at: DateTime<Utc>, action: Action) -> bool {
        if at > self.horizon {
            return false;
        }
        self.seq += 1;
        self.heap.push(Reverse(Scheduled {
            at: at.max(self.sink.now),
            seq: self.seq,
            action,
        }));
        true
    }

    pub fn next_arrival(&mut self) -> Option<DateTime<Utc>> {
        self.arrivals.next()
    }

    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.sink.rng
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.sink.rng.random_bool(p.clamp(0.0, 1.0))
    }

    /// The next planned append, running actions until one plans something.
    pub fn next_append(&mut self) -> Result<Option<PlannedAppend>, HistoryError> {
        loop {
            if let Some(append) = self.sink.out.pop_front() {
                return Ok(Some(append));
            }
            let Some(Reverse(next)) = self.heap.pop() else {
                return Ok(None);
            };
            self.sink.now = next.at;
            self.act(next.action)?;
        }
    }

    fn act(&mut self, action: Action) -> Result<(), HistoryError> {
        match action {
            Action::Setup => self.setup(),
            Action::Arrival => self.arrival(),
            Action::Conversation { id, epoch, step } => self.conversation_step(id, epoch, step),
            Action::Ticket { ticket } => self.ticket_step(ticket),
            Action::FollowUpTicket { ticket } => self.follow_up_ticket(ticket),
            Action::OrderUpdate { customer, order } => self.order_update(customer, order),
            Action::ShiftStart { agent } => self.shift_start(agent),
            Action::ShiftEnd { agent } => self.shift_end(agent),
            Action::BreakStart { agent, minutes } => self.break_start(agent, minutes),
            Action::BreakEnd { agent } => self.break_end(agent),
            Action::KnowledgeEdits => self.knowledge_edits(),
            Action::KnowledgeRetirement => self.knowledge_retirement(),
            Action::QueueChange => self.queue_change(),
            Action::QueueReplacement => self.queue_replacement(),
            Action::AgentChanges => self.agent_changes(),
            Action::AgentRetirement => self.agent_retirement(),
        }
    }

    pub fn summary(&self) -> HistorySummary {
        let tally = &self.sink.tally;
        let count = |t: &str| tally.by_type.get(t).copied().unwrap_or(0);
        let conversations = count("ConversationStarted");
        HistorySummary {
            events: tally.events,
            appends: tally.appends,
            streams: tally.streams,
            conversations,
            contained_by_bot: conversations.saturating_sub(self.stats.handed_over),
            handed_over: self.stats.handed_over,
            abandoned_in_queue: self.stats.abandoned,
            assignments: count("AgentAssigned"),
            total_wait_secs: self.stats.total_wait_secs,
            max_wait_secs: self.stats.max_wait_secs,
            transfers: count("ConversationTransferred"),
            reopened: count("ConversationReopened"),
            surveys_offered: count("SurveyOffered"),
            surveys_answered: count("SurveyAnswered"),
            orders_attributed: count("OrderAttributed"),
            tickets: count("TicketOpened"),
            by_event_type: tally
                .by_type
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            by_category: tally
                .by_category
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            first_at: tally.first_at,
            last_at: tally.last_at,
        }
    }

    /// The bot is switched off for half an hour in the evening peak once a week (a model
    /// deployment gone wrong), starting in the first days so short histories have one too.
    fn outage_windows(&self) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let first_day = i64::from(self.cfg.days.saturating_sub(1).min(1));
        (0..)
            .map(|week| first_day + 7 * week)
            .take_while(|day| *day < i64::from(self.cfg.days))
            .map(|day| {
                let from = self.cfg.start + Duration::days(day) + Duration::minutes(20 * 60 + 10);
                (from, from + Duration::minutes(30))
            })
            .collect()
    }

    pub fn bot_switched_off(&self, at: DateTime<Utc>) -> bool {
        self.outages
            .iter()
            .any(|(from, to)| *from <= at && at < *to)
    }

    // ---- set-up ----

    fn setup(&mut self) -> Result<(), HistoryError> {
        self.register_agents()?;
        self.define_queues()?;
        self.create_knowledge()?;
        self.schedule_first_shifts();
        if let Some(first) = self.arrivals.next() {
            self.schedule(first, Action::Arrival);
        }
        let period = Duration::hours(24 * i64::from(self.cfg.days));
        let start = self.cfg.start;
        self.schedule(start + Duration::hours(6), Action::KnowledgeEdits);
        for day in 1..i64::from(self.cfg.days) {
            self.schedule(
                start + Duration::days(day) + Duration::hours(16),
                Action::KnowledgeEdits,
            );
        }
        self.schedule(start + period / 2, Action::KnowledgeRetirement);
        self.schedule(start + period / 5, Action::AgentChanges);
        self.schedule(start + period * 3 / 10, Action::QueueChange);
        self.schedule(
            start + period / 2 + Duration::hours(2),
            Action::AgentRetirement,
        );
        self.schedule(start + period * 11 / 20, Action::QueueReplacement);
        Ok(())
    }

    fn admin(&mut self) -> kefu_eventlog::Metadata {
        self.sink.request(Actor::system("admin-console"), false)
    }

    /// The knowledge team's requests come from a team lead's account.
    fn knowledge_editor(&mut self) -> kefu_eventlog::Metadata {
        let editor = self.agents[0].stream.name.entity_id().to_owned();
        self.sink
            .request(Actor::new(ActorKind::Agent, editor), false)
    }

    fn define_queues(&mut self) -> Result<(), HistoryError> {
        let mut specs: Vec<(QueueSpec, String)> = SELF_OPERATED
            .iter()
            .map(|s| {
                (
                    QueueSpec {
                        name: s.name,
                        role: s.role,
                        categories: s.categories,
                        skills: s.skills,
                        priority: s.priority,
                        first_response_secs: s.first_response_secs,
                        resolution_secs: s.resolution_secs,
                        hours: s.hours,
                    },
                    s.name.to_owned(),
                )
            })
            .collect();
        for (m, merchant) in MERCHANTS.iter().enumerate().take(self.cfg.merchants) {
            specs.push((merchant_queue_spec(m), format!("商家-{}", merchant.name)));
        }
        for (spec, name) in specs {
            let q = self.define_queue(&spec, name)?;
            if let QueueRole::Merchant(m) = spec.role {
                self.merchant_queue.push(q);
                debug_assert_eq!(self.merchant_queue.len(), m + 1);
            }
        }
        Ok(())
    }

    fn define_queue(&mut self, spec: &QueueSpec, name: String) -> Result<usize, HistoryError> {
        let at = self.sink.now + Duration::seconds(self.queues.len() as i64);
        let id = QueueId::from(self.sink.mint(at));
        let mut stream = Stream::<QueueDecider>::new(id)?;
        let hours = world::opening_hours(spec.hours);
        let line = match spec.role {
            QueueRole::Merchant(m) => world::merchant_line(m),
            _ => kefu_domain::common::BusinessLine::SelfOperated,
        };
        let meta = self.admin();
        self.sink
            .run1(&mut stream, "QueueCommand::Define", at, &meta, |at| {
                QueueCommand::Define {
                    queue: id,
                    name: name.clone(),
                    business_line: line,
                    categories: world::categories(spec.categories),
                    skills: world::skill_set(spec.skills),
                    priority: spec.priority,
                    sla: world::sla(spec.first_response_secs, spec.resolution_secs),
                    hours: hours.clone(),
                    at,
                }
            })?;
        self.queues.push(QueueSim {
            stream,
            role: spec.role,
            name,
            skills: spec.skills,
            hours,
            categories: spec.categories,
            retired: false,
        });
        Ok(self.queues.len() - 1)
    }

    fn create_knowledge(&mut self) -> Result<(), HistoryError> {
        let mut plan = knowledge_plan().into_iter();
        for (i, (topic, lang, merchant)) in
            plan.by_ref().take(self.cfg.knowledge_entries).enumerate()
        {
            let at = self.sink.now + Duration::minutes(10) + Duration::seconds(i as i64 * 7);
            self.create_entry(topic, lang, merchant, at, "")?;
        }
        self.kb_spare = plan.collect();
        Ok(())
    }

    fn create_entry(
        &mut self,
        topic: usize,
        lang: Lang,
        merchant: bool,
        at: DateTime<Utc>,
        edition: &str,
    ) -> Result<(), HistoryError> {
        let t = &TOPICS[topic];
        let tag = pick_lang(
            if merchant {
                &MERCHANT_TAG
            } else {
                &SELF_OPERATED_TAG
            },
            lang,
        );
        let note = pick_lang(
            if merchant {
                &MERCHANT_NOTE
            } else {
                &SELF_OPERATED_NOTE
            },
            lang,
        );
        let question = format!("{}{tag}{edition}", pick_lang(&t.question, lang));
        let paraphrases = t
            .paraphrases
            .iter()
            .map(|p| pick_lang(p, lang).to_owned())
            .collect();
        let separator = if lang == Lang::En { " " } else { "" };
        let answer = format!("{}{separator}{note}", pick_lang(&t.answer, lang));
        let locale = if lang == Lang::En { "en-US" } else { "zh-CN" };
        let id = KnowledgeEntryId::from(self.sink.mint(at));
        let mut stream = Stream::<KnowledgeDecider>::new(id)?;
        let meta = self.knowledge_editor();
        self.sink
            .run1(&mut stream, "KnowledgeCommand::Create", at, &meta, |at| {
                KnowledgeCommand::Create {
                    entry: id,
                    question,
                    paraphrases,
                    answer,
                    category: kefu_domain::ids::Category::from(t.category),
                    locale: kefu_domain::ids::Locale::from(locale),
                    at,
                }
            })?;
        let group = kb_group(category_index(t.category), lang, merchant);
        self.kb_groups[group].push(self.kb.len());
        self.kb.push(KbSim {
            stream,
            topic,
            lang,
            merchant,
            active: true,
        });
        Ok(())
    }

    // ---- maintenance over the period ----

    /// The knowledge team revises a few answers and adds paraphrases customers really use.
    fn knowledge_edits(&mut self) -> Result<(), HistoryError> {
        let edits = self.rng().random_range(1..=3);
        for n in 0..edits {
            let entries = self.kb.len();
            let e = self.rng().random_range(0..entries);
            if !self.kb[e].active {
                continue;
            }
            let lang = self.kb[e].lang;
            let at = self.sink.now + Duration::minutes(n * 4);
            let edit = if self.chance(0.6) {
                let kefu_domain::knowledge::KnowledgeState::Active(entry) =
                    &self.kb[e].stream.state
                else {
                    continue;
                };
                let note = REVISION_NOTES[self.sink.rng.random_range(0..REVISION_NOTES.len())];
                let note = pick_lang(&note, lang);
                if entry.answer.ends_with(note) {
                    continue;
                }
                KnowledgeEdit {
                    answer: Some(format!("{}{note}", entry.answer)),
                    ..KnowledgeEdit::default()
                }
            } else {
                let kefu_domain::knowledge::KnowledgeState::Active(entry) =
                    &self.kb[e].stream.state
                else {
                    continue;
                };
                let extra =
                    EXTRA_PARAPHRASES[self.sink.rng.random_range(0..EXTRA_PARAPHRASES.len())];
                let extra = pick_lang(&extra, lang).to_owned();
                let taken = entry.question.trim().to_lowercase() == extra.to_lowercase()
                    || entry
                        .paraphrases
                        .iter()
                        .any(|p| p.trim().to_lowercase() == extra.to_lowercase());
                if taken {
                    continue;
                }
                let mut paraphrases = entry.paraphrases.clone();
                paraphrases.push(extra);
                KnowledgeEdit {
                    paraphrases: Some(paraphrases),
                    ..KnowledgeEdit::default()
                }
            };
            let meta = self.knowledge_editor();
            self.sink.run1(
                &mut self.kb[e].stream,
                "KnowledgeCommand::Edit",
                at,
                &meta,
                |at| KnowledgeCommand::Edit { edit, at },
            )?;
        }
        Ok(())
    }

    /// An outdated entry is retired and its replacement written; the bot never serves the
    /// retired one again.
    fn knowledge_retirement(&mut self) -> Result<(), HistoryError> {
        // Only where the group keeps another active entry, so the bot still has an answer.
        let candidates: Vec<usize> = (0..self.kb.len())
            .filter(|&e| {
                let k = &self.kb[e];
                let group = kb_group(category_index(TOPICS[k.topic].category), k.lang, k.merchant);
                k.active
                    && self.kb_groups[group]
                        .iter()
                        .filter(|&&o| self.kb[o].active)
                        .count()
                        > 1
            })
            .collect();
        for round in 0..2 {
            if candidates.is_empty() {
                break;
            }
            let e = candidates[self.rng().random_range(0..candidates.len())];
            if !self.kb[e].active {
                continue;
            }
            let reason = KNOWLEDGE_RETIRE_REASONS
                [self.rng().random_range(0..KNOWLEDGE_RETIRE_REASONS.len())];
            let at = self.sink.now + Duration::minutes(round * 10);
            let meta = self.knowledge_editor();
            self.sink.run1(
                &mut self.kb[e].stream,
                "KnowledgeCommand::Retire",
                at,
                &meta,
                |at| KnowledgeCommand::Retire {
                    reason: reason.to_owned(),
                    at,
                },
            )?;
            self.kb[e].active = false;
            let (topic, lang, merchant) = (self.kb[e].topic, self.kb[e].lang, self.kb[e].merchant);
            let replacement = self
                .kb_spare
                .iter()
                .position(|(_, l, m)| *l == lang && *m == merchant)
                .map(|i| self.kb_spare.remove(i));
            match replacement {
                Some((t, l, m)) => self.create_entry(t, l, m, at + Duration::minutes(2), "")?,
                None => {
                    let edition = if lang == Lang::En {
                        " (2025 edition)"
                    } else {
                        "（2025版）"
                    };
                    self.create_entry(topic, lang, merchant, at + Duration::minutes(2), edition)?
                }
            }
        }
        Ok(())
    }

    /// Operations tighten the shipping queue's first-response target and move invoices up
    /// a priority step after a week of complaints.
    fn queue_change(&mut self) -> Result<(), HistoryError> {
        let at = self.sink.now;
        for (q, changes) in [
            (
                0,
                QueueChanges {
                    sla: Some(world::sla(45, 1_800)),
                    ..QueueChanges::default()
                },
            ),
            (
                2,
                QueueChanges {
                    priority: Some(3),
                    name: Some("自营-发票与报销".into()),
                    ..QueueChanges::default()
                },
            ),
        ] {
            let meta = self.admin();
            self.sink.run1(
                &mut self.queues[q].stream,
                "QueueCommand::Change",
                at,
                &meta,
                |at| QueueCommand::Change { changes, at },
            )?;
            if let Some(name) = self.queues[q].stream.state_name() {
                self.queues[q].name = name;
            }
        }
        Ok(())
    }

    /// A merchant moves its service to a new team: a new queue (a queue cannot change
    /// sides, and its skills change), then the old one is retired. Conversations already
    /// waiting in the old queue are still served.
    fn queue_replacement(&mut self) -> Result<(), HistoryError> {
        let Some(&old) = self.merchant_queue.get(1).or(self.merchant_queue.first()) else {
            return Ok(());
        };
        let QueueRole::Merchant(m) = self.queues[old].role else {
            return Ok(());
        };
        let mut spec = merchant_queue_spec(m);
        spec.first_response_secs = 90;
        let name = format!("商家-{}（新客服团队）", MERCHANTS[m].name);
        let new = self.define_queue(&spec, name)?;
        self.merchant_queue[m] = new;
        let meta = self.admin();
        let at = self.sink.now + Duration::minutes(1);
        self.sink.run1(
            &mut self.queues[old].stream,
            "QueueCommand::Retire",
            at,
            &meta,
            |at| QueueCommand::Retire {
                reason: "merchant moved its customer service to a new team".into(),
                at,
            },
        )?;
        self.queues[old].retired = true;
        Ok(())
    }
}

fn merchant_queue_spec(m: usize) -> QueueSpec {
    let merchant = &MERCHANTS[m];
    QueueSpec {
        name: merchant.name,
        role: QueueRole::Merchant(m),
        categories: &SERVICE_CATEGORIES,
        skills: world::merchant_skill(m),
        priority: 3,
        first_response_secs: 120,
        resolution_secs: 3_600,
        hours: if merchant.always_open {
            world::Hours::Always
        } else if m == 3 {
            world::Hours::Office
        } else {
            world::Hours::Daytime
        },
    }
}

impl Stream<QueueDecider> {
    pub(crate) fn state_name(&self) -> Option<String> {
        match &self.state {
            kefu_domain::queue::QueueState::Active(q) => Some(q.name.clone()),
            _ => None,
        }
    }
}

/// A lazily generated history: see [`super::plan`].
pub struct Plan {
    engine: Result<Box<Engine>, Option<HistoryError>>,
}

impl Plan {
    pub(crate) fn new(config: &HistoryConfig) -> Self {
        Plan {
            engine: Engine::new(config).map(Box::new).map_err(Some),
        }
    }

    /// What has been planned so far; after the iterator is exhausted, the whole history.
    pub fn summary(&self) -> HistorySummary {
        match &self.engine {
            Ok(engine) => engine.summary(),
            Err(_) => HistorySummary::default(),
        }
    }
}

impl Iterator for Plan {
    type Item = Result<PlannedAppend, HistoryError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.engine {
            Err(error) => error.take().map(Err),
            Ok(engine) => match engine.next_append() {
                Ok(next) => next.map(Ok),
                Err(error) => {
                    self.engine = Err(None);
                    Some(Err(error))
                }
            },
        }
    }
}
