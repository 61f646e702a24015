use kefu_domain::DomainError as E;
use kefu_domain::ids::{Category, Locale};
use kefu_domain::knowledge::{
    KnowledgeCommand as C, KnowledgeDecider, KnowledgeEdit, KnowledgeEntrySnapshot,
    KnowledgeEvent as Ev, KnowledgeState,
};

use crate::assert_refused;
use crate::support::*;

type Entry = History<KnowledgeDecider>;

fn create(paraphrases: &[&str]) -> C {
    C::Create {
        entry: ENTRY,
        question: "Where is my refund?".into(),
        paraphrases: paraphrases.iter().map(|p| p.to_string()).collect(),
        answer: "Refunds reach your account within 3 working days.".into(),
        category: Category::from("refunds"),
        locale: Locale::from("en"),
        at: t(0),
    }
}

fn edit(edit: KnowledgeEdit) -> C {
    C::Edit { edit, at: t(5) }
}

fn created() -> Entry {
    Entry::new().given(create(&["When do I get my money back?"]))
}

#[test]
fn paraphrases_may_not_repeat_the_question_or_each_other() {
    assert_refused!(
        Entry::new().when(create(&["where is my refund? "])),
        E::Validation {
            field: "paraphrases",
            ..
        }
    );
    assert_refused!(
        Entry::new().when(create(&["Money back?", "money back?"])),
        E::Validation {
            field: "paraphrases",
            ..
        }
    );
    assert_refused!(created().when(create(&[])), E::AlreadyExists { .. });
}

#[test]
fn an_edit_bumps_the_revision_and_records_only_changes() {
    let events = created()
        .when(edit(KnowledgeEdit {
            answer: Some("Refunds take up to 5 working days.".into()),
            category: Some(Category::from("refunds")),
            ..KnowledgeEdit::default()
        }))
        .unwrap();
    assert!(matches!(
        events.as_slice(),
        [Ev::KnowledgeEntryEdited(e)] if e.revision == 2 && e.answer.is_some() && e.category.is_none()
    ));
    assert_eq!(
        created().when(edit(KnowledgeEdit::default())).unwrap(),
        vec![]
    );
    assert_refused!(
        created().when(edit(KnowledgeEdit {
            answer: Some("  ".into()),
            ..KnowledgeEdit::default()
        })),
        E::Validation {
            field: "answer",
            ..
        }
    );
}

#[test]
fn a_retired_entry_is_not_edited_and_reads_as_retired() {
    let retired = created().given(C::Retire {
        reason: "policy changed".into(),
        at: t(9),
    });
    assert_refused!(
        retired.when(edit(KnowledgeEdit::default())),
        E::KnowledgeEntryRetired { .. }
    );
    assert!(matches!(retired.state(), KnowledgeState::Retired(_)));
    assert_eq!(
        retired.state().snapshot(ENTRY),
        KnowledgeEntrySnapshot::Retired(ENTRY)
    );
    assert_refused!(
        Entry::new().when(edit(KnowledgeEdit::default())),
        E::NotCreated { .. }
    );
}
