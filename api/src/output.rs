//! What the read commands print: rows of any `Serialize` type as JSON lines, one JSON array,
//! CSV or an aligned table. Every format sees the same row: contact and card numbers masked
//! as the search index masks them (what `kefu query` prints lands in terminals, tickets and
//! chat logs), and every time in RFC 3339. Rows are turned into JSON values first, so a field
//! added to a row type shows up in every format without a change here.

use std::borrow::Cow;
use std::io::Write;

use anyhow::{Context, Result};
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use clap::{Args, ValueEnum};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// An aligned table for people (long cells cut; one row is shown as field / value).
    Table,
    /// One JSON array of every row.
    Json,
    /// One JSON object per line.
    #[default]
    Jsonl,
    /// RFC 4180: a header line, then one line per row; nested fields as `a.b` columns,
    /// lists of values joined with "; ".
    Csv,
}

#[derive(Args, Debug, Clone, Default)]
pub struct OutputArgs {
    /// How rows are printed: table, json, jsonl or csv.
    #[arg(long, value_enum, default_value_t = Format::Jsonl, global = true)]
    pub format: Format,
    /// The time zone of every printed time, of date-only bounds and of statistics' day and
    /// hour buckets, e.g. +08:00 or -05:00. Without it times are printed in UTC (`Z`), dates
    /// are UTC's, and statistics' buckets and dates China's (+08:00).
    #[arg(long, global = true, allow_hyphen_values = true, value_parser = parse_offset)]
    pub utc_offset: Option<FixedOffset>,
}

/// `+08:00`, `-05:00`, `+0530`, `Z`.
pub fn parse_offset(s: &str) -> Result<FixedOffset, String> {
    let probe = format!("2000-01-01T00:00:00{s}");
    DateTime::parse_from_rfc3339(&probe)
        .map(|t| *t.offset())
        .or_else(|_| DateTime::parse_from_str(&probe, "%Y-%m-%dT%H:%M:%S%z").map(|t| *t.offset()))
        .map_err(|_| format!("{s:?} is not a UTC offset such as +08:00 or -05:00"))
}

/// An instant as every read command prints it: RFC 3339, at `offset` or in UTC with `Z`,
/// with as many fractional digits as it has (none, milliseconds, ...).
pub fn rfc3339(t: DateTime<Utc>, offset: Option<FixedOffset>) -> String {
    match offset {
        Some(o) => t
            .with_timezone(&o)
            .to_rfc3339_opts(SecondsFormat::AutoSi, false),
        None => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    }
}

/// Whether a field holds a time, by its name: `at`, `time`, `since`, `*_at`, `*_due`,
/// `*_since`. Read models keep times as epoch milliseconds and events as RFC 3339 text;
/// both are printed one way. `every_integer_column_is_a_time_or_not_by_name` (in
/// `read_cmd.rs`) holds every read model's columns to this.
pub fn is_time_field(name: &str) -> bool {
    kefu_projections::sql::is_time_column(name)
}

/// A row as JSON with its fields in the order the row type declares them (`serde_json::Value`
/// sorts them): that order is the columns' order in CSV and tables, and the fields' in JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

impl Serialize for Node {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Node::Null => s.serialize_unit(),
            Node::Bool(b) => s.serialize_bool(*b),
            Node::Number(n) => n.serialize(s),
            Node::String(t) => s.serialize_str(t),
            Node::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Node::Object(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for Node {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Node;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                serde::Deserialize::deserialize(d)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Node, E> {
                Ok(Node::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Node, E> {
                Ok(Node::Number(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Node, E> {
                Ok(Node::Number(n.into()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Node, E> {
                Ok(serde_json::Number::from_f64(n).map_or(Node::Null, Node::Number))
            }
            fn visit_str<E>(self, t: &str) -> Result<Node, E> {
                Ok(Node::String(t.to_owned()))
            }
            fn visit_string<E>(self, t: String) -> Result<Node, E> {
                Ok(Node::String(t))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = a.next_element()? {
                    items.push(item);
                }
                Ok(Node::Array(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut fields = Vec::new();
                while let Some(field) = a.next_entry()? {
                    fields.push(field);
                }
                Ok(Node::Object(fields))
            }
        }
        d.deserialize_any(Visitor)
    }
}

fn fix_times(node: &mut Node, offset: Option<FixedOffset>) {
    match node {
        Node::Object(fields) => {
            for (name, v) in fields.iter_mut() {
                if is_time_field(name) {
                    let instant = match &*v {
                        Node::Number(n) => n.as_i64().and_then(DateTime::from_timestamp_millis),
                        Node::String(s) => DateTime::parse_from_rfc3339(s)
                            .ok()
                            .map(|t| t.with_timezone(&Utc)),
                        _ => None,
                    };
                    if let Some(t) = instant {
                        *v = Node::String(rfc3339(t, offset));
                        continue;
                    }
                }
                fix_times(v, offset);
            }
        }
        Node::Array(items) => items.iter_mut().for_each(|v| fix_times(v, offset)),
        Node::Null | Node::Bool(_) | Node::Number(_) | Node::String(_) => {}
    }
}

fn mask_strings(node: &mut Node) {
    match node {
        Node::String(s) => {
            if let Cow::Owned(masked) = kefu_projections::search::mask(s) {
                *s = masked;
            }
        }
        Node::Array(items) => items.iter_mut().for_each(mask_strings),
        Node::Object(fields) => fields.iter_mut().for_each(|(_, v)| mask_strings(v)),
        Node::Null | Node::Bool(_) | Node::Number(_) => {}
    }
}

impl Node {
    /// A row's fields in the order its type declares them.
    pub fn of(row: &impl Serialize) -> Result<Node> {
        // Through text, as the one serializer that keeps the order of fields is the writer's.
        let text = serde_json::to_string(row).context("a row does not serialize")?;
        serde_json::from_str(&text).context("a row does not read back")
    }

    /// The field `name` of an object.
    pub fn field_mut(&mut self, name: &str) -> Option<&mut Node> {
        match self {
            Node::Object(fields) => fields.iter_mut().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// A row as every format prints it: masked, times in RFC 3339, fields in declared order.
pub fn prepare(row: &impl Serialize, offset: Option<FixedOffset>) -> Result<Node> {
    let mut node = Node::of(row)?;
    mask_strings(&mut node);
    fix_times(&mut node, offset);
    Ok(node)
}

/// Nested values as `a.b` columns, lists of values joined with "; " (lists of objects as
/// `a.0.b`, `a.1.b`, ...), null as an empty cell: never JSON inside a cell.
fn flatten(prefix: &str, node: &Node, out: &mut Vec<(String, String)>) {
    let name = |key: &str| {
        if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}.{key}")
        }
    };
    match node {
        Node::Object(fields) => {
            for (k, v) in fields {
                flatten(&name(k), v, out);
            }
        }
        Node::Array(items)
            if items
                .iter()
                .all(|i| !matches!(i, Node::Object(_) | Node::Array(_))) =>
        {
            let cells: Vec<String> = items.iter().map(scalar).collect();
            out.push((prefix.to_owned(), cells.join("; ")));
        }
        Node::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&name(&i.to_string()), v, out);
            }
        }
        other => out.push((prefix.to_owned(), scalar(other))),
    }
}

/// A cell's text; `flatten` never hands it a list or an object.
fn scalar(node: &Node) -> String {
    match node {
        Node::Null => String::new(),
        Node::Bool(b) => b.to_string(),
        Node::Number(n) => n.to_string(),
        Node::String(s) => s.clone(),
        Node::Array(_) | Node::Object(_) => serde_json::to_string(node).unwrap_or_default(),
    }
}

/// Where rows go. JSON formats stream; CSV and tables need every row first (the header is
/// the union of every row's columns, in the order they first appear).
pub struct Output<W: Write> {
    out: W,
    format: Format,
    offset: Option<FixedOffset>,
    rows: Vec<Vec<(String, String)>>,
    written: usize,
}

impl<W: Write> Output<W> {
    pub fn new(out: W, args: &OutputArgs) -> Self {
        Output {
            out,
            format: args.format,
            offset: args.utc_offset,
            rows: Vec::new(),
            written: 0,
        }
    }

    pub fn row(&mut self, row: &impl Serialize) -> Result<()> {
        let value = prepare(row, self.offset)?;
        match self.format {
            Format::Jsonl => {
                serde_json::to_writer(&mut self.out, &value)?;
                writeln!(self.out)?;
            }
            Format::Json => {
                self.out
                    .write_all(if self.written == 0 { b"[\n" } else { b",\n" })?;
                serde_json::to_writer(&mut self.out, &value)?;
            }
            Format::Csv | Format::Table => {
                let mut cells = Vec::new();
                let prefix = if matches!(value, Node::Object(_)) {
                    ""
                } else {
                    "value"
                };
                flatten(prefix, &value, &mut cells);
                self.rows.push(cells);
            }
        }
        self.written += 1;
        Ok(())
    }

    pub fn finish(mut self) -> Result<()> {
        match self.format {
            Format::Jsonl => {}
            Format::Json => {
                self.out
                    .write_all(if self.written == 0 { b"[]\n" } else { b"\n]\n" })?;
            }
            Format::Csv => {
                let (header, rows) = columns(&self.rows);
                write_csv_line(&mut self.out, header.iter().map(|h| h.as_str()))?;
                for row in &rows {
                    write_csv_line(&mut self.out, row.iter().map(|c| c.as_str()))?;
                }
            }
            Format::Table => {
                if self.rows.is_empty() {
                    notice("no rows");
                } else {
                    let (header, rows) = columns(&self.rows);
                    write_table(&mut self.out, &header, &rows)?;
                }
            }
        }
        self.out.flush()?;
        Ok(())
    }
}

/// Said on stderr, so it is never taken for a row: paging cursors, totals, empty answers.
pub fn notice(text: &str) {
    eprintln!("{text}");
}

/// The header (every column, in the order first seen) and each row's cells under it.
fn columns(rows: &[Vec<(String, String)>]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut header: Vec<String> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for row in rows {
        for (name, _) in row {
            if !index.contains_key(name) {
                index.insert(name.clone(), header.len());
                header.push(name.clone());
            }
        }
    }
    let table = rows
        .iter()
        .map(|row| {
            let mut cells = vec![String::new(); header.len()];
            for (name, cell) in row {
                cells[index[name]] = cell.clone();
            }
            cells
        })
        .collect();
    (header, table)
}

/// One RFC 4180 record: fields with a comma, quote or line break are quoted, quotes doubled,
/// CRLF at the end.
fn write_csv_line<'a>(out: &mut impl Write, cells: impl Iterator<Item = &'a str>) -> Result<()> {
    let mut line = String::new();
    for (i, cell) in cells.enumerate() {
        if i > 0 {
            line.push(',');
        }
        if cell.contains([',', '"', '\r', '\n']) {
            line.push('"');
            line.push_str(&cell.replace('"', "\"\""));
            line.push('"');
        } else {
            line.push_str(cell);
        }
    }
    line.push_str("\r\n");
    out.write_all(line.as_bytes())?;
    Ok(())
}

/// Longest a table cell is shown (in terminal columns); the rest is cut with "…".
const CELL_WIDTH: usize = 40;

fn write_table(out: &mut impl Write, header: &[String], rows: &[Vec<String>]) -> Result<()> {
    if let [row] = rows {
        // One record (a conversation, a ticket) has too many columns to read across.
        let pairs: Vec<Vec<String>> = header
            .iter()
            .zip(row)
            .map(|(h, c)| vec![h.clone(), c.clone()])
            .collect();
        return write_aligned(out, &["field".to_owned(), "value".to_owned()], &pairs);
    }
    write_aligned(out, header, rows)
}

fn write_aligned(out: &mut impl Write, header: &[String], rows: &[Vec<String>]) -> Result<()> {
    let shown: Vec<Vec<String>> = std::iter::once(header.to_vec())
        .chain(rows.iter().cloned())
        .map(|r| r.iter().map(|c| cut(c)).collect())
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| shown.iter().map(|r| width(&r[i])).max().unwrap_or(0))
        .collect();
    for row in &shown {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                line.push_str(&" ".repeat(widths[i] - width(cell) + 2));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// A cell on one line, at most `CELL_WIDTH` columns wide.
fn cut(cell: &str) -> String {
    let one_line = cell.replace(['\r', '\n', '\t'], " ");
    if width(&one_line) <= CELL_WIDTH {
        return one_line;
    }
    let mut out = String::new();
    let mut used = 0;
    for c in one_line.chars() {
        let w = char_width(c);
        if used + w > CELL_WIDTH - 1 {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

fn width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

/// Columns a character takes in a terminal: two for East Asian wide and full-width ones
/// (Chinese text, full-width punctuation, most emoji), none for combining marks.
fn char_width(c: char) -> usize {
    let c = u32::from(c);
    match c {
        0x0300..=0x036F | 0x200B..=0x200F | 0xFE00..=0xFE0F => 0,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x3FFFD => 2,
        _ => 1,
    }
}

/// Whether `e` (or what caused it) is stdout closed by its reader (`kefu query … | head`):
/// the reader has what it wanted, so the command ends quietly and successfully.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == Some(std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn render(format: Format, offset: Option<&str>, rows: &[Value]) -> String {
        let args = OutputArgs {
            format,
            utc_offset: offset.map(|o| parse_offset(o).unwrap()),
        };
        let mut buf = Vec::new();
        let mut out = Output::new(&mut buf, &args);
        for r in rows {
            out.row(r).unwrap();
        }
        out.finish().unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[derive(Serialize)]
    struct Queue {
        name: &'static str,
        skills: Vec<&'static str>,
    }

    #[derive(Serialize)]
    struct Row {
        id: &'static str,
        text: &'static str,
        queue: Queue,
        n: Option<i64>,
    }

    #[test]
    fn csv_quotes_as_rfc_4180_and_flattens_nested_values_in_declared_order() {
        let rows = [
            Row {
                id: "a",
                text: "say \"hi\", then\nbye",
                queue: Queue {
                    name: "售后",
                    skills: vec!["zh", "vip"],
                },
                n: None,
            },
            Row {
                id: "b",
                text: "plain",
                queue: Queue {
                    name: "x",
                    skills: vec![],
                },
                n: Some(2),
            },
        ];
        let args = OutputArgs {
            format: Format::Csv,
            utc_offset: None,
        };
        let mut buf = Vec::new();
        let mut out = Output::new(&mut buf, &args);
        for r in &rows {
            out.row(r).unwrap();
        }
        out.row(&json!({"extra": true, "id": "c"})).unwrap();
        out.finish().unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "id,text,queue.name,queue.skills,n,extra\r\n\
             a,\"say \"\"hi\"\", then\nbye\",售后,zh; vip,,\r\n\
             b,plain,x,,2,\r\n\
             c,,,,,true\r\n"
        );
    }

    #[test]
    fn lists_of_objects_become_numbered_columns() {
        let rows = [json!({"history": [{"field": "status"}, {"field": "priority"}]})];
        assert_eq!(
            render(Format::Csv, None, &rows),
            "history.0.field,history.1.field\r\nstatus,priority\r\n"
        );
    }

    #[test]
    fn jsonl_is_one_object_a_line_and_json_one_array() {
        let rows = [json!({"a": 1}), json!({"a": 2})];
        assert_eq!(render(Format::Jsonl, None, &rows), "{\"a\":1}\n{\"a\":2}\n");
        let array: Value = serde_json::from_str(&render(Format::Json, None, &rows)).unwrap();
        assert_eq!(array, json!([{"a": 1}, {"a": 2}]));
        assert_eq!(render(Format::Json, None, &[]), "[]\n");
    }

    #[test]
    fn times_are_rfc_3339_in_utc_or_at_the_offset_given() {
        let row = json!({
            "started_at": 1_795_651_200_000i64,
            "first_response_due": 1_795_651_200_500i64,
            "event": {"payload": {"at": "2026-11-20T06:00:00+00:00"}},
            "turns": 3,
            "text": "2026-11-20T06:00:00Z"
        });
        let utc: Value =
            serde_json::from_str(&render(Format::Jsonl, None, std::slice::from_ref(&row))).unwrap();
        assert_eq!(utc["started_at"], "2026-11-26T00:00:00Z");
        assert_eq!(utc["first_response_due"], "2026-11-26T00:00:00.500Z");
        assert_eq!(utc["event"]["payload"]["at"], "2026-11-20T06:00:00Z");
        assert_eq!(utc["turns"], 3, "a count is not a time");
        assert_eq!(utc["text"], "2026-11-20T06:00:00Z", "text is left alone");
        let west: Value =
            serde_json::from_str(&render(Format::Jsonl, Some("-05:00"), &[row])).unwrap();
        assert_eq!(west["started_at"], "2026-11-25T19:00:00-05:00");
        assert_eq!(west["event"]["payload"]["at"], "2026-11-20T01:00:00-05:00");
    }

    #[test]
    fn every_format_masks_contact_numbers() {
        let row = json!({"text": "call 13812345678"});
        for format in [Format::Jsonl, Format::Json, Format::Csv, Format::Table] {
            let out = render(format, None, std::slice::from_ref(&row));
            assert!(!out.contains("13812345678"), "{format:?}: {out}");
        }
    }

    #[test]
    fn tables_align_wide_characters_and_cut_long_cells() {
        let rows = [
            json!({"name": "售后", "n": 1}),
            json!({"name": "invoices", "n": 22}),
            json!({"name": "x".repeat(60), "n": 3}),
        ];
        let out = render(Format::Table, None, &rows);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0].find('n').map(|_| ()), Some(()));
        let column = |l: &str| width(&l[..l.rfind(' ').unwrap() + 1]);
        assert!(lines.iter().all(|l| column(l) == column(lines[0])), "{out}");
        assert!(lines[3].contains('…') && width(lines[3]) < 50, "{out}");
        let one = render(
            Format::Table,
            None,
            &[json!({"id": "t-1", "status": "open"})],
        );
        assert_eq!(one, "field   value\nid      t-1\nstatus  open\n");
    }

    #[test]
    fn offsets_parse_with_either_sign() {
        assert_eq!(parse_offset("-05:00").unwrap().local_minus_utc(), -5 * 3600);
        assert_eq!(parse_offset("+0530").unwrap().local_minus_utc(), 19800);
        assert_eq!(parse_offset("Z").unwrap().local_minus_utc(), 0);
        assert!(parse_offset("EST").unwrap_err().contains("EST"));
    }
}
