use super::*;
use flate2::Compression;
use flate2::write::GzEncoder;
use proptest::prelude::*;
use std::io::Write;

fn line(i: u64) -> String {
    format!(
        r#"{{"version":"2.0","timestamp":{},"workspaceId":1,"userIdentity":{{"email":"u{}@example.com"}},"serviceName":"notebook","actionName":"runCommand","requestId":"r{}","requestParams":{{"notebookId":"7","commandId":"{}","commandText":"x = {}"}}}}"#,
        1_714_557_661_000u64 + i,
        i % 3,
        i,
        i,
        i
    )
}

fn read_all(path: &Path) -> (Vec<Item>, FileSummary) {
    let mut r = FileReader::open(path, Arc::new(AtomicU64::new(0))).unwrap();
    let mut items = Vec::new();
    while let Some(it) = r.next_item() {
        items.push(it);
    }
    (items, r.finish().unwrap())
}

fn read_bytes(bytes: &[u8]) -> (Vec<Item>, FileSummary) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.json");
    std::fs::write(&p, bytes).unwrap();
    read_all(&p)
}

fn errors(items: &[Item]) -> Vec<(u64, String)> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Error(e) => Some((e.line, e.message.clone())),
            Item::Event(_) => None,
        })
        .collect()
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[test]
fn json_lines_with_bad_lines_are_all_accounted() {
    let text = format!("{}\nnot json\n\n{}\n[1]\n{{\"a\":1}}\n", line(1), line(2));
    let (items, sum) = read_bytes(text.as_bytes());
    assert_eq!(items.len(), 5);
    let errs = errors(&items);
    assert_eq!(errs.iter().map(|e| e.0).collect::<Vec<_>>(), vec![2, 5, 6]);
    assert!(errs[0].1.starts_with("not valid JSON"), "{}", errs[0].1);
    assert!(errs[1].1.contains("not a JSON object"));
    assert!(errs[2].1.contains("not a Databricks audit record"));
    assert_eq!(sum.blank_lines, 1);
    assert_eq!(sum.sha256, sha(text.as_bytes()));
    match &items[2] {
        Item::Event(e) => {
            assert_eq!(e.provenance.line, 4);
            assert_eq!(e.raw, line(2));
            assert_eq!(
                &text.as_bytes()[e.provenance.byte_offset as usize..][..e.raw.len()],
                line(2).as_bytes()
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn gzip_is_detected_by_content_and_hashed_compressed() {
    let text = format!("{}\n{}\n", line(1), line(2));
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(text.as_bytes()).unwrap();
    let gz = enc.finish().unwrap();
    let (items, sum) = read_bytes(&gz);
    assert!(sum.gzip);
    assert_eq!(sum.sha256, sha(&gz));
    assert_eq!(sum.size_bytes, gz.len() as u64);
    assert!(items.iter().all(|i| matches!(i, Item::Event(_))));
    assert_eq!(items.len(), 2);
}

#[test]
fn truncated_gzip_reports_an_error_and_keeps_what_was_read() {
    let text: String = (0..2000).map(|i| line(i) + "\n").collect();
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(text.as_bytes()).unwrap();
    let gz = enc.finish().unwrap();
    let cut = &gz[..gz.len() / 2];
    let (items, sum) = read_bytes(cut);
    let errs = errors(&items);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].1.contains("gzip stream is damaged or truncated"));
    assert!(items.len() > 100);
    assert_eq!(sum.sha256, sha(cut));
}

#[test]
fn json_array_pretty_printed_with_a_bad_element() {
    let text = format!(
        "[\n  {},\n  {{\"serviceName\": \"x\",\n   \"timestamp\": 5}},\n  {}\n]\n",
        line(1),
        line(2)
    );
    let (items, sum) = read_bytes(text.as_bytes());
    assert_eq!(sum.framing, Framing::JsonArray);
    assert_eq!(items.len(), 3);
    assert_eq!(
        errors(&items),
        vec![(3, "missing `actionName`".to_string())]
    );
}

#[test]
fn csv_export_of_the_system_table() {
    let text = "account_id,workspace_id,event_time,service_name,action_name,request_id,user_identity,request_params,response\n\
        a,42,2024-05-01 10:00:00.5,notebook,runCommand,r1,\"{\"\"email\"\":\"\"e@x.com\"\"}\",\"{\"\"commandText\"\":\"\"print(1)\\nprint(2)\"\",\"\"notebookId\"\":\"\"9\"\"}\",\"{\"\"statusCode\"\":200}\"\n\
        a,42,2024-05-01 10:00:01,notebook,runCommand\n\
        a,42,yesterday,notebook,runCommand,r3,,,\n";
    let (items, sum) = read_bytes(text.as_bytes());
    assert_eq!(sum.framing, Framing::Csv);
    assert_eq!(sum.header_lines, 1);
    assert_eq!(items.len(), 3);
    match &items[0] {
        Item::Event(e) => {
            assert_eq!(e.user.as_deref(), Some("e@x.com"));
            assert_eq!(e.command_text.as_deref(), Some("print(1)\nprint(2)"));
            assert_eq!(e.time.timestamp_millis() % 1000, 500);
            assert_eq!(e.response_status, Some(200));
        }
        other => panic!("{other:?}"),
    }
    let errs = errors(&items);
    assert_eq!(
        errs[0],
        (3, "CSV row has 5 fields but the header has 9".into())
    );
    assert_eq!(errs[1].0, 4);
    assert!(errs[1].1.contains("not a recognised time"));
}

#[test]
fn bom_and_crlf_are_handled() {
    let text = format!("\u{feff}{}\r\n{}\r\n", line(1), line(2));
    let (items, _) = read_bytes(text.as_bytes());
    assert_eq!(items.len(), 2);
    match &items[1] {
        Item::Event(e) => {
            assert_eq!(e.raw, line(2));
            assert_eq!(e.provenance.line, 2);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn directories_are_walked_in_order_and_non_logs_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("workspaceId=1/date=2024-05-02")).unwrap();
    std::fs::create_dir_all(d.join("workspaceId=1/date=2024-05-01")).unwrap();
    std::fs::write(d.join("workspaceId=1/date=2024-05-02/auditlogs_a.json"), "").unwrap();
    std::fs::write(
        d.join("workspaceId=1/date=2024-05-01/auditlogs_b.json.gz"),
        "",
    )
    .unwrap();
    std::fs::write(d.join("workspaceId=1/_SUCCESS"), "").unwrap();
    std::fs::write(d.join(".hidden.json"), "").unwrap();
    let inputs = expand_inputs(&[d.to_path_buf()]).unwrap();
    let names: Vec<String> = inputs
        .files
        .iter()
        .map(|f| f.path.strip_prefix(d).unwrap().display().to_string())
        .collect();
    assert_eq!(
        names,
        vec![
            "workspaceId=1/date=2024-05-01/auditlogs_b.json.gz",
            "workspaceId=1/date=2024-05-02/auditlogs_a.json"
        ]
    );
    assert_eq!(inputs.skipped.len(), 2);
    let missing = expand_inputs(&[d.join("nope")]).unwrap_err().to_string();
    assert!(missing.contains("nope"), "{missing}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary bytes never panic, and every item's position lies inside the input in increasing order.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048),
                                   prefix in prop_oneof![Just(&b""[..]), Just(&b"["[..]), Just(&b"event_time,action_name\n"[..]), Just(&b"{"[..])]) {
        let mut input = prefix.to_vec();
        input.extend_from_slice(&bytes);
        let (items, sum) = read_bytes(&input);
        prop_assert_eq!(sum.sha256, sha(&input));
        let mut last = 0u64;
        for it in &items {
            let off = match it { Item::Event(e) => e.provenance.byte_offset, Item::Error(e) => e.byte_offset };
            prop_assert!(off >= last);
            prop_assert!(off <= input.len() as u64);
            last = off;
        }
    }

    /// Valid records and garbage lines in any order: each valid record is an event, each garbage line
    /// exactly one error, blank lines are counted, in JSON lines and in a JSON array alike.
    #[test]
    fn every_record_is_accounted(kinds in proptest::collection::vec(0u8..3, 0..40), array in any::<bool>()) {
        let mut parts = Vec::new();
        let (mut good, mut bad, mut blank) = (0, 0, 0);
        for (i, k) in kinds.iter().enumerate() {
            match k {
                0 => { parts.push(line(i as u64)); good += 1; }
                1 => { parts.push(format!("{{\"junk\": {i}}}")); bad += 1; }
                _ if !array => { parts.push(String::new()); blank += 1; }
                _ => { parts.push(format!("\"s{i}\"")); bad += 1; }
            }
        }
        let text = if array {
            format!("[\n{}\n]", parts.join(",\n"))
        } else {
            parts.iter().map(|p| format!("{p}\n")).collect()
        };
        let (items, sum) = read_bytes(text.as_bytes());
        let events = items.iter().filter(|i| matches!(i, Item::Event(_))).count();
        prop_assert_eq!(events, good);
        prop_assert_eq!(items.len() - events, bad);
        if !array { prop_assert_eq!(sum.blank_lines, blank as u64); }
    }
}

fn pretty(i: u64) -> String {
    let v: Value = serde_json::from_str(&line(i)).unwrap();
    serde_json::to_string_pretty(&v).unwrap()
}

fn event_lines(items: &[Item]) -> Vec<u64> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Event(e) => Some(e.provenance.line),
            Item::Error(_) => None,
        })
        .collect()
}

/// Issue 18: a pretty-printed document (what documentation and API answers look like) was read line by
/// line and refused as "not valid JSON" N times.
#[test]
fn pretty_printed_and_concatenated_documents_are_records() {
    let one = pretty(1);
    let (items, sum) = read_bytes(one.as_bytes());
    assert_eq!(sum.framing, Framing::JsonDocuments);
    assert_eq!(event_lines(&items), vec![1]);
    // Several, separated by blank lines or nothing at all, and objects concatenated on one line.
    let text = format!(
        "{}\n\n{}{}\n{}{}\n",
        pretty(1),
        pretty(2),
        pretty(3),
        line(4),
        line(5)
    );
    let (items, _) = read_bytes(text.as_bytes());
    assert!(errors(&items).is_empty(), "{:?}", errors(&items));
    let l2 = 1 + one.lines().count() as u64 + 1;
    let l3 = l2 + pretty(2).lines().count() as u64 - 1;
    let l4 = l3 + pretty(3).lines().count() as u64;
    assert_eq!(event_lines(&items), vec![1, l2, l3, l4, l4]);
    // A document that never closes is reported where it starts, the ones before it kept.
    let text = format!("{}\n{{\"a\": [1,\n", pretty(1));
    let (items, _) = read_bytes(text.as_bytes());
    assert_eq!(event_lines(&items), vec![1]);
    let errs = errors(&items);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].1.contains("truncated"), "{}", errs[0].1);
}

/// Issue 18: Azure diagnostic settings send `{"records":[…]}` batches (pretty, one per line, or in an
/// array); each record is an event at its own line.
#[test]
fn records_batches_are_unwrapped_at_each_records_line() {
    let batch = format!(
        "{{\n  \"records\": [\n    {},\n    {}\n  ]\n}}\n",
        line(1),
        line(2)
    );
    let (items, _) = read_bytes(batch.as_bytes());
    assert!(errors(&items).is_empty(), "{:?}", errors(&items));
    assert_eq!(event_lines(&items), vec![3, 4]);
    // One batch per line (Event Hub capture bodies).
    let text = format!(
        "{{\"records\":[{},{}]}}\n{{\"records\":[{}]}}\n",
        line(1),
        line(2),
        line(3)
    );
    let (items, sum) = read_bytes(text.as_bytes());
    assert_eq!(sum.framing, Framing::JsonLines);
    assert_eq!(event_lines(&items), vec![1, 1, 2]);
    // Batches inside an array; a bad record inside a batch is an error at its line, the rest kept.
    let text = format!(
        "[\n{{\"records\": [\n{},\nnot json\n]}},\n{{\"records\": [{}]}}\n]\n",
        line(1),
        line(2)
    );
    let (items, _) = read_bytes(text.as_bytes());
    assert_eq!(event_lines(&items), vec![3, 6]);
    assert_eq!(
        errors(&items).iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![4]
    );
    // An object that merely has a `records` member among audit fields is a record, not a batch.
    let v: Value = serde_json::from_str(&line(7)).unwrap();
    let mut o = v.as_object().unwrap().clone();
    o.insert("records".into(), serde_json::json!([1, 2]));
    let (items, _) = read_bytes(serde_json::to_string(&o).unwrap().as_bytes());
    assert_eq!(event_lines(&items), vec![1]);
}

/// Issue 18: a raw control character inside a string (a newline typed into SQL) is read only as an
/// explicit fallback, marked on the event; the raw record is kept as written.
#[test]
fn raw_newline_in_a_string_is_a_reported_lenient_read() {
    let rec = line(1).replace("x = 1", "SELECT 1\nFROM t");
    let (items, sum) = read_bytes(format!("{rec}\n").as_bytes());
    assert_eq!(sum.framing, Framing::JsonDocuments);
    assert!(errors(&items).is_empty(), "{:?}", errors(&items));
    let Item::Event(e) = &items[0] else {
        panic!("not an event")
    };
    assert_eq!(e.command_text.as_deref(), Some("SELECT 1\nFROM t"));
    assert!(e.params["nbtrail_lenient"].contains("control character"));
    assert!(e.raw.contains("SELECT 1\nFROM t"));
    // Strict JSON records carry no such mark.
    let (items, _) = read_bytes(format!("{}\n", line(2)).as_bytes());
    let Item::Event(e) = &items[0] else {
        panic!("not an event")
    };
    assert!(!e.params.contains_key("nbtrail_lenient"));
}

proptest! {
    /// Any sequence of records written pretty-printed, compact, or batched, in any mix, reads back as the
    /// same records in order, none lost.
    #[test]
    fn documents_of_any_layout_read_back_in_order(layouts in proptest::collection::vec(0u8..3, 1..12)) {
        let mut text = String::new();
        let mut expected = Vec::new();
        for (i, l) in layouts.iter().enumerate() {
            let i = i as u64 * 10;
            match l {
                0 => { text.push_str(&pretty(i)); expected.push(format!("r{i}")); }
                1 => { text.push_str(&line(i)); expected.push(format!("r{i}")); }
                _ => {
                    text.push_str(&format!("{{\"records\": [\n{},\n{}\n]}}", pretty(i), line(i + 1)));
                    expected.push(format!("r{i}"));
                    expected.push(format!("r{}", i + 1));
                }
            }
            text.push('\n');
        }
        // Start with a pretty document so the file is read as documents whatever follows.
        let text = format!("{}\n{text}", pretty(999));
        expected.insert(0, "r999".into());
        let (items, _) = read_bytes(text.as_bytes());
        let got: Vec<String> = items.iter().filter_map(|i| match i {
            Item::Event(e) => e.request_id.clone(),
            Item::Error(_) => None,
        }).collect();
        prop_assert!(errors(&items).is_empty(), "{:?}", errors(&items));
        prop_assert_eq!(got, expected);
    }
}

/// A `system.access.audit` export written as Parquet (what `df.write.parquet` produces), `n` rows in
/// row groups of `group` rows; nested fields as JSON text (as the SQL Statement Execution API returns
/// them), `event_time` as a millisecond timestamp.
fn audit_parquet(path: &Path, n: usize, group: usize) {
    use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    let schema = Arc::new(
        parquet::schema::parser::parse_message_type(
            "message audit {
                REQUIRED BINARY service_name (UTF8);
                REQUIRED BINARY action_name (UTF8);
                REQUIRED INT64 event_time (TIMESTAMP_MILLIS);
                REQUIRED BINARY request_id (UTF8);
                REQUIRED BINARY user_identity (UTF8);
                REQUIRED BINARY request_params (UTF8);
                REQUIRED BINARY workspace_id (UTF8);
            }",
        )
        .unwrap(),
    );
    let props = Arc::new(WriterProperties::builder().build());
    let mut w =
        SerializedFileWriter::new(std::fs::File::create(path).unwrap(), schema, props).unwrap();
    let mut start = 0;
    while start < n {
        let rows: Vec<usize> = (start..n.min(start + group)).collect();
        let mut rg = w.next_row_group().unwrap();
        let mut col_no = 0;
        while let Some(mut col) = rg.next_column().unwrap() {
            let text = |f: &dyn Fn(usize) -> String| -> Vec<ByteArray> {
                rows.iter()
                    .map(|&i| ByteArray::from(f(i).as_str()))
                    .collect()
            };
            match col_no {
                2 => {
                    let t: Vec<i64> = rows
                        .iter()
                        .map(|&i| 1_714_557_661_000 + i as i64 * 1000)
                        .collect();
                    col.typed::<Int64Type>()
                        .write_batch(&t, None, None)
                        .unwrap();
                }
                k => {
                    let v = match k {
                        0 => text(&|_| "notebook".into()),
                        1 => text(&|_| "runCommand".into()),
                        3 => text(&|i| format!("pq-{i}")),
                        4 => text(&|i| format!(r#"{{"email":"u{}@example.com"}}"#, i % 3)),
                        5 => text(&|i| {
                            format!(
                                r#"{{"notebookId":"7","commandId":"{i}","commandText":"x = {i}"}}"#
                            )
                        }),
                        _ => text(&|_| "1234".into()),
                    };
                    col.typed::<ByteArrayType>()
                        .write_batch(&v, None, None)
                        .unwrap();
                }
            }
            col.close().unwrap();
            col_no += 1;
        }
        rg.close().unwrap();
        start += group;
    }
    w.close().unwrap();
}

/// Issue 18: `system.access.audit` exported as Parquet is read row by row (across row groups), each
/// row an event whose "line" is its row number; the file's SHA-256 is that of its bytes.
#[test]
fn parquet_export_rows_are_events() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("part-00000.snappy.parquet");
    audit_parquet(&p, 25, 10);
    let (items, sum) = read_all(&p);
    assert_eq!(sum.framing, Framing::Parquet);
    assert!(errors(&items).is_empty(), "{:?}", errors(&items));
    assert_eq!(event_lines(&items), (1..=25).collect::<Vec<u64>>());
    let Item::Event(e) = &items[11] else {
        panic!("not an event")
    };
    assert_eq!(e.kind(), "notebook.runCommand");
    assert_eq!(e.user.as_deref(), Some("u2@example.com"));
    assert_eq!(e.command_text.as_deref(), Some("x = 11"));
    assert_eq!(e.time.timestamp_millis(), 1_714_557_661_000 + 11_000);
    assert_eq!(e.workspace_id.as_deref(), Some("1234"));
    assert_eq!(sum.sha256, sha(&std::fs::read(&p).unwrap()));
    // A damaged file is one error naming it, not a crash.
    let bad = dir.path().join("bad.parquet");
    let mut bytes = std::fs::read(&p).unwrap();
    let mid = bytes.len() / 2;
    bytes.truncate(mid);
    bytes.extend_from_slice(b"PAR1");
    std::fs::write(&bad, bytes).unwrap();
    let (items, _) = read_all(&bad);
    let errs = errors(&items);
    assert_eq!(items.len(), 1);
    assert!(
        errs[0].1.contains("not a readable Parquet file"),
        "{errs:?}"
    );
}

/// A Parquet decompression bomb (column chunks declaring far more data than they hold compressed) is
/// refused before a page is read, as one error naming the row group and column.
#[test]
fn parquet_decompression_bomb_is_refused() {
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bomb.parquet");
    let schema = Arc::new(
        parquet::schema::parser::parse_message_type("message m { REQUIRED BINARY s (UTF8); }")
            .unwrap(),
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_dictionary_enabled(false)
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(19).unwrap()))
            .build(),
    );
    let mut w =
        SerializedFileWriter::new(std::fs::File::create(&p).unwrap(), schema, props).unwrap();
    let mut rg = w.next_row_group().unwrap();
    let mut col = rg.next_column().unwrap().unwrap();
    let one = "0".repeat(1024);
    let values: Vec<ByteArray> = (0..40_000).map(|_| ByteArray::from(one.as_str())).collect();
    col.typed::<ByteArrayType>()
        .write_batch(&values, None, None)
        .unwrap();
    col.close().unwrap();
    rg.close().unwrap();
    w.close().unwrap();
    assert!(std::fs::metadata(&p).unwrap().len() < 1_000_000);
    let (items, _) = read_all(&p);
    assert_eq!(items.len(), 1);
    let errs = errors(&items);
    assert!(
        errs[0]
            .1
            .starts_with("refused: Parquet row group 0 column \"s\""),
        "{errs:?}"
    );
}

/// The schema Azure Event Hubs Capture writes.
const EVENT_HUBS_SCHEMA: &str = r#"{"type":"record","name":"EventData","namespace":"Microsoft.ServiceBus.Messaging",
 "fields":[{"name":"SequenceNumber","type":"long"},{"name":"Offset","type":"string"},
 {"name":"EnqueuedTimeUtc","type":"string"},
 {"name":"SystemProperties","type":{"type":"map","values":["long","double","string","bytes"]}},
 {"name":"Properties","type":{"type":"map","values":["long","double","string","bytes","null"]}},
 {"name":"Body","type":["null","bytes"]}]}"#;

fn event_hubs_capture(path: &Path, bodies: &[Option<Vec<u8>>]) {
    use apache_avro::types::{Record, Value as A};
    let schema = apache_avro::Schema::parse_str(EVENT_HUBS_SCHEMA).unwrap();
    let mut w = apache_avro::Writer::with_codec(
        &schema,
        std::fs::File::create(path).unwrap(),
        apache_avro::Codec::Deflate(apache_avro::DeflateSettings::default()),
    )
    .unwrap();
    for (i, body) in bodies.iter().enumerate() {
        let mut r = Record::new(&schema).unwrap();
        r.put("SequenceNumber", i as i64);
        r.put("Offset", format!("{}", i * 100));
        r.put("EnqueuedTimeUtc", "5/1/2024 10:01:02 AM");
        r.put("SystemProperties", A::Map(Default::default()));
        r.put("Properties", A::Map(Default::default()));
        r.put(
            "Body",
            match body {
                Some(b) => A::Union(1, Box::new(A::Bytes(b.clone()))),
                None => A::Union(0, Box::new(A::Null)),
            },
        );
        w.append_value(r).unwrap();
    }
    w.flush().unwrap();
}

fn azure_record(i: u64) -> String {
    format!(
        r#"{{"time":"2024-05-01T10:01:{:02}.1234567Z","resourceId":"/SUBSCRIPTIONS/S/RESOURCEGROUPS/G/PROVIDERS/MICROSOFT.DATABRICKS/WORKSPACES/W","category":"notebook","operationName":"Microsoft.Databricks/notebook/runCommand","identity":"{{\"email\":\"a{}@example.com\"}}","properties":{{"actionName":"runCommand","serviceName":"notebook","requestId":"q{}","requestParams":"{{\"notebookId\":\"9\",\"commandId\":\"{}\",\"commandText\":\"y = {}\"}}","response":"{{\"statusCode\":200}}","sourceIPAddress":"10.0.0.1:5000"}}}}"#,
        i,
        i % 2,
        i,
        i,
        i
    )
}

/// Issue 18: an Azure Event Hubs Capture Avro file is read event by event; each event's Body (a
/// `{"records":[…]}` batch, or JSON lines) yields its audit records, located by event number and their
/// byte offset in the body; a body-less event and a malformed record are reported, not fatal.
#[test]
fn event_hubs_capture_avro_bodies_are_events() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("07.avro");
    let batch = format!(r#"{{"records":[{},{}]}}"#, azure_record(1), azure_record(2));
    let lines = format!("{}\n{{not json\n\n{}\n", azure_record(3), azure_record(4));
    event_hubs_capture(
        &p,
        &[Some(batch.into_bytes()), Some(lines.into_bytes()), None],
    );
    let (items, sum) = read_all(&p);
    assert_eq!(sum.framing, Framing::AvroCapture);
    assert_eq!(sum.sha256, sha(&std::fs::read(&p).unwrap()));
    assert_eq!(items.len(), 6, "{items:?}");
    let events: Vec<&Event> = items
        .iter()
        .filter_map(|i| match i {
            Item::Event(e) => Some(&**e),
            Item::Error(_) => None,
        })
        .collect();
    assert_eq!(
        events
            .iter()
            .map(|e| e.command_text.as_deref().unwrap())
            .collect::<Vec<_>>(),
        ["y = 1", "y = 2", "y = 3", "y = 4"]
    );
    assert_eq!(
        events.iter().map(|e| e.provenance.line).collect::<Vec<_>>(),
        [1, 1, 2, 2]
    );
    assert_eq!(events[0].provenance.byte_offset, 12);
    assert_eq!(events[1].user.as_deref(), Some("a0@example.com"));
    assert_eq!(events[2].provenance.byte_offset, 0);
    let errs = errors(&items);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(errs[0].0, 2);
    assert!(
        errs[1]
            .1
            .contains("Avro record 3: an Event Hubs event with no Body"),
        "{errs:?}"
    );
    assert_eq!(sum.blank_lines, 1);
}

/// An audit table written as Avro rows reads like its Parquet export; a truncated file ends in one
/// positioned error after the rows before the damage; a self-referring schema is refused up front.
#[test]
fn avro_rows_and_hostile_avro_files() {
    use apache_avro::types::{Record, Value as A};
    let dir = tempfile::tempdir().unwrap();
    let schema = apache_avro::Schema::parse_str(
        r#"{"type":"record","name":"audit","fields":[
          {"name":"event_time","type":{"type":"long","logicalType":"timestamp-micros"}},
          {"name":"workspace_id","type":"string"},{"name":"service_name","type":"string"},
          {"name":"action_name","type":"string"},{"name":"request_id","type":"string"},
          {"name":"user_identity","type":{"type":"record","name":"ui","fields":[{"name":"email","type":"string"}]}},
          {"name":"request_params","type":{"type":"map","values":"string"}}]}"#,
    )
    .unwrap();
    let p = dir.path().join("audit.avro");
    let mut w = apache_avro::Writer::new(&schema, std::fs::File::create(&p).unwrap()).unwrap();
    for i in 0..300u64 {
        let mut r = Record::new(&schema).unwrap();
        r.put(
            "event_time",
            A::TimestampMicros(1_714_557_661_000_000 + i as i64 * 1_000_000),
        );
        r.put("workspace_id", "55");
        r.put("service_name", "notebook");
        r.put("action_name", "runCommand");
        r.put("request_id", format!("r{i}"));
        r.put(
            "user_identity",
            A::Record(vec![(
                "email".into(),
                A::String(format!("v{}@example.com", i % 4)),
            )]),
        );
        let params: std::collections::HashMap<String, A> = [
            ("notebookId", "3".to_string()),
            ("commandId", i.to_string()),
            ("commandText", format!("z = {i}")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), A::String(v)))
        .collect();
        r.put("request_params", A::Map(params));
        w.append_value(r).unwrap();
        if i % 100 == 99 {
            w.flush().unwrap();
        }
    }
    w.flush().unwrap();
    drop(w);
    let (items, sum) = read_all(&p);
    assert_eq!(sum.framing, Framing::Avro);
    assert!(errors(&items).is_empty(), "{:?}", errors(&items));
    assert_eq!(event_lines(&items), (1..=300).collect::<Vec<u64>>());
    let Item::Event(e) = &items[7] else { panic!() };
    assert_eq!(e.command_text.as_deref(), Some("z = 7"));
    assert_eq!(e.user.as_deref(), Some("v3@example.com"));
    assert_eq!(e.time.timestamp_millis(), 1_714_557_668_000);
    assert_eq!(e.workspace_id.as_deref(), Some("55"));

    // Truncated inside the last block: the rows of the whole blocks before it, then one error.
    let bytes = std::fs::read(&p).unwrap();
    let cut = dir.path().join("cut.avro");
    std::fs::write(&cut, &bytes[..bytes.len() - 40]).unwrap();
    let (items, _) = read_all(&cut);
    let errs = errors(&items);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].1.contains("cannot be read"), "{errs:?}");
    assert_eq!(items.len() as u64, errs[0].0);
    assert_eq!(event_lines(&items), (1..=200).collect::<Vec<u64>>());

    // A recursive schema: refused before any data.
    let rec = apache_avro::Schema::parse_str(
        r#"{"type":"record","name":"n","fields":[{"name":"next","type":["null","n"]}]}"#,
    )
    .unwrap();
    let hostile = dir.path().join("deep.avro");
    let mut w = apache_avro::Writer::new(&rec, std::fs::File::create(&hostile).unwrap()).unwrap();
    w.append_value(A::Record(vec![(
        "next".into(),
        A::Union(0, Box::new(A::Null)),
    )]))
    .unwrap();
    w.flush().unwrap();
    drop(w);
    let (items, _) = read_all(&hostile);
    assert_eq!(items.len(), 1);
    assert!(
        errors(&items)[0].1.starts_with("refused: the Avro schema"),
        "{items:?}"
    );
    // Not Avro at all after the magic: one error.
    let junk = dir.path().join("junk.avro");
    std::fs::write(&junk, b"Obj\x01\xff\xff\xff\xff").unwrap();
    let (items, _) = read_all(&junk);
    assert_eq!(items.len(), 1);
    assert!(
        errors(&items)[0].1.contains("not a readable Avro"),
        "{items:?}"
    );
}

/// Issue 18: `system.query.history` rows are SQL statements (`databrickssql.queryHistory`: code, statement
/// id, warehouse, status, duration, rows) and lineage rows are `lineage.tableLineage` / `columnLineage`
/// with the notebook that did it — in JSON (struct columns as objects or JSON text) and CSV.
#[test]
fn query_history_and_lineage_rows_are_their_own_record_kinds() {
    let history = r#"{"account_id":"a","workspace_id":"55","statement_id":"01ef-aa","session_id":"s1","execution_status":"FAILED","compute":{"type":"WAREHOUSE","warehouse_id":"wh77"},"executed_by_user_id":"123","executed_by":"kim@example.com","statement_text":"SELECT * FROM prod.crm.customers","statement_type":"SELECT","error_message":"[TABLE_OR_VIEW_NOT_FOUND]","client_application":"Databricks SQL Editor","total_duration_ms":1534,"read_rows":10,"produced_rows":0,"start_time":"2024-05-02T10:00:00.000Z","end_time":"2024-05-02T10:00:01.534Z","query_source":"{\"notebook_id\":null,\"sql_query_id\":\"q9\"}"}"#;
    let table = r#"{"account_id":"a","metastore_id":"m","workspace_id":"55","entity_type":"NOTEBOOK","entity_id":"4419","entity_run_id":"r1","source_table_full_name":"prod.crm.customers","source_type":"TABLE","target_table_full_name":null,"target_type":null,"created_by":"kim@example.com","event_time":"2024-05-02T10:05:00Z","event_date":"2024-05-02","record_id":"rec-1","statement_id":"st-9","entity_metadata":{"notebook_id":"4419","job_info":null}}"#;
    let column = r#"{"workspace_id":"55","entity_type":"JOB","entity_id":"77","source_table_full_name":"prod.a.b","source_column_name":"email","target_table_full_name":"prod.a.c","target_column_name":"mail","created_by":"svc@example.com","event_time":"2024-05-02T10:06:00Z","entity_metadata":"{\"job_info\":{\"job_id\":\"77\"},\"notebook_id\":\"88\"}"}"#;
    let (items, _) = read_bytes(format!("{history}\n{table}\n{column}\n").as_bytes());
    assert!(errors(&items).is_empty(), "{:?}", errors(&items));
    let ev: Vec<&Event> = items
        .iter()
        .map(|i| match i {
            Item::Event(e) => &**e,
            Item::Error(e) => panic!("{e:?}"),
        })
        .collect();
    let q = ev[0];
    assert_eq!(q.shape, nbtrail_model::Shape::QueryHistory);
    assert_eq!(
        (q.service.as_str(), q.action.as_str()),
        ("databrickssql", "queryHistory")
    );
    assert_eq!(q.user.as_deref(), Some("kim@example.com"));
    assert_eq!(q.cluster_id.as_deref(), Some("wh77"));
    assert_eq!(q.command_id.as_deref(), Some("01ef-aa"));
    assert_eq!(
        q.command_text.as_deref(),
        Some("SELECT * FROM prod.crm.customers")
    );
    assert_eq!(q.language.as_deref(), Some("sql"));
    assert_eq!(q.status.as_deref(), Some("failed"));
    assert_eq!(q.duration_ms, Some(1534));
    assert_eq!(q.time.timestamp_millis(), 1_714_644_001_534);
    assert_eq!(q.params["read_rows"], "10");
    assert_eq!(q.params["sourceQueryId"], "q9");
    assert!(!q.params.contains_key("notebookId"));
    assert_eq!(
        q.response_error.as_deref(),
        Some("[TABLE_OR_VIEW_NOT_FOUND]")
    );
    assert_eq!(q.notebook_id, None);
    let t = ev[1];
    assert_eq!(t.shape, nbtrail_model::Shape::Lineage);
    assert_eq!(
        (t.service.as_str(), t.action.as_str()),
        ("lineage", "tableLineage")
    );
    assert_eq!(t.notebook_id.as_deref(), Some("4419"));
    assert_eq!(t.params["source_table_full_name"], "prod.crm.customers");
    assert!(!t.params.contains_key("target_table_full_name"));
    assert_eq!(t.request_id.as_deref(), Some("rec-1"));
    let c = ev[2];
    assert_eq!(c.action, "columnLineage");
    assert_eq!(c.notebook_id.as_deref(), Some("88"));
    assert_eq!(c.params["target_column_name"], "mail");
    assert_eq!(c.params["jobId"], r#"{"job_id":"77"}"#);

    // The same history as a CSV export (struct columns as JSON text), framed as CSV by its header.
    let csv = "statement_id,executed_by,statement_text,execution_status,compute,total_duration_ms,end_time\n\
               s-1,kim@example.com,\"SELECT 1, 2\",FINISHED,\"{\"\"warehouse_id\"\":\"\"wh1\"\"}\",20,2024-05-02 10:00:00.020\n";
    let (items, sum) = read_bytes(csv.as_bytes());
    assert_eq!(sum.framing, Framing::Csv);
    let Item::Event(e) = &items[0] else {
        panic!("{items:?}")
    };
    assert_eq!(e.command_text.as_deref(), Some("SELECT 1, 2"));
    assert_eq!(e.cluster_id.as_deref(), Some("wh1"));
    assert_eq!(e.status.as_deref(), Some("finished"));
    // A lineage row that names nothing is reported, not kept.
    let (items, _) = read_bytes(br#"{"entity_type":"NOTEBOOK","source_table_full_name":null,"event_time":"2024-05-02T10:05:00Z"}"#);
    assert!(
        errors(&items)[0]
            .1
            .contains("neither a source nor a target"),
        "{items:?}"
    );
}

/// Lineage exported as Parquet (as `df.write.parquet` of the system table writes it, struct columns as
/// JSON text) reads like its JSON and CSV exports: each row a `lineage.*` event, located by row group and row.
#[test]
fn lineage_exported_as_parquet_is_read_row_by_row() {
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("table_lineage.parquet");
    let cols = [
        "entity_type",
        "entity_id",
        "source_table_full_name",
        "target_table_full_name",
        "created_by",
        "event_time",
        "entity_metadata",
    ];
    let message = format!(
        "message spark_schema {{ {} }}",
        cols.iter()
            .map(|c| format!("OPTIONAL BINARY {c} (STRING);"))
            .collect::<String>()
    );
    let schema = Arc::new(parquet::schema::parser::parse_message_type(&message).unwrap());
    let mut w = SerializedFileWriter::new(
        std::fs::File::create(&p).unwrap(),
        schema,
        Arc::new(WriterProperties::builder().build()),
    )
    .unwrap();
    for group in 0..2 {
        let mut rg = w.next_row_group().unwrap();
        let mut col = 0;
        while let Some(mut c) = rg.next_column().unwrap() {
            let mut data = Vec::new();
            let mut def = Vec::new();
            for row in 0..3 {
                let i = group * 3 + row;
                let v: Option<String> = match cols[col] {
                    "entity_type" => Some("NOTEBOOK".into()),
                    "entity_id" => Some(format!("nb{i}")),
                    "source_table_full_name" => Some(format!("prod.s.t{i}")),
                    "target_table_full_name" => (i % 2 == 0).then(|| format!("prod.s.out{i}")),
                    "created_by" => Some("kim@example.com".into()),
                    "event_time" => Some(format!("2024-05-02T10:0{i}:00Z")),
                    _ => Some(format!(r#"{{"notebook_id":"nb{i}"}}"#)),
                };
                match v {
                    Some(v) => {
                        def.push(1i16);
                        data.push(ByteArray::from(v.as_str()));
                    }
                    None => def.push(0),
                }
            }
            c.typed::<ByteArrayType>()
                .write_batch(&data, Some(&def), None)
                .unwrap();
            c.close().unwrap();
            col += 1;
        }
        rg.close().unwrap();
    }
    w.close().unwrap();
    let (items, sum) = read_all(&p);
    assert_eq!(sum.framing, Framing::Parquet);
    assert!(errors(&items).is_empty(), "{:?}", errors(&items));
    let ev: Vec<&Event> = items
        .iter()
        .filter_map(|i| match i {
            Item::Event(e) => Some(&**e),
            Item::Error(_) => None,
        })
        .collect();
    assert_eq!(ev.len(), 6);
    assert!(ev.iter().all(|e| e.action == "tableLineage"));
    assert_eq!(ev[4].notebook_id.as_deref(), Some("nb4"));
    assert_eq!(ev[4].params["target_table_full_name"], "prod.s.out4");
    assert!(!ev[3].params.contains_key("target_table_full_name"));
    // Row 5 is in row group 1.
    assert_eq!(
        (ev[4].provenance.line, ev[4].provenance.byte_offset),
        (5, 1)
    );
}

/// Found by fuzzing (`ingest_file`): a Parquet footer placing a column chunk at a negative offset made the
/// parquet crate panic (`byte_range` asserts) and killed the ingest. Now it is one refusal naming the
/// row group and column.
#[test]
fn parquet_column_chunk_outside_the_file_is_refused_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("crafted.parquet");
    std::fs::write(
        &p,
        include_bytes!("testdata/parquet-chunk-outside-file.parquet"),
    )
    .unwrap();
    let (items, _) = read_all(&p);
    assert_eq!(items.len(), 1, "{items:?}");
    let errs = errors(&items);
    assert!(
        errs[0].1.starts_with("refused: Parquet row group") && errs[0].1.contains("outside the"),
        "{errs:?}"
    );
}

/// Found by fuzzing (`ingest_file`): a Parquet date or timestamp outside chrono's range made the parquet
/// crate's `Row::to_json_value` panic (it unwraps the conversion). Rows are converted by nbtrail now; such a
/// value stays a number and the file is read to its end without a panic.
#[test]
fn parquet_timestamp_out_of_range_does_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("crafted.parquet");
    std::fs::write(
        &p,
        include_bytes!("testdata/parquet-timestamp-out-of-range.parquet"),
    )
    .unwrap();
    let (items, _) = read_all(&p);
    assert!(!items.is_empty());
    assert_eq!(
        parquet_field_json(&parquet::record::Field::TimestampMillis(i64::MAX)),
        Value::from(i64::MAX)
    );
    assert_eq!(
        parquet_field_json(&parquet::record::Field::Date(i32::MAX)),
        Value::from(i32::MAX)
    );
    assert_eq!(
        parquet_field_json(&parquet::record::Field::TimestampMillis(1_714_557_661_000)),
        Value::String("2024-05-01T10:01:01Z".into())
    );
}
