//! Administration: the degradation switches, queues, agents and the knowledge base.

use std::collections::BTreeSet;

use kefu_domain::agent::{AgentCommand, AgentDecider, AgentStatus};
use kefu_domain::common::BusinessLine;
use kefu_domain::ids::{AgentId, Category, KnowledgeEntryId, Locale, QueueId, Skill};
use kefu_domain::knowledge::{KnowledgeCommand, KnowledgeDecider, KnowledgeEdit};
use kefu_domain::queue::{OpeningHours, QueueChanges, QueueCommand, QueueDecider, SlaTargets};
use kefu_domain::switches::{SWITCHBOARD, Switch, SwitchBoard, SwitchBoardDecider, SwitchCommand};
use kefu_eventlog::{EventLog, Metadata};

use crate::command::CommandError;

use crate::{Desk, Done, Reached};

/// A new queue, as an admin defines it.
#[derive(Debug, Clone)]
pub struct QueueDefinition {
    pub name: String,
    pub business_line: BusinessLine,
    pub categories: BTreeSet<Category>,
    pub skills: BTreeSet<Skill>,
    pub priority: u8,
    pub sla: SlaTargets,
    pub hours: OpeningHours,
}

/// A new knowledge-base entry.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub question: String,
    pub paraphrases: Vec<String>,
    pub answer: String,
    pub category: Category,
    pub locale: Locale,
}

impl<L: EventLog> Desk<L> {
    // ---- switches ----

    /// The degradation switches as they stand.
    pub async fn switchboard(&self) -> Result<SwitchBoard, CommandError> {
        Ok(self
            .commands
            .load::<SwitchBoardDecider>(SWITCHBOARD)
            .await?
            .state)
    }

    pub async fn set_switch(
        &self,
        switch: Switch,
        on: bool,
        reason: String,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let command = SwitchCommand::Set {
            switch,
            on,
            reason,
            at: self.now(),
        };
        self.one::<SwitchBoardDecider>(SWITCHBOARD, command, meta)
            .await
    }

    // ---- administration ----

    pub async fn define_queue(
        &self,
        definition: QueueDefinition,
        meta: &Metadata,
    ) -> Result<Done<QueueId>, CommandError> {
        let mut reached = Reached::default();
        let id = QueueId::from_uuid(self.commands.new_id());
        let command = QueueCommand::Define {
            queue: id,
            name: definition.name,
            business_line: definition.business_line,
            categories: definition.categories,
            skills: definition.skills,
            priority: definition.priority,
            sla: definition.sla,
            hours: definition.hours,
            at: self.now(),
        };
        self.run::<QueueDecider>(&mut reached, id, command, meta)
            .await?;
        Ok(reached.done(id))
    }

    pub async fn change_queue(
        &self,
        queue: QueueId,
        changes: QueueChanges,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let command = QueueCommand::Change {
            changes,
            at: self.now(),
        };
        self.one::<QueueDecider>(queue, command, meta).await
    }

    pub async fn retire_queue(
        &self,
        queue: QueueId,
        reason: String,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let command = QueueCommand::Retire {
            reason,
            at: self.now(),
        };
        self.one::<QueueDecider>(queue, command, meta).await
    }

    /// Registers an agent under a given id (the id their login carries).
    pub async fn register_agent(
        &self,
        agent: AgentId,
        name: String,
        skills: BTreeSet<Skill>,
        max_concurrent: u32,
        meta: &Metadata,
    ) -> Result<Done<AgentId>, CommandError> {
        let mut reached = Reached::default();
        let command = AgentCommand::Register {
            agent,
            name,
            skills,
            max_concurrent,
            at: self.now(),
        };
        self.run::<AgentDecider>(&mut reached, agent, command, meta)
            .await?;
        Ok(reached.done(agent))
    }

    /// Changes an agent's skills and seats as one decision (both or neither).
    pub async fn change_agent(
        &self,
        agent: AgentId,
        skills: Option<BTreeSet<Skill>>,
        max_concurrent: Option<u32>,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let mut reached = Reached::default();
        let at = self.now();
        let mut commands = Vec::new();
        if let Some(skills) = skills {
            commands.push(AgentCommand::ChangeSkills { skills, at });
        }
        if let Some(max_concurrent) = max_concurrent {
            commands.push(AgentCommand::ChangeCapacity { max_concurrent, at });
        }
        if !commands.is_empty() {
            self.run_all::<AgentDecider>(&mut reached, agent, commands, meta)
                .await?;
        }
        Ok(reached.done(()))
    }

    pub async fn set_agent_status(
        &self,
        agent: AgentId,
        status: AgentStatus,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let command = AgentCommand::SetStatus {
            status,
            at: self.now(),
        };
        self.one::<AgentDecider>(agent, command, meta).await
    }

    pub async fn create_entry(
        &self,
        entry: KnowledgeEntryId,
        new: NewEntry,
        meta: &Metadata,
    ) -> Result<Done<KnowledgeEntryId>, CommandError> {
        let mut reached = Reached::default();
        let command = KnowledgeCommand::Create {
            entry,
            question: new.question,
            paraphrases: new.paraphrases,
            answer: new.answer,
            category: new.category,
            locale: new.locale,
            at: self.now(),
        };
        self.run::<KnowledgeDecider>(&mut reached, entry, command, meta)
            .await?;
        Ok(reached.done(entry))
    }

    pub async fn edit_entry(
        &self,
        entry: KnowledgeEntryId,
        edit: KnowledgeEdit,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let command = KnowledgeCommand::Edit {
            edit,
            at: self.now(),
        };
        self.one::<KnowledgeDecider>(entry, command, meta).await
    }

    pub async fn retire_entry(
        &self,
        entry: KnowledgeEntryId,
        reason: String,
        meta: &Metadata,
    ) -> Result<Done<()>, CommandError> {
        let command = KnowledgeCommand::Retire {
            reason,
            at: self.now(),
        };
        self.one::<KnowledgeDecider>(entry, command, meta).await
    }
}
