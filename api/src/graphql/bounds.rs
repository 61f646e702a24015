//! The request boundary's own checks, run on the parsed document before async-graphql
//! validates or executes it, so that no request under the body limit costs more than its
//! size to refuse.
//!
//! async-graphql's depth and complexity limits walk every fragment spread before they
//! compare, so a kilobyte of fragments that spread each other twice costs 2^n to reject.
//! Here every fragment is summarised once (memoised) and a spread adds its fragment's
//! summary, so the expanded size of any document is known in time linear in its text, and
//! refused before anything expands it. The same pass bounds directives, operations,
//! fragments and the root mutation fields, refuses fragment cycles, and range-checks every
//! argument value (variables resolved) against [`argument_rule`].

use std::collections::HashMap;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
};
// async-graphql names the constant value `Value`; the parser's own `Value` may hold variables.
use async_graphql::{Name, Value as ConstValue, Variables};

use super::ApiError;

/// How large a request's document may be.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Deepest selection nesting, fragments expanded.
    pub max_depth: usize,
    /// Fields (each alias counts), arguments, variable definitions, fragment spreads, inline
    /// fragments and directives, with every spread counted as often as it is expanded.
    pub max_nodes: u64,
    /// Operations in one document.
    pub max_operations: usize,
    /// Fragment definitions in one document.
    pub max_fragments: usize,
    /// Root fields of a mutation: each is one decision and counts against the rate limit.
    /// One by default, so that a refused request has written nothing: with more, each field
    /// runs on its own and a refusal does not undo the fields before it.
    pub max_root_mutations: u64,
    /// Brackets (`{`, `[`, `(`) open at once in the text; the parser recurses on them.
    pub max_nesting: usize,
    /// Tokens in the text (names, numbers, strings, punctuators), counted before parsing so
    /// that the parser never works through more.
    pub max_tokens: usize,
    /// Bytes of query text; data belongs in variables, which are JSON and cheap to read.
    pub max_query_bytes: usize,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            max_depth: 12,
            max_nodes: 500,
            max_operations: 10,
            max_fragments: 100,
            max_root_mutations: 1,
            max_nesting: 64,
            max_tokens: 10_000,
            max_query_bytes: 32 * 1024,
        }
    }
}

/// What the executed operation is, as far as the boundary needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    pub kind: OperationType,
    /// Root fields of a mutation (0 for queries and subscriptions).
    pub root_mutations: u64,
}

fn invalid(message: String) -> ApiError {
    ApiError::Validation(message)
}

/// Refuses a query text whose brackets nest deeper than `max_nesting`, or that holds more
/// than `max_tokens` tokens, before the recursive parser sees it. One pass: strings, block
/// strings and comments are skipped (a string is one token).
pub fn check_text(query: &str, max_nesting: usize, max_tokens: usize) -> Result<(), ApiError> {
    let bytes = query.as_bytes();
    let max_bytes = Shape::default().max_query_bytes;
    if bytes.len() > max_bytes {
        return Err(invalid(format!(
            "the query text is {} bytes; the limit is {max_bytes} (pass large values as variables)",
            bytes.len()
        )));
    }
    let (mut depth, mut tokens, mut i) = (0usize, 0usize, 0usize);
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_whitespace() || b == b',' {
            i += 1;
            continue;
        }
        if b == b'#' {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        tokens += 1;
        if tokens > max_tokens {
            return Err(invalid(format!(
                "the query has more than {max_tokens} tokens"
            )));
        }
        match b {
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 3;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > max_nesting {
                    return Err(invalid(format!(
                        "the query nests brackets more than {max_nesting} deep"
                    )));
                }
                i += 1;
            }
            b'}' | b']' | b')' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'.' if bytes[i..].starts_with(b"...") => i += 3,
            // Names and numbers (with their signs, points and exponents): one token each.
            _ if word(b) || b == b'-' => {
                i += 1;
                while i < bytes.len() && (word(bytes[i]) || matches!(bytes[i], b'.' | b'+' | b'-'))
                {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// One definition's cost with its spreads expanded.
#[derive(Debug, Clone, Copy, Default)]
struct Summary {
    nodes: u64,
    depth: usize,
    /// Fields at the top level of the selection set (through spreads and inline fragments).
    top_fields: u64,
}

struct Walker<'a> {
    doc: &'a ExecutableDocument,
    memo: HashMap<&'a str, Summary>,
    /// Fragments being summarised, in order: a spread of one of them is a cycle.
    active: Vec<&'a str>,
}

impl<'a> Walker<'a> {
    fn fragment(&mut self, name: &'a str) -> Result<Summary, ApiError> {
        if let Some(s) = self.memo.get(name) {
            return Ok(*s);
        }
        if let Some(at) = self.active.iter().position(|a| *a == name) {
            let mut path = self.active[at..].to_vec();
            path.push(name);
            return Err(invalid(format!(
                "fragment {name} spreads itself ({})",
                path.join(" → ")
            )));
        }
        // An unknown fragment costs nothing here; async-graphql names it.
        let Some(def) = self.doc.fragments.get(name) else {
            return Ok(Summary::default());
        };
        self.active.push(name);
        let directives = def.node.directives.len() as u64;
        let mut s = self.selection_set(&def.node.selection_set.node)?;
        s.nodes = s.nodes.saturating_add(directives);
        self.active.pop();
        self.memo.insert(name, s);
        Ok(s)
    }

    fn selection_set(&mut self, set: &'a SelectionSet) -> Result<Summary, ApiError> {
        let mut out = Summary::default();
        for item in &set.items {
            let directives = item.node.directives().len() as u64;
            let inner = match &item.node {
                Selection::Field(f) => {
                    let child = self.selection_set(&f.node.selection_set.node)?;
                    out.top_fields = out.top_fields.saturating_add(1);
                    Summary {
                        nodes: child
                            .nodes
                            .saturating_add(1 + f.node.arguments.len() as u64),
                        depth: child.depth + 1,
                        top_fields: 0,
                    }
                }
                Selection::FragmentSpread(s) => {
                    let frag = self.fragment(s.node.fragment_name.node.as_str())?;
                    out.top_fields = out.top_fields.saturating_add(frag.top_fields);
                    Summary {
                        nodes: frag.nodes.saturating_add(1),
                        ..frag
                    }
                }
                Selection::InlineFragment(i) => {
                    let child = self.selection_set(&i.node.selection_set.node)?;
                    out.top_fields = out.top_fields.saturating_add(child.top_fields);
                    Summary {
                        nodes: child.nodes.saturating_add(1),
                        ..child
                    }
                }
            };
            out.nodes = out
                .nodes
                .saturating_add(inner.nodes)
                .saturating_add(directives);
            out.depth = out.depth.max(inner.depth);
        }
        Ok(out)
    }
}

/// Checks the document's size and shape, fragments expanded without expanding them, and
/// says what the operation that will run is.
pub fn check_shape(
    doc: &ExecutableDocument,
    operation_name: Option<&str>,
    shape: &Shape,
) -> Result<Admitted, ApiError> {
    let operations: Vec<(Option<&Name>, _)> = match &doc.operations {
        DocumentOperations::Single(op) => vec![(None, op)],
        DocumentOperations::Multiple(ops) => ops.iter().map(|(n, op)| (Some(n), op)).collect(),
    };
    if operations.len() > shape.max_operations {
        return Err(invalid(format!(
            "the document holds {} operations; the limit is {}",
            operations.len(),
            shape.max_operations
        )));
    }
    if doc.fragments.len() > shape.max_fragments {
        return Err(invalid(format!(
            "the document holds {} fragments; the limit is {}",
            doc.fragments.len(),
            shape.max_fragments
        )));
    }
    let mut walker = Walker {
        doc,
        memo: HashMap::new(),
        active: Vec::new(),
    };
    // Every fragment, used or not: a cycle is an error wherever it is.
    for name in doc.fragments.keys() {
        walker.fragment(name.as_str())?;
    }
    let mut admitted = None;
    let mut total: u64 = 0;
    for (name, op) in &operations {
        let mut s = walker.selection_set(&op.node.selection_set.node)?;
        let variables = op.node.variable_definitions.len() as u64;
        s.nodes = s
            .nodes
            .saturating_add(op.node.directives.len() as u64)
            .saturating_add(variables);
        total = total.saturating_add(s.nodes);
        if s.depth > shape.max_depth {
            return Err(invalid(format!(
                "the query is {} levels deep with its fragments expanded; the limit is {} (--max-query-depth)",
                s.depth, shape.max_depth
            )));
        }
        let selected = match (operation_name, name) {
            (Some(wanted), Some(n)) => n.as_str() == wanted,
            (None, _) => operations.len() == 1,
            (Some(_), None) => false,
        };
        if selected {
            let root_mutations = if op.node.ty == OperationType::Mutation {
                s.top_fields
            } else {
                0
            };
            admitted = Some(Admitted {
                kind: op.node.ty,
                root_mutations,
            });
        }
    }
    // Fragments nobody spreads are still validated by async-graphql: count them once.
    let unused: u64 = walker.memo.values().fold(0u64, |acc, s| {
        acc.saturating_add(s.nodes.min(shape.max_nodes + 1))
    });
    let nodes = total.max(unused);
    if nodes > shape.max_nodes {
        return Err(invalid(format!(
            "the query expands to {} fields, arguments, variables, fragments and directives (aliases and every use of a fragment count); the limit is {} (--max-query-nodes)",
            if nodes == u64::MAX {
                "more than 2^64".to_owned()
            } else {
                nodes.to_string()
            },
            shape.max_nodes
        )));
    }
    // No selected operation: async-graphql answers with the precise reason.
    let admitted = admitted.unwrap_or(Admitted {
        kind: OperationType::Query,
        root_mutations: 0,
    });
    if admitted.root_mutations > shape.max_root_mutations {
        return Err(invalid(format!(
            "the mutation has {} root fields; the limit is {} per request (--max-root-mutations), so that a refused request writes nothing: send each change in a request of its own",
            admitted.root_mutations, shape.max_root_mutations
        )));
    }
    Ok(admitted)
}

/// What an argument (or input field) of a given name may hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    Int(i64, i64),
    Float(f64, f64),
    /// Longest string, in characters.
    Chars(usize),
}

/// Most items in a list argument.
pub const MAX_LIST_ITEMS: usize = 100;
/// Longest string argument that has no rule of its own (the domain's longest text).
pub const DEFAULT_MAX_CHARS: usize = kefu_domain::common::MAX_TEXT_CHARS;

/// The rule for argument `arg` of field `field` (input-object fields are named by their own
/// name). Every `Int` and `Float` argument in the schema has one: `every_numeric_argument_
/// has_a_rule` reads the SDL and fails on a new one without.
pub fn argument_rule(field: &str, arg: &str) -> Option<Rule> {
    use Rule::*;
    const DAY: i64 = 86_400;
    const I32: i64 = i32::MAX as i64;
    Some(match (field, arg) {
        ("streamEvents", "fromVersion") | (_, "generation") => Int(0, I32),
        (_, "first") => Int(1, 100),
        (_, "offset") => Int(0, 10_000),
        (_, "slots") => Int(1, 100),
        (_, "hours") => Int(1, 24 * 14),
        (_, "historyDays") => Int(1, 366),
        (_, "concurrency") | (_, "maxConcurrent") => Int(1, 50),
        // UTC-12:00 to UTC+14:00, the offsets in use.
        (_, "utcOffsetMinutes") => Int(-720, 840),
        (_, "score") => Int(1, 5),
        (_, "priority") => Int(1, i64::from(kefu_domain::queue::LOWEST_PRIORITY)),
        (_, "firstResponseSecs") | (_, "resolutionSecs") => Int(1, 90 * DAY),
        (_, "latencyMs") => Int(0, 60_000),
        // An order's money, in minor units: up to ten trillion yuan.
        (_, "minorUnits") => Int(0, 1_000_000_000_000_000),
        (_, "ahtSecs") | (_, "answerWithinSecs") => Float(1.0, DAY as f64),
        (_, "serviceLevel") => Float(0.001, 0.999),
        (_, "errorRate") => Float(0.0, 1.0),
        // whatIf and its change.
        (_, "seeds") => Int(1, 5),
        (_, "count") => Int(-1000, 1000),
        (_, "seats") => Int(1, 50),
        (_, "shiftFromHour") => Int(0, 23),
        (_, "shiftToHour") => Int(1, 24),
        (_, "answerThreshold" | "clarifyThreshold") => Float(0.0, 1.0),
        (_, "secs") => Int(1, 7 * DAY),
        (_, "locale") => Chars(35),
        (_, "idempotencyKey") => Chars(super::idempotency::MAX_KEY_CHARS),
        (_, "name" | "subject" | "reason" | "merchant") => {
            Chars(kefu_domain::common::MAX_LABEL_CHARS)
        }
        (_, "category" | "categories" | "skills" | "scenario" | "kinds" | "status" | "group")
        | (_, "handledBy" | "channel" | "businessLine" | "target") => Chars(100),
        (_, "question" | "paraphrases") => Chars(kefu_domain::knowledge::MAX_QUESTION_CHARS),
        // Ids, cursors, positions, times, stream names.
        (
            _,
            "id" | "conversationId" | "ticketId" | "queueId" | "agentId" | "entryId" | "customer"
            | "correlationId" | "orderId" | "messageId" | "toAgent" | "toQueue" | "queue"
            | "queues" | "agent" | "assignee" | "after" | "atLeast" | "stream" | "from" | "to",
        ) => Chars(200),
        _ => return None,
    })
}

/// Checks every argument of every field in the document (operations and fragments, each
/// once), variables resolved from the request or their defaults.
pub fn check_arguments(doc: &ExecutableDocument, variables: &Variables) -> Result<(), ApiError> {
    let mut defaults: HashMap<&Name, &ConstValue> = HashMap::new();
    for (_, op) in doc.operations.iter() {
        for v in &op.node.variable_definitions {
            if let Some(d) = v.node.default_value() {
                defaults.insert(&v.node.name.node, d);
            }
        }
    }
    let lookup = |name: &Name| -> ConstValue {
        variables
            .get(name)
            .or_else(|| defaults.get(name).copied())
            .cloned()
            .unwrap_or(ConstValue::Null)
    };
    let mut sets: Vec<&SelectionSet> = doc
        .operations
        .iter()
        .map(|(_, op)| &op.node.selection_set.node)
        .chain(doc.fragments.values().map(|f| &f.node.selection_set.node))
        .collect();
    while let Some(set) = sets.pop() {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    let field = f.node.name.node.as_str();
                    for (name, value) in &f.node.arguments {
                        let resolved = value
                            .node
                            .clone()
                            .into_const_with(|v| Ok::<_, std::convert::Infallible>(lookup(&v)))
                            .unwrap_or(ConstValue::Null);
                        check_value(field, name.node.as_str(), &resolved, 0)?;
                    }
                    sets.push(&f.node.selection_set.node);
                }
                Selection::InlineFragment(i) => sets.push(&i.node.selection_set.node),
                Selection::FragmentSpread(_) => {}
            }
        }
    }
    Ok(())
}

fn check_value(field: &str, arg: &str, value: &ConstValue, depth: usize) -> Result<(), ApiError> {
    let what = || format!("{field}({arg}:)");
    let rule = argument_rule(field, arg);
    match value {
        ConstValue::Number(n) => {
            let Some(f) = n.as_f64().filter(|f| f.is_finite()) else {
                return Err(invalid(format!("{}: {n} is not a finite number", what())));
            };
            match rule {
                Some(Rule::Int(lo, hi)) => {
                    let ok = n.as_i64().is_some_and(|i| (lo..=hi).contains(&i));
                    if !ok {
                        return Err(invalid(format!(
                            "{}: {n} is out of range; allowed {lo} to {hi}",
                            what()
                        )));
                    }
                }
                Some(Rule::Float(lo, hi)) if !(lo..=hi).contains(&f) => {
                    return Err(invalid(format!(
                        "{}: {n} is out of range; allowed {lo} to {hi}",
                        what()
                    )));
                }
                _ => {}
            }
        }
        ConstValue::String(s) => {
            let max = match rule {
                Some(Rule::Chars(max)) => max,
                _ => DEFAULT_MAX_CHARS,
            };
            // Bytes bound characters from above: count only when it could matter.
            if s.len() > max && s.chars().count() > max {
                return Err(invalid(format!(
                    "{}: {} characters; the limit is {max}",
                    what(),
                    s.chars().count()
                )));
            }
        }
        ConstValue::List(items) => {
            if items.len() > MAX_LIST_ITEMS {
                return Err(invalid(format!(
                    "{}: {} items; the limit is {MAX_LIST_ITEMS}",
                    what(),
                    items.len()
                )));
            }
            for item in items {
                check_value(field, arg, item, depth + 1)?;
            }
        }
        // An input object: its fields by their own names.
        ConstValue::Object(fields) => {
            if depth > 8 {
                return Err(invalid(format!("{}: nested too deep", what())));
            }
            for (k, v) in fields {
                check_value(arg, k.as_str(), v, depth + 1)?;
            }
        }
        ConstValue::Null | ConstValue::Boolean(_) | ConstValue::Enum(_) | ConstValue::Binary(_) => {
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    fn shape(query: &str) -> Result<Admitted, ApiError> {
        let d = Shape::default();
        check_text(query, d.max_nesting, d.max_tokens)?;
        let doc = parse_query(query).map_err(|e| invalid(e.to_string()))?;
        check_shape(&doc, None, &Shape::default())
    }

    /// `n` fragments, each spreading the next twice: 2^n fields once expanded.
    fn bomb(n: usize) -> String {
        let mut q = String::from("query { ...F0 }\n");
        for i in 0..n {
            q.push_str(&format!(
                "fragment F{i} on Query {{ ...F{} ...F{} }}\n",
                i + 1,
                i + 1
            ));
        }
        q.push_str(&format!("fragment F{n} on Query {{ me {{ id }} }}\n"));
        q
    }

    #[test]
    fn a_fragment_bomb_is_refused_by_its_expanded_size() {
        assert!(shape(&bomb(3)).is_ok());
        let e = shape(&bomb(90)).unwrap_err();
        assert!(e.message().contains("more than 2^64"), "{e:?}");
        let e = shape(&bomb(10)).unwrap_err();
        assert!(e.message().contains("--max-query-nodes"), "{e:?}");
    }

    #[test]
    fn fragment_cycles_are_named() {
        let q = "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }";
        let e = shape(q).unwrap_err();
        assert!(e.message().contains("spreads itself"), "{e:?}");
        let e = shape("query { me { id } } fragment A on Query { ...A }").unwrap_err();
        assert!(e.message().contains("A → A"), "{e:?}");
    }

    #[test]
    fn depth_counts_through_fragments() {
        let q = "query { a { ...F } } fragment F on X { b { c { d { e { f { g { h { i { j { k { l { m } } } } } } } } } } } }";
        let e = shape(q).unwrap_err();
        assert!(e.message().contains("levels deep"), "{e:?}");
    }

    #[test]
    fn tokens_are_counted_before_parsing() {
        let q = format!("{{ {} }}", "a ".repeat(10_001));
        assert!(
            shape(&format!("{{ f(a: \"{}\") }}", "x".repeat(40_000))).is_err(),
            "text size"
        );
        let e = shape(&q).unwrap_err();
        assert!(e.message().contains("10000 tokens"), "{e:?}");
        // A string is one token however long; `...` is one; a comment is none.
        let q = format!(
            "{{ f(a: \"{}\") ...F }} # {}",
            "x y ".repeat(3_000),
            "z ".repeat(3_000)
        );
        assert!(check_text(&q, 64, 10).is_ok());
        assert!(check_text(&q, 64, 9).is_err());
    }

    #[test]
    fn aliases_directives_and_operations_are_counted() {
        let aliases: String = (0..600).map(|i| format!("a{i}: __typename ")).collect();
        assert!(shape(&format!("{{ {aliases} }}")).is_err());
        let directives = "@skip(if: false)".repeat(600);
        assert!(shape(&format!("{{ __typename {directives} }}")).is_err());
        let ops: String = (0..11)
            .map(|i| format!("query Q{i} {{ __typename }} "))
            .collect();
        let e = shape(&ops).unwrap_err();
        assert!(e.message().contains("operations"), "{e:?}");
    }

    #[test]
    fn arguments_and_variables_are_counted() {
        let args: String = (0..600).map(|i| format!("a{i}: 1, ")).collect();
        assert!(shape(&format!("{{ f({args}) }}")).is_err());
        let vars: String = (0..600).map(|i| format!("$v{i}: Int, ")).collect();
        assert!(shape(&format!("query({vars}) {{ __typename }}")).is_err());
    }

    #[test]
    fn root_mutation_fields_are_counted_through_fragments() {
        let fields: String = (0..6)
            .map(|i| format!("m{i}: requestHuman(conversationId: \"x\") {{ position }} "))
            .collect();
        let q = format!("mutation {{ ...M ...M }} fragment M on Mutation {{ {fields} }}");
        let e = shape(&q).unwrap_err();
        assert!(e.message().contains("12 root fields"), "{e:?}");
        let q = "mutation { a: requestHuman(conversationId: \"x\") { position } b: requestHuman(conversationId: \"y\") { position } }";
        let e = shape(q).unwrap_err();
        assert!(e.message().contains("limit is 1"), "one by default: {e:?}");
        let ten = Shape {
            max_root_mutations: 10,
            ..Shape::default()
        };
        let doc = parse_query(q).unwrap();
        assert_eq!(check_shape(&doc, None, &ten).unwrap().root_mutations, 2);
    }

    #[test]
    fn deep_brackets_are_refused_before_parsing() {
        let deep = format!("{{ f(a: {}1{}) }}", "[".repeat(1_000), "]".repeat(1_000));
        let e = shape(&deep).unwrap_err();
        assert!(e.message().contains("nests brackets"), "{e:?}");
        // Brackets in strings and comments do not count.
        let q = format!("{{ f(a: \"{}\") }} # {}", "[".repeat(100), "{".repeat(100));
        assert!(check_text(&q, 64, 100).is_ok());
    }

    fn args(query: &str, variables: serde_json::Value) -> Result<(), ApiError> {
        let doc = parse_query(query).unwrap();
        check_arguments(&doc, &Variables::from_json(variables))
    }

    #[test]
    fn numeric_arguments_are_range_checked_literal_or_variable() {
        let e = args(
            "{ forecast(ahtSecs: 1e300) { hours } }",
            serde_json::json!({}),
        )
        .unwrap_err();
        assert!(e.message().contains("forecast(ahtSecs:)"), "{e:?}");
        assert!(e.message().contains("1 to 86400"), "{e:?}");
        let q = "query($o: Int!) { stats(group: \"day\", utcOffsetMinutes: $o) { n } }";
        assert!(args(q, serde_json::json!({"o": 2147483647})).is_err());
        assert!(args(q, serde_json::json!({"o": 480})).is_ok());
        let q = "query($o: Int = 99999) { stats(group: \"day\", utcOffsetMinutes: $o) { n } }";
        assert!(
            args(q, serde_json::json!({})).is_err(),
            "defaults are checked"
        );
        let q = "mutation($i: QueueInput!) { defineQueue(input: $i) { position } }";
        let e = args(q, serde_json::json!({"i": {"name": "x", "priority": 99}})).unwrap_err();
        assert!(e.message().contains("input(priority:)"), "{e:?}");
    }

    #[test]
    fn strings_and_lists_are_bounded() {
        let big = "x".repeat(200 * 1024);
        let q = "mutation($l: String) { startConversation(locale: $l) { position } }";
        let e = args(q, serde_json::json!({ "l": big })).unwrap_err();
        assert!(e.message().contains("startConversation(locale:)"), "{e:?}");
        let skills: Vec<String> = (0..101).map(|i| format!("s{i}")).collect();
        let q = "mutation($s: [String!]!) { registerAgent(name: \"n\", skills: $s, maxConcurrent: 2) { position } }";
        assert!(args(q, serde_json::json!({ "s": skills })).is_err());
        // Characters, not bytes: 35 Chinese characters are a 35-character locale.
        let q = format!(
            "mutation {{ startConversation(locale: \"{}\") {{ position }} }}",
            "中".repeat(35)
        );
        assert!(args(&q, serde_json::json!({})).is_ok());
    }

    /// Every `Int` and `Float` argument and input field of the schema has a rule, so a new
    /// one cannot arrive unchecked.
    #[test]
    fn every_numeric_argument_has_a_rule() {
        use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
        let sdl = super::super::sdl();
        let doc = async_graphql::parser::parse_schema(&sdl).unwrap();
        let numeric = |t: &async_graphql::parser::types::Type| {
            let base = t.to_string().replace(['[', ']', '!'], "");
            base == "Int" || base == "Float"
        };
        let mut missing = Vec::new();
        for def in &doc.definitions {
            let TypeSystemDefinition::Type(t) = def else {
                continue;
            };
            match &t.node.kind {
                TypeKind::Object(o) => {
                    for f in &o.fields {
                        for a in &f.node.arguments {
                            let (field, arg) =
                                (f.node.name.node.as_str(), a.node.name.node.as_str());
                            if numeric(&a.node.ty.node) && argument_rule(field, arg).is_none() {
                                missing.push(format!("{field}({arg}:)"));
                            }
                        }
                    }
                }
                TypeKind::InputObject(i) => {
                    for f in &i.fields {
                        let name = f.node.name.node.as_str();
                        if numeric(&f.node.ty.node) && argument_rule("input", name).is_none() {
                            missing.push(format!("{}.{name}", t.node.name.node));
                        }
                    }
                }
                _ => {}
            }
        }
        assert!(
            missing.is_empty(),
            "numeric arguments without a range rule: {missing:?}"
        );
    }
}
