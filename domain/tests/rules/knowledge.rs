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

fn create_in(category: &str, paraphrases: Vec<String>) -> C {
    C::Create {
        entry: ENTRY,
        question: "退款多久到账？".into(),
        paraphrases,
        answer: "退款审核通过后1-3个工作日原路退回。".into(),
        category: Category::from(category),
        locale: Locale::from("zh-CN"),
        at: t(0),
    }
}

/// A real shop's KB: categories in the shop's language, and hundreds of ways customers asked
/// its busiest question.
#[test]
fn categories_may_be_any_script_and_busy_questions_carry_hundreds_of_paraphrases() {
    let asked: Vec<String> = (1..=300)
        .map(|n| format!("第{n}种问法：钱什么时候退回来"))
        .collect();
    for category in [
        "售后服务",
        "退换货/退款",
        "Returns & refunds",
        "配送·物流",
        "refunds",
    ] {
        Entry::new()
            .when(create_in(category, asked.clone()))
            .unwrap_or_else(|e| panic!("{category}: {e}"));
    }
    for category in [
        "",
        " 售后",
        "售后\t服务",
        "售后\n",
        "售后  服务",
        "a\"b",
        &"类".repeat(65),
    ] {
        assert_refused!(
            Entry::new().when(create_in(category, vec![])),
            E::Validation {
                field: "category",
                ..
            }
        );
    }
    let too_many: Vec<String> = (0..=kefu_domain::knowledge::MAX_PARAPHRASES)
        .map(|n| format!("问法{n}"))
        .collect();
    let refused = Entry::new()
        .when(create_in("售后服务", too_many))
        .unwrap_err()
        .to_string();
    assert!(refused.contains("1001 given; at most 1000"), "{refused}");
    let too_long: Vec<String> = (0..400)
        .map(|n| format!("{n}{}", "长".repeat(400)))
        .collect();
    let refused = Entry::new()
        .when(create_in("售后服务", too_long))
        .unwrap_err()
        .to_string();
    assert!(refused.contains("the limit is 150000"), "{refused}");
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
