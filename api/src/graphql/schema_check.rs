//! The breaking-change check between the committed schema (`schemas/schema.graphql`, what
//! frontends build against) and this code's schema. A breaking change (a type, field,
//! argument, enum value or union member removed; a field's type changed in a way a saved query
//! or its generated types would not survive; a new required argument or input field) fails
//! unless `schemas/breaking-changes.md` declares it with a line `` - `Name`: reason ``, Name
//! being `Type`, `Type.field`, `Type.field(argument)` or `Enum.VALUE`. Additive changes only
//! need the schema re-blessed.

use std::collections::{BTreeMap, BTreeSet};

use async_graphql::parser::parse_schema;
use async_graphql::parser::types::{
    BaseType, FieldDefinition, InputValueDefinition, Type, TypeKind, TypeSystemDefinition,
};

/// The parts of a type a client can depend on.
#[derive(Debug)]
enum Shape {
    Scalar,
    Object(BTreeMap<String, Field>, BTreeSet<String>),
    Union(BTreeSet<String>),
    Enum(BTreeSet<String>),
    Input(BTreeMap<String, Arg>),
}

impl Shape {
    fn kind(&self) -> &'static str {
        match self {
            Shape::Scalar => "scalar",
            Shape::Object(..) => "object or interface",
            Shape::Union(_) => "union",
            Shape::Enum(_) => "enum",
            Shape::Input(_) => "input object",
        }
    }
}

#[derive(Debug)]
struct Field {
    ty: Type,
    args: BTreeMap<String, Arg>,
}

#[derive(Debug)]
struct Arg {
    ty: Type,
    has_default: bool,
}

fn args(list: &[async_graphql::Positioned<InputValueDefinition>]) -> BTreeMap<String, Arg> {
    list.iter()
        .map(|a| {
            (
                a.node.name.node.to_string(),
                Arg {
                    ty: a.node.ty.node.clone(),
                    has_default: a.node.default_value.is_some(),
                },
            )
        })
        .collect()
}

fn fields(list: &[async_graphql::Positioned<FieldDefinition>]) -> BTreeMap<String, Field> {
    list.iter()
        .map(|f| {
            (
                f.node.name.node.to_string(),
                Field {
                    ty: f.node.ty.node.clone(),
                    args: args(&f.node.arguments),
                },
            )
        })
        .collect()
}

fn shapes(sdl: &str) -> Result<BTreeMap<String, Shape>, String> {
    let doc = parse_schema(sdl).map_err(|e| format!("not SDL: {e}"))?;
    let mut out = BTreeMap::new();
    for def in doc.definitions {
        let TypeSystemDefinition::Type(t) = def else {
            continue;
        };
        let names = |l: &[async_graphql::Positioned<async_graphql::Name>]| {
            l.iter()
                .map(|n| n.node.to_string())
                .collect::<BTreeSet<_>>()
        };
        let shape = match &t.node.kind {
            TypeKind::Scalar => Shape::Scalar,
            TypeKind::Object(o) => Shape::Object(fields(&o.fields), names(&o.implements)),
            TypeKind::Interface(i) => Shape::Object(fields(&i.fields), names(&i.implements)),
            TypeKind::Union(u) => Shape::Union(names(&u.members)),
            TypeKind::Enum(e) => Shape::Enum(
                e.values
                    .iter()
                    .map(|v| v.node.value.node.to_string())
                    .collect(),
            ),
            TypeKind::InputObject(i) => Shape::Input(args(&i.fields)),
        };
        out.insert(t.node.name.node.to_string(), shape);
    }
    Ok(out)
}

/// Whether a query written against output type `old` still reads `new`: the same named
/// types, list for list, and never less sure of a value (non-null may not become nullable).
fn output_compatible(old: &Type, new: &Type) -> bool {
    (old.nullable || !new.nullable) && base_compatible(&old.base, &new.base, output_compatible)
}

/// Whether every value a client sends for input type `old` is still accepted as `new`:
/// nullable may not become non-null.
fn input_compatible(old: &Type, new: &Type) -> bool {
    (!old.nullable || new.nullable) && base_compatible(&old.base, &new.base, input_compatible)
}

fn base_compatible(old: &BaseType, new: &BaseType, inner: fn(&Type, &Type) -> bool) -> bool {
    match (old, new) {
        (BaseType::Named(a), BaseType::Named(b)) => a == b,
        (BaseType::List(a), BaseType::List(b)) => inner(a, b),
        _ => false,
    }
}

fn required(a: &Arg) -> bool {
    !a.ty.nullable && !a.has_default
}

fn args_breaks(
    at: &str,
    old: &BTreeMap<String, Arg>,
    new: &BTreeMap<String, Arg>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, o) in old {
        match new.get(name) {
            None => out.push((format!("{at}({name})"), "argument removed".to_owned())),
            Some(n) if !input_compatible(&o.ty, &n.ty) => out.push((
                format!("{at}({name})"),
                format!("argument type {} became {}", o.ty, n.ty),
            )),
            Some(_) => {}
        }
    }
    for (name, n) in new {
        if !old.contains_key(name) && required(n) {
            out.push((
                format!("{at}({name})"),
                format!("new required argument {}", n.ty),
            ));
        }
    }
    out
}

/// The breaking changes from `old` to `new`: (name, what changed), sorted by name.
pub fn breaking_changes(old: &str, new: &str) -> Result<Vec<(String, String)>, String> {
    let (old, new) = (shapes(old)?, shapes(new)?);
    let mut out = Vec::new();
    for (name, o) in &old {
        let Some(n) = new.get(name) else {
            out.push((name.clone(), "type removed".to_owned()));
            continue;
        };
        match (o, n) {
            (Shape::Scalar, Shape::Scalar) => {}
            (Shape::Object(of, oi), Shape::Object(nf, ni)) => {
                for i in oi.difference(ni) {
                    out.push((name.clone(), format!("no longer implements {i}")));
                }
                for (f, old_field) in of {
                    let at = format!("{name}.{f}");
                    match nf.get(f) {
                        None => out.push((at, "field removed".to_owned())),
                        Some(new_field) => {
                            if !output_compatible(&old_field.ty, &new_field.ty) {
                                out.push((
                                    at.clone(),
                                    format!("type {} became {}", old_field.ty, new_field.ty),
                                ));
                            }
                            out.extend(args_breaks(&at, &old_field.args, &new_field.args));
                        }
                    }
                }
            }
            (Shape::Union(om), Shape::Union(nm)) => {
                for m in om.difference(nm) {
                    out.push((format!("{name}.{m}"), "union member removed".to_owned()));
                }
            }
            (Shape::Enum(ov), Shape::Enum(nv)) => {
                for v in ov.difference(nv) {
                    out.push((format!("{name}.{v}"), "enum value removed".to_owned()));
                }
            }
            (Shape::Input(of), Shape::Input(nf)) => {
                for (f, o) in of {
                    match nf.get(f) {
                        None => out.push((format!("{name}.{f}"), "input field removed".to_owned())),
                        Some(n) if !input_compatible(&o.ty, &n.ty) => out.push((
                            format!("{name}.{f}"),
                            format!("input field type {} became {}", o.ty, n.ty),
                        )),
                        Some(_) => {}
                    }
                }
                for (f, n) in nf {
                    if !of.contains_key(f) && required(n) {
                        out.push((format!("{name}.{f}"), "new required input field".to_owned()));
                    }
                }
            }
            (o, n) => out.push((
                name.clone(),
                format!("was a {}, is a {}", o.kind(), n.kind()),
            )),
        }
    }
    out.sort();
    Ok(out)
}

/// The names `breaking-changes.md` declares: every line `` - `Name`: reason `` (a reason is
/// required, so a declaration says why).
pub fn declared(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("- `"))
        .filter_map(|l| l.split_once("`:"))
        .filter(|(_, reason)| !reason.trim().is_empty())
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// The breaking changes from `old` to `new` that `declarations` does not declare.
pub fn undeclared(old: &str, new: &str, declarations: &str) -> Result<Vec<String>, String> {
    let declared = declared(declarations);
    Ok(breaking_changes(old, new)?
        .into_iter()
        .filter(|(name, _)| !declared.contains(name))
        .map(|(name, what)| format!("{name}: {what}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = r#"
        type Query { a(x: Int): Thing! b: String c: [Int!]! gone: Int }
        type Thing { id: ID! tag: String }
        enum Color { RED GREEN }
        input Filter { q: String }
        union U = Thing | Other
        type Other { n: Int }
    "#;

    fn changes(new: &str) -> Vec<String> {
        breaking_changes(OLD, new)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    #[test]
    fn additions_are_not_breaking() {
        let new = r#"
            type Query { a(x: Int, y: Int, z: Int = 3): Thing! b: String! c: [Int!]! gone: Int more: Int }
            type Thing { id: ID! tag: String extra: Int }
            enum Color { RED GREEN BLUE }
            input Filter { q: String r: Int }
            union U = Thing | Other | New
            type Other { n: Int }
            type New { n: Int }
        "#;
        assert_eq!(changes(new), Vec::<String>::new());
    }

    #[test]
    fn removals_and_incompatible_types_are_breaking() {
        let new = r#"
            type Query { a(x: Int!, y: Int!): Thing b: Int c: [Int]! }
            type Thing { id: ID! }
            enum Color { RED }
            input Filter { q: String! }
            union U = Thing
        "#;
        assert_eq!(
            changes(new),
            [
                "Color.GREEN",
                "Filter.q",
                "Other",
                "Query.a",
                "Query.a(x)",
                "Query.a(y)",
                "Query.b",
                "Query.c",
                "Query.gone",
                "Thing.tag",
                "U.Other",
            ]
        );
    }

    #[test]
    fn declared_changes_pass_and_need_a_reason() {
        let new = OLD.replace(" gone: Int", "");
        let text = "# Breaking changes\n- `Query.gone`: nobody read it\n- `Query.b`:\n";
        assert_eq!(undeclared(OLD, &new, text).unwrap(), Vec::<String>::new());
        assert_eq!(declared(text), BTreeSet::from(["Query.gone".to_owned()]));
        assert_eq!(
            undeclared(OLD, &new, "").unwrap(),
            ["Query.gone: field removed"]
        );
    }
}
