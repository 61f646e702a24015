//! Agents: teams, skills, shifts and breaks, and the assigner that gives waiting
//! conversations to agents with a free seat.
//!
//! Capacity is respected the way kefu's assigner respects it: the seat is taken on the agent's
//! stream (`TakeChat`, which the agent decider refuses when the agent is full, away or offline)
//! before the conversation records the assignment with the agent's fresh snapshot. When every
//! suitable agent is full, conversations wait, and some customers give up.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use kefu_domain::agent::{AgentCommand, AgentDecider, AgentStatus};
use kefu_domain::ids::{AgentId, ConversationId};
use kefu_eventlog::{Actor, ActorKind, Metadata};
use rand::Rng;

use super::HistoryError;
use super::arrivals::local;
use super::conversations::ConvSim;
use super::engine::{Action, Engine};
use super::stream::Stream;
use super::texts::{AGENT_ENGLISH_NAMES, AGENT_GIVEN_NAMES, AGENT_SURNAMES, MERCHANTS};
use super::world::{
    self, LOCAL_OFFSET_MINUTES, SKILL_ENGLISH, SKILL_RETAIL, SKILL_VIP, SPECIALITIES,
};

/// A working pattern in local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shift {
    pub group: u8,
    pub starts_minute: i64,
    pub minutes: i64,
}

const EARLY: Shift = Shift {
    group: 0,
    starts_minute: 8 * 60,
    minutes: 510,
};
const MID: Shift = Shift {
    group: 1,
    starts_minute: 11 * 60,
    minutes: 510,
};
const LATE: Shift = Shift {
    group: 2,
    starts_minute: 15 * 60,
    minutes: 510,
};
const NIGHT: Shift = Shift {
    group: 3,
    starts_minute: 23 * 60,
    minutes: 570,
};
const MERCHANT_LATE: Shift = Shift {
    group: 2,
    starts_minute: 14 * 60 + 30,
    minutes: 510,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Team {
    SelfOperated,
    Merchant(usize),
}

pub(crate) struct AgentSim {
    pub stream: Stream<AgentDecider>,
    pub id: AgentId,
    pub name: String,
    pub skills: u32,
    pub team: Team,
    pub shift: Shift,
    /// Local weekdays off, Monday = 0.
    pub days_off: [u32; 2],
    pub max: u32,
    pub active: u32,
    pub status: AgentStatus,
    /// Past the end of the shift, finishing the chats they hold.
    pub leaving: bool,
    pub on_break: bool,
    /// Leaves the company once their chats are done.
    pub retiring: bool,
    pub retired: bool,
}

impl AgentSim {
    pub fn actor(&self) -> Actor {
        Actor::new(ActorKind::Agent, self.id.to_string())
    }

    fn can_take(&self, need: u32) -> bool {
        self.status == AgentStatus::Online
            && !self.retired
            && self.active < self.max
            && self.skills & need == need
    }
}

/// A merchant team covers its opening hours on six days a week.
fn merchant_team_floor(merchant: &super::texts::Merchant) -> u32 {
    if merchant.always_open { 4 } else { 3 }
}

/// The smallest desk that staffs every queue on every shift.
pub(crate) fn min_agents(merchants: usize) -> u32 {
    let merchant_agents: u32 = MERCHANTS
        .iter()
        .take(merchants)
        .map(merchant_team_floor)
        .sum();
    12 + merchant_agents
}

/// Enough agents that the evening peak fills most seats and queues build up at the worst
/// moments, without customers routinely abandoning.
pub(crate) fn agents_for(conversations: u64, days: u32, merchants: usize) -> u32 {
    let per_day = conversations as f64 / f64::from(days.max(1));
    // Seats busy at the busiest hour: 7-8 % of a day's chats start then, a third reach an
    // agent, and an agent chat lasts about eleven minutes.
    let peak_seats = per_day * 0.078 * 0.33 * (11.0 / 60.0);
    // About four seats per agent; the late shift holds a third of the staff on five days
    // of seven.
    // A third more keeps the first-response targets at ordinary peaks.
    let needed = peak_seats / 4.0 / (0.34 * 5.0 / 7.0) * 1.3;
    (needed.ceil() as u32).max(min_agents(merchants))
}

fn shift_for_self_operated(j: usize, n: usize) -> Shift {
    // Night 12 %, early 36 %, mid 16 %, late 36 %, with the minimum each shift needs.
    let night = (n * 12 / 100).max(2);
    let mid = (n * 16 / 100).max(2);
    let early = ((n - night - mid) / 2).max(4);
    match j {
        _ if j < night => NIGHT,
        _ if j < night + early => EARLY,
        _ if j < night + early + mid => MID,
        _ => LATE,
    }
}

impl Engine {
    pub(crate) fn register_agents(&mut self) -> Result<(), HistoryError> {
        let total = self.cfg.agents as usize;
        let merchants = self.cfg.merchants;
        let min_merchant = min_agents(merchants) as usize - 12;
        // Merchant orders are about a third of the order traffic.
        let merchant_total = (total * 30 / 100).max(min_merchant).min(total - 12);
        // Team sizes follow each merchant's share of orders, each at least its floor; the
        // rounding is settled on the largest teams so the total is exact.
        let floors: Vec<usize> = MERCHANTS
            .iter()
            .take(merchants)
            .map(|m| merchant_team_floor(m) as usize)
            .collect();
        let weight_sum: f64 = MERCHANTS.iter().take(merchants).map(|m| m.weight).sum();
        let mut sizes: Vec<usize> = MERCHANTS
            .iter()
            .take(merchants)
            .zip(&floors)
            .map(|(m, floor)| {
                ((merchant_total as f64 * m.weight / weight_sum).round() as usize).max(*floor)
            })
            .collect();
        while sizes.iter().sum::<usize>() > merchant_total {
            let Some(m) = (0..merchants)
                .filter(|&m| sizes[m] > floors[m])
                .max_by_key(|&m| sizes[m])
            else {
                break;
            };
            sizes[m] -= 1;
        }
        while sizes.iter().sum::<usize>() < merchant_total {
            let Some(m) = (0..merchants).max_by_key(|&m| sizes[m]) else {
                break;
            };
            sizes[m] += 1;
        }
        let teams: Vec<Team> = sizes
            .iter()
            .enumerate()
            .flat_map(|(m, &size)| std::iter::repeat_n(Team::Merchant(m), size))
            .collect();
        let self_operated = total.saturating_sub(teams.len()).max(12);
        let mut plan: Vec<(Team, Shift, u32)> = (0..self_operated)
            .map(|j| {
                let shift = shift_for_self_operated(j, self_operated);
                (Team::SelfOperated, shift, 0)
            })
            .collect();
        // Skills rotate within each shift so every speciality, VIP and English are covered
        // on every shift; the few night agents are generalists.
        for group in 0..4u8 {
            let members: Vec<usize> = (0..plan.len())
                .filter(|&i| plan[i].1.group == group)
                .collect();
            for (j, &i) in members.iter().enumerate() {
                let mut skills = SKILL_RETAIL;
                if group == NIGHT.group {
                    skills |= SPECIALITIES.iter().fold(0, |all, s| all | s);
                    if j % 2 == 1 {
                        skills |= SKILL_VIP;
                    }
                } else {
                    skills |= SPECIALITIES[j % 4] | SPECIALITIES[(j + 1 + j / 4) % 4];
                    if self.chance(0.3) {
                        skills |= SPECIALITIES[self.rng().random_range(0..4)];
                    }
                    if j % 3 == 1 {
                        skills |= SKILL_VIP;
                    }
                    if j % 5 == 2 || (j == 0 && members.len() < 3) {
                        skills |= SKILL_ENGLISH;
                    }
                }
                plan[i].2 = skills;
            }
        }
        let mut index_in_team = vec![0usize; merchants];
        let mut merchant_index: Vec<usize> = Vec::new();
        for team in teams {
            let Team::Merchant(m) = team else { continue };
            let j = index_in_team[m];
            index_in_team[m] += 1;
            let shifts: &[Shift] = if MERCHANTS[m].always_open {
                &[EARLY, MERCHANT_LATE, NIGHT]
            } else {
                &[EARLY, MERCHANT_LATE]
            };
            plan.push((team, shifts[j % shifts.len()], world::merchant_skill(m)));
            merchant_index.push(j);
        }
        let self_operated = plan.len() - merchant_index.len();
        for (i, (team, shift, skills)) in plan.into_iter().enumerate() {
            // Two consecutive days off, staggered so every weekday has most of the team;
            // merchants' small teams work six days, off on different days.
            let days_off = match team {
                Team::SelfOperated => {
                    let first = ((i * 3) % 7) as u32;
                    [first, (first + 1) % 7]
                }
                Team::Merchant(m) => {
                    let day = ((merchant_index[i - self_operated] * 2 + m) % 7) as u32;
                    [day, day]
                }
            };
            self.register_agent(i, team, shift, skills, days_off)?;
        }
        Ok(())
    }

    fn register_agent(
        &mut self,
        i: usize,
        team: Team,
        shift: Shift,
        skills: u32,
        days_off: [u32; 2],
    ) -> Result<(), HistoryError> {
        let at = self.sink.now + Duration::seconds(i as i64 * 2);
        let id = AgentId::from(self.sink.mint(at));
        let rng = self.rng();
        let surname = AGENT_SURNAMES[rng.random_range(0..AGENT_SURNAMES.len())];
        let given = AGENT_GIVEN_NAMES[rng.random_range(0..AGENT_GIVEN_NAMES.len())];
        let name = if skills & SKILL_ENGLISH != 0 {
            let english = AGENT_ENGLISH_NAMES[rng.random_range(0..AGENT_ENGLISH_NAMES.len())];
            format!("{surname}{given} {english}")
        } else {
            format!("{surname}{given}")
        };
        let max = match team {
            Team::SelfOperated if skills & SKILL_VIP != 0 => rng.random_range(3..=4),
            Team::SelfOperated => rng.random_range(3..=5),
            Team::Merchant(_) => rng.random_range(3..=4),
        };
        let mut stream = Stream::<AgentDecider>::new(id)?;
        let meta = self.sink.request(Actor::system("admin-console"), false);
        let display = format!("{name} (工号 {})", 10_000 + i);
        self.sink
            .run1(&mut stream, "AgentCommand::Register", at, &meta, |at| {
                AgentCommand::Register {
                    agent: id,
                    name: display.clone(),
                    skills: world::skill_set(skills),
                    max_concurrent: max,
                    at,
                }
            })?;
        self.agents.push(AgentSim {
            stream,
            id,
            name,
            skills,
            team,
            shift,
            days_off,
            max,
            active: 0,
            status: AgentStatus::Offline,
            leaving: false,
            on_break: false,
            retiring: false,
            retired: false,
        });
        Ok(())
    }

    // ---- shifts ----

    fn shift_starting_on(&self, a: usize, day: NaiveDate) -> Option<DateTime<Utc>> {
        let agent = &self.agents[a];
        if agent
            .days_off
            .contains(&day.weekday().num_days_from_monday())
        {
            return None;
        }
        let midnight = day.and_hms_opt(0, 0, 0)?.and_utc()
            - Duration::minutes(i64::from(LOCAL_OFFSET_MINUTES));
        Some(midnight + Duration::minutes(agent.shift.starts_minute))
    }

    /// The first shift start at or after `after`.
    fn next_shift(&self, a: usize, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let today = local(after).date_naive();
        (0..9)
            .filter_map(|d| self.shift_starting_on(a, today + Duration::days(d)))
            .find(|start| *start >= after)
    }

    pub(crate) fn schedule_first_shifts(&mut self) {
        let start = self.cfg.start;
        for a in 0..self.agents.len() {
            let yesterday = local(start).date_naive() - Duration::days(1);
            let running = self
                .shift_starting_on(a, yesterday)
                .filter(|s| *s + Duration::minutes(self.agents[a].shift.minutes) > start);
            let first = match running {
                Some(shift) => Some((start, shift)),
                None => self.next_shift(a, start).map(|s| (s, s)),
            };
            if let Some((at, nominal)) = first {
                self.begin_shift_at(a, at, nominal);
            }
        }
    }

    /// Schedules the shift that nominally starts at `nominal`, the agent logging in at `at`.
    fn begin_shift_at(&mut self, a: usize, at: DateTime<Utc>, nominal: DateTime<Utc>) {
        if nominal >= self.end {
            return;
        }
        self.schedule(at, Action::ShiftStart { agent: a });
        let minutes = self.agents[a].shift.minutes;
        let over = self.rng().random_range(0..12);
        self.schedule(
            nominal + Duration::minutes(minutes + over),
            Action::ShiftEnd { agent: a },
        );
        let first_break = nominal + Duration::minutes(120 + self.rng().random_range(0..60));
        if first_break > at {
            self.schedule(
                first_break,
                Action::BreakStart {
                    agent: a,
                    minutes: 15,
                },
            );
        }
        if self.chance(0.85) {
            let lunch = nominal + Duration::minutes(255 + self.rng().random_range(0..45));
            if lunch > at {
                self.schedule(
                    lunch,
                    Action::BreakStart {
                        agent: a,
                        minutes: 30,
                    },
                );
            }
        }
    }

    fn agent_request(&mut self, a: usize) -> Metadata {
        let actor = self.agents[a].actor();
        self.sink.request(actor, false)
    }

    fn set_status(
        &mut self,
        a: usize,
        status: AgentStatus,
        at: DateTime<Utc>,
    ) -> Result<(), HistoryError> {
        if self.agents[a].status == status {
            return Ok(());
        }
        let meta = self.agent_request(a);
        self.sink.run1(
            &mut self.agents[a].stream,
            "AgentCommand::SetStatus",
            at,
            &meta,
            |at| AgentCommand::SetStatus { status, at },
        )?;
        self.agents[a].status = status;
        Ok(())
    }

    pub(crate) fn shift_start(&mut self, a: usize) -> Result<(), HistoryError> {
        if self.agents[a].retired || self.agents[a].retiring {
            return Ok(());
        }
        self.agents[a].leaving = false;
        self.agents[a].on_break = false;
        let now = self.sink.now;
        self.set_status(a, AgentStatus::Online, now)?;
        self.agent_available(a)
    }

    pub(crate) fn shift_end(&mut self, a: usize) -> Result<(), HistoryError> {
        if self.agents[a].retired {
            return Ok(());
        }
        let now = self.sink.now;
        // Log in for the next shift a few minutes early.
        if let Some(next) = self.next_shift(a, now + Duration::hours(1)) {
            let early = self.rng().random_range(0..10);
            self.begin_shift_at(a, next - Duration::minutes(early), next);
        }
        self.agents[a].leaving = true;
        self.agents[a].on_break = false;
        if self.agents[a].active == 0 {
            self.go_offline(a, now)
        } else {
            self.set_status(a, AgentStatus::Away, now)
        }
    }

    fn go_offline(&mut self, a: usize, at: DateTime<Utc>) -> Result<(), HistoryError> {
        self.set_status(a, AgentStatus::Offline, at)?;
        self.agents[a].leaving = false;
        if self.agents[a].retiring {
            self.retire(a, at + Duration::minutes(5))?;
        }
        Ok(())
    }

    pub(crate) fn break_start(&mut self, a: usize, minutes: i64) -> Result<(), HistoryError> {
        let agent = &self.agents[a];
        if agent.status != AgentStatus::Online || agent.leaving || agent.retired {
            return Ok(());
        }
        let now = self.sink.now;
        self.set_status(a, AgentStatus::Away, now)?;
        self.agents[a].on_break = true;
        self.schedule(
            now + Duration::minutes(minutes),
            Action::BreakEnd { agent: a },
        );
        Ok(())
    }

    pub(crate) fn break_end(&mut self, a: usize) -> Result<(), HistoryError> {
        if !self.agents[a].on_break {
            return Ok(());
        }
        self.agents[a].on_break = false;
        if self.agents[a].leaving || self.agents[a].retired {
            return Ok(());
        }
        let now = self.sink.now;
        self.set_status(a, AgentStatus::Online, now)?;
        self.agent_available(a)
    }

    // ---- seats ----

    /// Frees `a`'s seat for `conversation` after a close or a transfer, as the release
    /// worker does in reaction to `cause`.
    pub(crate) fn release_seat(
        &mut self,
        a: usize,
        conversation: ConversationId,
        cause: &super::stream::Cause,
        at: DateTime<Utc>,
    ) -> Result<(), HistoryError> {
        let meta = cause.metadata(Actor::system("assigner"));
        self.sink.run1(
            &mut self.agents[a].stream,
            "AgentCommand::ReleaseChat",
            at,
            &meta,
            |at| AgentCommand::ReleaseChat { conversation, at },
        )?;
        self.agents[a].active -= 1;
        if self.agents[a].leaving && self.agents[a].active == 0 {
            let later = at + Duration::seconds(self.rng().random_range(20..120));
            return self.go_offline(a, later);
        }
        Ok(())
    }

    /// The best agent for a conversation needing `need`: online, a free seat, the skills;
    /// the least loaded first, as an assigner balancing load picks.
    pub(crate) fn best_agent(&self, need: u32, except: Option<usize>) -> Option<usize> {
        self.agents
            .iter()
            .enumerate()
            .filter(|(a, agent)| Some(*a) != except && agent.can_take(need))
            .min_by(|(_, x), (_, y)| {
                (u64::from(x.active) * u64::from(y.max))
                    .cmp(&(u64::from(y.active) * u64::from(x.max)))
            })
            .map(|(a, _)| a)
    }

    /// Gives waiting conversations to `a` while they have free seats.
    pub(crate) fn agent_available(&mut self, a: usize) -> Result<(), HistoryError> {
        while self.agents[a].can_take(0) {
            let skills = self.agents[a].skills;
            let next = self.waiting.values().copied().find(|id| {
                self.convs
                    .get(id)
                    .is_some_and(|c| c.need & skills == c.need)
            });
            let Some(id) = next else { break };
            let Some(mut conv) = self.convs.remove(&id) else {
                break;
            };
            let result = self.assign(&mut conv, a);
            self.convs.insert(id, conv);
            result?;
        }
        Ok(())
    }

    /// Assigns a waiting conversation to an agent who can take it: seat first, then the
    /// conversation, both in reaction to the conversation joining the queue.
    pub(crate) fn assign(&mut self, conv: &mut ConvSim, a: usize) -> Result<(), HistoryError> {
        let Some(queued) = conv.queued.clone() else {
            return Ok(());
        };
        let now = self.sink.now;
        let at = now + Duration::milliseconds(self.rng().random_range(150..900));
        let assigner = Actor::system("assigner");
        let taken = self.sink.run1(
            &mut self.agents[a].stream,
            "AgentCommand::TakeChat",
            at,
            &queued.cause.metadata(assigner.clone()),
            |at| AgentCommand::TakeChat {
                conversation: conv.id,
                at,
            },
        )?;
        let snapshot = self.agents[a].stream.state.snapshot(self.agents[a].id);
        self.sink.run1(
            &mut conv.stream,
            "ConversationCommand::AssignAgent",
            at,
            &taken.metadata(assigner),
            |at| kefu_domain::conversation::ConversationCommand::AssignAgent {
                agent: snapshot,
                at,
            },
        )?;
        self.agents[a].active += 1;
        self.waiting.remove(&queued.key);
        conv.queued = None;
        let waited = u64::try_from((at - queued.since).num_seconds()).unwrap_or(0);
        self.stats.total_wait_secs += waited;
        self.stats.max_wait_secs = self.stats.max_wait_secs.max(waited);
        conv.waited_secs += waited;
        self.begin_agent_phase(conv, a, at)
    }

    // ---- changes over the period ----

    /// A few agents finish their English course, a few get one more seat after review, and
    /// one merchant agent gets one fewer.
    pub(crate) fn agent_changes(&mut self) -> Result<(), HistoryError> {
        let now = self.sink.now;
        let learners: Vec<usize> = (0..self.agents.len())
            .filter(|&a| {
                let agent = &self.agents[a];
                agent.team == Team::SelfOperated
                    && agent.skills & SKILL_ENGLISH == 0
                    && !agent.retired
            })
            .take(2)
            .collect();
        for a in learners {
            let skills = self.agents[a].skills | SKILL_ENGLISH;
            let meta = self.sink.request(Actor::system("admin-console"), false);
            self.sink.run1(
                &mut self.agents[a].stream,
                "AgentCommand::ChangeSkills",
                now,
                &meta,
                |at| AgentCommand::ChangeSkills {
                    skills: world::skill_set(skills),
                    at,
                },
            )?;
            self.agents[a].skills = skills;
        }
        let n = self.agents.len();
        for k in 0..3 {
            let a = (k * 7 + 3) % n;
            if self.agents[a].retired || self.agents[a].max >= 50 {
                continue;
            }
            let max = self.agents[a].max + 1;
            self.change_capacity(a, max, now)?;
        }
        if let Some(a) = (0..n).rev().find(|&a| {
            let agent = &self.agents[a];
            matches!(agent.team, Team::Merchant(_)) && agent.max > 3 && agent.active < agent.max
        }) {
            let max = self.agents[a].max - 1;
            self.change_capacity(a, max, now)?;
        }
        Ok(())
    }

    fn change_capacity(
        &mut self,
        a: usize,
        max: u32,
        at: DateTime<Utc>,
    ) -> Result<(), HistoryError> {
        let meta = self.sink.request(Actor::system("admin-console"), false);
        self.sink.run1(
            &mut self.agents[a].stream,
            "AgentCommand::ChangeCapacity",
            at,
            &meta,
            |at| AgentCommand::ChangeCapacity {
                max_concurrent: max,
                at,
            },
        )?;
        self.agents[a].max = max;
        if max > self.agents[a].active {
            self.agent_available(a)?;
        }
        Ok(())
    }

    /// An agent leaves the company: one whose skills others on the same shift cover. They
    /// retire once they hold no chats and are logged out.
    pub(crate) fn agent_retirement(&mut self) -> Result<(), HistoryError> {
        let n = self.agents.len();
        let covered = |engine: &Engine, a: usize| {
            let agent = &engine.agents[a];
            (0..32)
                .filter(|bit| agent.skills & (1 << bit) != 0)
                .all(|bit| {
                    (0..n).any(|o| {
                        let other = &engine.agents[o];
                        o != a
                            && !other.retired
                            && !other.retiring
                            && other.team == agent.team
                            && other.shift == agent.shift
                            && other.skills & (1 << bit) != 0
                    })
                })
        };
        // The knowledge team lead (agent 0) stays.
        let Some(a) = (1..n)
            .rev()
            .find(|&a| !self.agents[a].retired && covered(self, a))
        else {
            return Ok(());
        };
        self.agents[a].retiring = true;
        if self.agents[a].status == AgentStatus::Offline && self.agents[a].active == 0 {
            let now = self.sink.now;
            self.retire(a, now)?;
        }
        Ok(())
    }

    fn retire(&mut self, a: usize, at: DateTime<Utc>) -> Result<(), HistoryError> {
        let meta = self.sink.request(Actor::system("admin-console"), false);
        self.sink.run1(
            &mut self.agents[a].stream,
            "AgentCommand::Retire",
            at,
            &meta,
            |at| AgentCommand::Retire { at },
        )?;
        self.agents[a].retired = true;
        self.agents[a].retiring = false;
        self.reassign_tickets_of(a, at)
    }
}
