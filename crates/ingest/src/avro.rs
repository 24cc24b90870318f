//! Apache Avro object container files, read with the `apache-avro` crate, record by record (block by block,
//! never the whole file).
//!
//! Two kinds are met in practice:
//!
//! * **Azure Event Hubs Capture** (`EventData` records with `SequenceNumber`, `Offset`, `EnqueuedTimeUtc`,
//!   `SystemProperties`, `Properties` and `Body`): the `Body` bytes are what Azure Monitor sent, a
//!   `{"records":[…]}` batch or JSON lines. Each body is framed like a file of its own, and each audit record
//!   in it is an [`AvroItem::Body`] record: its provenance is the Event Hub event (the Avro record number) and
//!   the record's byte offset inside that body.
//! * **an audit table written as Avro** (`df.write.format("avro")`): each Avro record is one row, converted
//!   like a Parquet row (nested records and maps as objects, timestamps as UTC text).
//!
//! Bounds: a schema that refers to itself (the only way an Avro value nests deeper than its schema, whose
//! own JSON nesting `serde_json` caps) is refused before any data is read; a block's decompressed size is
//! capped by the crate's allocation limit, set here to [`MAX_AVRO_BLOCK_BYTES`].

use apache_avro::schema::Schema;
use apache_avro::types::Value as Avro;
use chrono::{DateTime, Utc};
use serde_json::{Map, Number, Value};
use std::io::Read;

/// The largest decompressed Avro block (and single value) the reader allocates.
pub const MAX_AVRO_BLOCK_BYTES: usize = 256 * 1024 * 1024;

/// The magic bytes of an Avro object container file.
pub const MAGIC: &[u8; 4] = b"Obj\x01";

/// What one Avro record is.
pub enum AvroItem {
    /// A row of an audit table: its columns as a JSON object.
    Row(Map<String, Value>),
    /// An Event Hubs Capture event: the bytes of its `Body`, to be framed as records.
    Body(Vec<u8>),
    /// A record that is neither (its number and why).
    NotARecord(String),
}

/// An Avro container file's records, in order.
pub struct AvroRecords {
    reader: apache_avro::Reader<'static, Box<dyn Read + Send>>,
    /// How many Avro records have been read (the current one's 1-based number).
    pub read: u64,
}

impl AvroRecords {
    /// Reads the header and schema. `Err` names why the file cannot be read as Avro.
    pub fn open(input: Box<dyn Read + Send>) -> Result<AvroRecords, String> {
        // Set once per process; later calls keep the first value.
        apache_avro::util::max_allocation_bytes(MAX_AVRO_BLOCK_BYTES);
        let reader = apache_avro::Reader::new(input)
            .map_err(|e| format!("not a readable Avro container file: {e}"))?;
        if refers_to_itself(reader.writer_schema()) {
            return Err(
                "refused: the Avro schema refers to a named type inside itself (values could nest without bound)"
                    .into(),
            );
        }
        Ok(AvroRecords { reader, read: 0 })
    }

    /// The next record; `Some(Err)` when the file cannot be read further (named by record number).
    pub fn next_record(&mut self) -> Option<Result<AvroItem, String>> {
        let next = self.reader.next()?;
        self.read += 1;
        Some(match next {
            Ok(v) => Ok(classify(v)),
            Err(e) => Err(format!(
                "Avro record {} cannot be read ({e}); the rest of the file could not be read",
                self.read
            )),
        })
    }
}

/// A record with a `Body` of bytes and Event Hubs' system fields is a capture event; any other record is
/// a row.
fn classify(v: Avro) -> AvroItem {
    let fields = match v {
        Avro::Record(fields) => fields,
        Avro::Union(_, inner) => return classify(*inner),
        other => {
            return AvroItem::NotARecord(format!("an Avro {} value, not a record", kind(&other)));
        }
    };
    let is_capture = fields
        .iter()
        .any(|(k, _)| k == "EnqueuedTimeUtc" || k == "SequenceNumber");
    if is_capture && let Some((_, body)) = fields.iter().find(|(k, _)| k == "Body") {
        return match unwrap_union(body) {
            Avro::Bytes(b) | Avro::Fixed(_, b) => AvroItem::Body(b.clone()),
            Avro::String(s) => AvroItem::Body(s.clone().into_bytes()),
            Avro::Null => AvroItem::NotARecord("an Event Hubs event with no Body".into()),
            other => AvroItem::NotARecord(format!(
                "an Event Hubs event whose Body is an Avro {} value",
                kind(other)
            )),
        };
    }
    AvroItem::Row(
        fields
            .into_iter()
            .map(|(k, v)| (k, to_json(v)))
            .collect::<Map<_, _>>(),
    )
}

fn unwrap_union(v: &Avro) -> &Avro {
    match v {
        Avro::Union(_, inner) => unwrap_union(inner),
        other => other,
    }
}

fn kind(v: &Avro) -> &'static str {
    match v {
        Avro::Null => "null",
        Avro::Boolean(_) => "boolean",
        Avro::Int(_) | Avro::Long(_) => "integer",
        Avro::Float(_) | Avro::Double(_) => "floating-point",
        Avro::Bytes(_) | Avro::Fixed(..) => "bytes",
        Avro::String(_) | Avro::Enum(..) | Avro::Uuid(_) => "string",
        Avro::Array(_) => "array",
        Avro::Map(_) => "map",
        Avro::Record(_) => "record",
        _ => "logical-type",
    }
}

fn utc(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| {
        Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    })
}

/// An Avro value as JSON, the way audit exports mean it: bytes that are UTF-8 as text, timestamps as UTC
/// text, decimals as their digits. Depth is bounded by the (non-self-referring) schema.
fn to_json(v: Avro) -> Value {
    match v {
        Avro::Null => Value::Null,
        Avro::Boolean(b) => Value::Bool(b),
        Avro::Int(i) | Avro::Date(i) | Avro::TimeMillis(i) => Value::from(i),
        Avro::Long(l) | Avro::TimeMicros(l) => Value::from(l),
        Avro::Float(f) => Number::from_f64(f.into()).map_or(Value::Null, Value::Number),
        Avro::Double(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Avro::Bytes(b) | Avro::Fixed(_, b) => match String::from_utf8(b) {
            Ok(s) => Value::String(s),
            Err(e) => Value::Array(e.into_bytes().into_iter().map(Value::from).collect()),
        },
        Avro::String(s) | Avro::Enum(_, s) => Value::String(s),
        Avro::Uuid(u) => Value::String(u.as_hyphenated().to_string()),
        Avro::Union(_, inner) => to_json(*inner),
        Avro::Array(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Avro::Map(m) => {
            let mut keys: Vec<_> = m.into_iter().collect();
            keys.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(keys.into_iter().map(|(k, v)| (k, to_json(v))).collect())
        }
        Avro::Record(fields) => {
            Value::Object(fields.into_iter().map(|(k, v)| (k, to_json(v))).collect())
        }
        Avro::TimestampMillis(t) | Avro::LocalTimestampMillis(t) => {
            utc(DateTime::from_timestamp_millis(t))
        }
        Avro::TimestampMicros(t) | Avro::LocalTimestampMicros(t) => {
            utc(DateTime::from_timestamp_micros(t))
        }
        Avro::TimestampNanos(t) | Avro::LocalTimestampNanos(t) => {
            utc(Some(DateTime::from_timestamp_nanos(t)))
        }
        Avro::Decimal(d) => {
            Value::String(format!("{:?}", Vec::<u8>::try_from(&d).unwrap_or_default()))
        }
        Avro::BigDecimal(d) => Value::String(d.to_string()),
        Avro::Duration(d) => Value::String(format!(
            "P{}M{}DT{}S",
            u32::from(d.months()),
            u32::from(d.days()),
            f64::from(u32::from(d.millis())) / 1000.0
        )),
    }
}

/// True when a named type contains a reference to itself or to a type enclosing it (a recursive schema):
/// only then can values nest deeper than the schema. A reference to a type defined elsewhere is fine.
fn refers_to_itself(s: &Schema) -> bool {
    fn walk<'a>(s: &'a Schema, open: &mut Vec<&'a apache_avro::schema::Name>) -> bool {
        if open.len() > 256 {
            return true;
        }
        match s {
            Schema::Ref { name } => open.contains(&name),
            Schema::Record(r) => {
                open.push(&r.name);
                let found = r.fields.iter().any(|f| walk(&f.schema, open));
                open.pop();
                found
            }
            Schema::Array(a) => walk(&a.items, open),
            Schema::Map(m) => walk(&m.types, open),
            Schema::Union(u) => u.variants().iter().any(|v| walk(v, open)),
            _ => false,
        }
    }
    walk(s, &mut Vec::new())
}
