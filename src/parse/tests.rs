//! Table-driven parser tests: every envelope rule, every whole-body error, every limit at the
//! limit and one past it. One case per line; helpers below.

use super::*;
use crate::event::{EventType, Family, Timestamp};
use crate::json::JsonKind;

/// The envelope fields of a valid event, in the order they are written.
const BASE: [(&str, &str); 7] = [
    ("eventId", r#""e-1""#),
    ("domain", r#""acme""#),
    ("timestamp", "1732780800123"),
    ("data", r#"{"targetPath":"/Shared/a.txt","targetGroupId":"g-1"}"#),
    ("actionSource", r#""WebUI""#),
    ("eventType", r#""fs:add_file""#),
    ("webhookId", r#""w-1""#),
];

/// A valid event with `field` replaced by `value` (`None`: removed).
fn event_with(field: &str, value: Option<&str>) -> String {
    let fields: Vec<String> = BASE
        .iter()
        .filter_map(|&(k, v)| match (k == field, value) {
            (true, None) => None,
            (true, Some(new)) => Some(format!(r#""{k}":{new}"#)),
            (false, _) => Some(format!(r#""{k}":{v}"#)),
        })
        .collect();
    format!("{{{}}}", fields.join(","))
}

fn valid_event() -> String {
    event_with("", None)
}

/// One line per element: `ok <eventId>` or the reason.
fn verdicts(parser: &mut Parser, body: &str) -> Vec<String> {
    let batch = parser.parse(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"));
    batch
        .elements()
        .map(|e| match e {
            Element::Valid(event) => format!("ok {}", event.event_id()),
            Element::Invalid(invalid) => invalid.reason().to_string(),
        })
        .collect()
}

/// The verdict on `element` when it sits between two valid siblings (which must survive).
fn element_verdict(element: &str) -> String {
    let body = format!("[{},{element},{}]", valid_event(), valid_event());
    let v = verdicts(&mut Parser::default(), &body);
    assert_eq!((v.len(), v[0].as_str(), v[2].as_str()), (3, "ok e-1", "ok e-1"), "{body}");
    v[1].clone()
}

fn err(parser: &mut Parser, body: &[u8]) -> ParseError {
    match parser.parse(body) {
        Ok(batch) => panic!("{:?} parsed: {batch:?}", String::from_utf8_lossy(body)),
        Err(e) => e,
    }
}

#[test]
fn field_rules() {
    let cases: &[(&str, Option<&str>, &str)] = &[
        ("eventId", None, "missing eventId"),
        ("eventId", Some("1"), "eventId is not a string"),
        ("eventId", Some("null"), "eventId is not a string"),
        ("eventId", Some(r#""""#), "eventId is empty"),
        ("eventId", Some(r#"" ""#), "ok  "),
        ("domain", None, "missing domain"),
        ("domain", Some("null"), "domain is not a string"),
        ("domain", Some("[]"), "domain is not a string"),
        ("domain", Some(r#""""#), "domain is empty"),
        ("timestamp", None, "missing timestamp"),
        ("timestamp", Some(r#""1732780800""#), "timestamp is not a number"),
        ("timestamp", Some("true"), "timestamp is not a number"),
        ("timestamp", Some("null"), "timestamp is not a number"),
        ("timestamp", Some("{}"), "timestamp is not a number"),
        ("timestamp", Some("-1"), "ok e-1"),
        ("timestamp", Some("1.5e3"), "ok e-1"),
        ("data", None, "missing data"),
        ("data", Some("[]"), "data is not an object"),
        ("data", Some(r#""{}""#), "data is not an object"),
        ("data", Some("null"), "data is not an object"),
        ("data", Some("{}"), "ok e-1"),
        ("actionSource", None, "missing actionSource"),
        ("actionSource", Some("7"), "actionSource is not a string"),
        ("actionSource", Some(r#""""#), "ok e-1"),
        ("eventType", None, "missing eventType"),
        ("eventType", Some("{}"), "eventType is not a string"),
        ("eventType", Some(r#""storage:add_file""#), "ok e-1"),
        ("webhookId", None, "ok e-1"),
        ("webhookId", Some("null"), "ok e-1"),
        ("webhookId", Some("12"), "webhookId is not a string"),
        ("webhookId", Some("false"), "webhookId is not a string"),
    ];
    for &(field, value, expected) in cases {
        let element = event_with(field, value);
        assert_eq!(element_verdict(&element), expected, "{element}");
    }
}

#[test]
fn element_shape_and_rule_order() {
    let v = valid_event();
    let cases: &[(&str, &str)] = &[
        ("42", "element is not an object"),
        (r#""text""#, "element is not an object"),
        ("[]", "element is not an object"),
        ("null", "element is not an object"),
        ("true", "element is not an object"),
        ("{}", "missing eventId"),
        (r#"{"eventId":1,"domain":null}"#, "eventId is not a string"),
        (r#"{"domain":"","eventId":""}"#, "eventId is empty"),
        (r#"{"eventId":"a","domain":"d","webhookId":1,"eventType":2}"#, "missing timestamp"),
    ];
    for &(element, expected) in cases {
        assert_eq!(element_verdict(element), expected, "{element}");
    }
    // Duplicates: envelope keys only, reported before any other rule, first repeated in document order.
    let dup = |extra: &str| element_verdict(&v.replacen('{', &format!("{{{extra},"), 1));
    assert_eq!(dup(r#""eventId":"x""#), "duplicate eventId");
    assert_eq!(dup(r#""webhookId":null"#), "duplicate webhookId");
    assert_eq!(dup(r#""user":1,"user":2"#), "ok e-1");
    assert_eq!(
        element_verdict(r#"{"timestamp":1,"eventId":"a","timestamp":2,"eventId":"b"}"#),
        "duplicate timestamp"
    );
    assert_eq!(element_verdict(r#"{"eventId":"a","data":{"eventId":1,"eventId":2}}"#), "missing domain");
}

#[test]
fn whole_body_errors() {
    let p = &mut Parser::default();
    let invalid = |offset, detail| ParseError::InvalidJson { offset, detail };
    let cases: &[(&[u8], ParseError)] = &[
        (b"", ParseError::Empty),
        (b" \r\n\t ", ParseError::Empty),
        (b"42", ParseError::NotArrayOrObject { kind: JsonKind::Number }),
        (b"\"x\"", ParseError::NotArrayOrObject { kind: JsonKind::String }),
        (b"null", ParseError::NotArrayOrObject { kind: JsonKind::Null }),
        (b"true", ParseError::NotArrayOrObject { kind: JsonKind::Bool }),
        (b"[\xff]", ParseError::InvalidUtf8 { offset: 1 }),
        (b"[\"ab\xc3\"]", ParseError::InvalidUtf8 { offset: 4 }),
        (b"[\"a\x01\"]", invalid(3, "unescaped control character in a string")),
        (b"[\"a\nb\"]", invalid(3, "unescaped control character in a string")),
        (b"[\"\\x\"]", invalid(2, "invalid escape in a string")),
        (b"[\"\\u12\"]", invalid(2, "invalid unicode escape in a string")),
        (b"[\"\\ud800\"]", invalid(2, "unpaired surrogate in a string")),
        (b"[\"\\udc00\"]", invalid(2, "unpaired surrogate in a string")),
        (b"[\"abc", invalid(1, "unterminated string")),
        (b"[1e99999]", invalid(1, "invalid number")),
        (b"[01]", invalid(2, "invalid number")),
        (b"{\"a\" 1}", invalid(5, "expected ':' after an object key")),
        (b"{'a':1}", invalid(1, "expected ',' or '}' in an object")),
        (b"[tru]", invalid(1, "invalid literal")),
    ];
    for (body, expected) in cases {
        assert_eq!(&err(p, body), expected, "{:?}", String::from_utf8_lossy(body));
    }
    // Shapes whose exact simd-json offset is not ours to promise: the variant and a sane offset.
    for body in [&b"[1,2"[..], b"[1] x", b"[] []", b"[1,]", b"[{\"a\":1]", b"{\"a\":1,}", b"[", b"{"] {
        let e = err(p, body);
        assert!(matches!(e, ParseError::InvalidJson { .. }), "{:?}: {e:?}", String::from_utf8_lossy(body));
        assert!(e.offset().unwrap() <= body.len(), "{e}");
    }
}

#[test]
fn depth_limit_and_one_past_it() {
    for limit in [1, 2, 3, MAX_DEPTH] {
        let p = &mut Parser::new(Limits::default().max_depth(limit));
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(p.parse(nested(limit).as_bytes()).is_ok(), "depth {limit} must pass");
        assert_eq!(
            err(p, nested(limit + 1).as_bytes()),
            ParseError::TooDeep { offset: limit, limit },
            "depth {} must fail",
            limit + 1
        );
        // Objects count like arrays.
        let objects = |n: usize| format!("{}1{}", r#"{"a":"#.repeat(n), "}".repeat(n));
        assert!(p.parse(objects(limit).as_bytes()).is_ok(), "object depth {limit} must pass");
        assert!(matches!(err(p, objects(limit + 1).as_bytes()), ParseError::TooDeep { .. }));
    }
    // `data` and what it holds may take MAX_DEPTH - 2 levels (array = 1, event = 2, data = 3).
    let deep_data = format!("{}1{}", r#"{"x":"#.repeat(MAX_DEPTH - 2), "}".repeat(MAX_DEPTH - 2));
    let body = format!("[{}]", event_with("data", Some(&deep_data)));
    assert_eq!(verdicts(&mut Parser::default(), &body), ["ok e-1"]);
    let deeper = format!("{}1{}", r#"{"x":"#.repeat(MAX_DEPTH - 1), "}".repeat(MAX_DEPTH - 1));
    let body = format!("[{}]", event_with("data", Some(&deeper)));
    assert!(matches!(
        err(&mut Parser::default(), body.as_bytes()),
        ParseError::TooDeep { limit: MAX_DEPTH, .. }
    ));
    // 2 KB of '[' is refused by the depth limit long before its end.
    assert_eq!(
        err(&mut Parser::default(), &[b'['; 2048]),
        ParseError::TooDeep { offset: MAX_DEPTH, limit: MAX_DEPTH }
    );
}

#[test]
fn event_limit_and_one_past_it() {
    for limit in [0, 1, 3] {
        let p = &mut Parser::new(Limits::default().max_events(limit));
        let body = |n: usize| format!("[{}]", vec![valid_event(); n].join(","));
        assert_eq!(p.parse(body(limit).as_bytes()).unwrap().len(), limit);
        assert_eq!(err(p, body(limit + 1).as_bytes()), ParseError::TooManyEvents { count: limit + 1, limit });
        // A top-level object is a batch of one, within any limit of at least 1.
        if limit >= 1 {
            assert_eq!(p.parse(valid_event().as_bytes()).unwrap().len(), 1);
        }
    }
    let p = &mut Parser::default();
    let body = |n: usize| format!("[{}]", vec!["{}"; n].join(","));
    assert_eq!(p.parse(body(MAX_EVENTS).as_bytes()).unwrap().len(), MAX_EVENTS);
    assert_eq!(
        err(p, body(MAX_EVENTS + 1).as_bytes()),
        ParseError::TooManyEvents { count: MAX_EVENTS + 1, limit: MAX_EVENTS }
    );
}

#[test]
fn byte_limit_and_one_past_it() {
    let body = format!("[{}]", valid_event());
    let p = &mut Parser::new(Limits::default().max_bytes(body.len()));
    assert_eq!(p.parse(body.as_bytes()).unwrap().len(), 1);
    let longer = format!("{body} ");
    assert_eq!(err(p, longer.as_bytes()), ParseError::TooLarge { len: body.len() + 1, limit: body.len() });
    assert_eq!(Limits::default().max_bytes(usize::MAX).bytes(), MAX_BODY_BYTES);
}

#[test]
fn raw_bytes_are_each_element_exactly_as_received() {
    let p = &mut Parser::default();
    let a = r#"{ "eventId" : "a\u00e9" , "domain":"d","timestamp":1.50,"data":{"k":"\/x"},"actionSource":"s","eventType":"t" }"#;
    let b = valid_event();
    for (body, raws) in [
        (format!("[{a},{b}]"), vec![a.to_owned(), b.clone()]),
        (format!(" \r\n[\t{a}\r\n ,\n\t{b} \n] \n"), vec![a.to_owned(), b.clone()]),
        (
            format!("[{b}, 42 ,\"x,]\" ,[1,[2]] ,{{}}, null]"),
            vec![b.clone(), "42".into(), "\"x,]\"".into(), "[1,[2]]".into(), "{}".into(), "null".into()],
        ),
        (format!("  {a}  "), vec![a.to_owned()]),
        ("[]".to_owned(), vec![]),
    ] {
        let batch = p.parse(body.as_bytes()).unwrap();
        let got: Vec<&[u8]> = batch
            .elements()
            .map(|e| match e {
                Element::Valid(event) => event.raw(),
                Element::Invalid(invalid) => invalid.raw(),
            })
            .collect();
        let want: Vec<&[u8]> = raws.iter().map(|r| r.as_bytes()).collect();
        assert_eq!(got, want, "{body}");
    }
}

#[test]
fn timestamps_are_kept_as_received() {
    let p = &mut Parser::default();
    let big = "9".repeat(300);
    let cases: &[(&str, Timestamp)] = &[
        ("1732780800", Timestamp::Int(1_732_780_800)),
        ("-5", Timestamp::Int(-5)),
        ("0", Timestamp::Int(0)),
        ("-0", Timestamp::Int(0)),
        ("18446744073709551615", Timestamp::UInt(u64::MAX)),
        ("1732780800.123", Timestamp::Float(1_732_780_800.123)),
        ("1.7327808e9", Timestamp::Float(1.7327808e9)),
        (&big, Timestamp::Float(1e300)),
    ];
    for (text, expected) in cases {
        let body = format!("[{}]", event_with("timestamp", Some(text)));
        let batch = p.parse(body.as_bytes()).unwrap();
        let event = batch.events().next().unwrap();
        assert_eq!(event.timestamp(), *expected, "{text}");
    }
}

#[test]
fn event_view_reads_every_envelope_field() {
    let p = &mut Parser::default();
    let body = r#"[{"user":{"id":7},"eventId":"caf\u00e9-\ud83d\ude00","domain":"acme.egnyte.com","timestamp":1,
        "data":{"targetPath":"/a\"b\\c","targetPath":"/second"},"actionSource":"SyncEngine",
        "eventType":"storage:add_file","webhookId":"w","customProperties":{"k":"v"},"z":null}]"#;
    let batch = p.parse(body.as_bytes()).unwrap();
    let e = batch.events().next().unwrap();
    assert_eq!(e.index(), 0);
    assert_eq!(e.event_id(), "café-😀");
    assert_eq!(e.domain(), "acme.egnyte.com");
    assert_eq!(e.action_source(), "SyncEngine");
    assert_eq!(e.webhook_id(), Some("w"));
    assert_eq!(e.event_type(), EventType::Other("storage:add_file"));
    assert_eq!(e.event_type().family(), Family::Other);
    assert_eq!(e.primary_path(), Some("/a\"b\\c"), "first of duplicate keys");
    let extras: Vec<(&str, String)> = e.extras().map(|(k, v)| (k, v.to_string())).collect();
    assert_eq!(
        extras,
        [("user", r#"{"id":7}"#.into()), ("customProperties", r#"{"k":"v"}"#.into()), ("z", "null".into())]
    );
    assert_eq!(e.envelope().len(), 10);
}

#[test]
fn data_accessors_by_family() {
    let p = &mut Parser::default();
    let cases: &[(&str, &str, Option<&str>, Option<&str>)] = &[
        (
            "fs:add_file",
            r#"{"targetPath":"/t","targetGroupId":"g","targetEntryId":"e"}"#,
            Some("/t"),
            Some("g"),
        ),
        ("fs:add_file", r#"{"targetPath":"/t","targetEntryId":"e"}"#, Some("/t"), Some("e")),
        ("fs:move_file", r#"{"sourcePath":"/s","targetPath":"/t"}"#, Some("/t"), None),
        ("fs:delete_from_trash", r#"{"sourcePath":"/s","targetGroupId":7}"#, Some("/s"), None),
        (
            "link:create_download_link",
            r#"{"sourcePath":"/s","linkId":"L","linkType":"file"}"#,
            Some("/s"),
            Some("L"),
        ),
        ("permission:permission_change", r#"{"folderPath":"/f","assigneeId":5}"#, Some("/f"), None),
        (
            "workflow:created",
            r#"{"workflow":{"id":"W"},"firstEntity":{"filePath":"/w"}}"#,
            Some("/w"),
            Some("W"),
        ),
        ("group:create", r#"{"groupId":"G","groupName":"n"}"#, None, Some("G")),
        ("meta:add_metadata_key", r#"{"targetPath":"/m","targetGroupId":"g"}"#, Some("/m"), Some("g")),
        ("newfamily:thing", r#"{"linkId":"L2"}"#, None, Some("L2")),
        ("fs:add_file", r#"{"targetPath":7}"#, None, None),
    ];
    for &(event_type, data, path, subject) in cases {
        let body = event_with("data", Some(data)).replace("fs:add_file", event_type);
        let batch = p.parse(body.as_bytes()).unwrap();
        let e = batch.events().next().unwrap();
        assert_eq!((e.primary_path(), e.subject_id()), (path, subject), "{event_type} {data}");
    }
    let body = event_with(
        "data",
        Some(
            r#"{"assignee":"bob","assigneeId":12,"assignerId":-1,"workflow":{"name":"n"},"members":[1,2],"user":{"userName":"u"}}"#,
        ),
    );
    let batch = p.parse(body.as_bytes()).unwrap();
    let d = batch.events().next().unwrap().data();
    assert_eq!(d.permission().assignee(), Some("bob"));
    assert_eq!(d.permission().assignee_id(), Some(12));
    assert_eq!(d.permission().assigner_id(), None);
    assert_eq!(d.workflow().name(), Some("n"));
    assert_eq!(d.group().members().map(|m| m.len()), Some(2));
    assert_eq!(d.group().user_name(), Some("u"));
    assert_eq!(d.link().link_id(), None);
}

#[test]
fn a_parser_is_reused_across_calls_and_errors() {
    let p = &mut Parser::default();
    let one = format!("[{}]", valid_event());
    let two = format!("[{},{}]", event_with("eventId", Some(r#""x""#)), valid_event());
    for _ in 0..3 {
        assert_eq!(verdicts(p, &two), ["ok x", "ok e-1"]);
        assert!(p.parse(b"[\"\\ud800\"]").is_err());
        assert!(p.parse(b"[[[").is_err());
        assert_eq!(verdicts(p, &one), ["ok e-1"]);
    }
}

#[test]
fn shrink_frees_scratch_memory_and_the_parser_still_works() {
    let p = &mut Parser::default();
    let big = format!("[{}]", vec![valid_event(); 2000].join(","));
    assert_eq!(p.parse(big.as_bytes()).unwrap().len(), 2000);
    assert!(p.retained_bytes() >= big.len(), "{}", p.retained_bytes());
    p.shrink();
    assert_eq!(p.retained_bytes(), 0);
    assert_eq!(verdicts(p, &format!("[{}]", valid_event())), ["ok e-1"]);
}

/// Element spans found each of the three ways (`None` where a way declines the body).
fn spans_three_ways(body: &[u8]) -> [Option<Vec<spans::Span>>; 3] {
    let mut work = body.to_vec();
    work.resize(body.len() + simd_json::INPUT_PADDING, b' ');
    let base = work.as_ptr() as usize;
    let (mut buffers, mut tape) = (Buffers::default(), Tape(Vec::new()));
    simd_json::fill_tape_padded(&mut work, body.len(), &mut buffers, &mut tape).unwrap();
    let nodes = &tape.0;
    let Node::Array { len, .. } = nodes[0] else { panic!("not an array") };
    let structurals = buffers.structural_indexes();
    let mut slots = Vec::new();
    let mut at = 1;
    for _ in 0..len {
        slots.push(Slot { at: at as u32, span: (0, 0), verdict: Err(Reason::NotAnObject) });
        at += crate::json::node_span(&nodes[at]);
    }
    let collect = |ok: bool, slots: &[Slot]| ok.then(|| slots.iter().map(|s| s.span).collect());
    let keys = collect(spans::by_keys(body, nodes, base, &mut slots), &slots);
    let count = collect(spans::by_count(body, nodes, structurals, &mut slots), &slots);
    spans::by_walk(body, structurals, &mut slots);
    [keys, count, collect(true, &slots)]
}

#[test]
fn counted_spans_match_the_bracket_walk() {
    let mut bodies: Vec<Vec<u8>> = [
        "[]",
        "[ ]",
        "[1]",
        "[ 1 , -2.5e3 ,true,false , null ]",
        r#"["a","b\"],[{","\\"]"#,
        "[{},[],{\"a\":{}},{\"a\":[]},[[]],[{}],[[],[]]]",
        "[{\"a\":[1,[2,{\"b\":[]}],3],\"c\":{\"d\":{\"e\":\"}\"}}} ,\n\t{\"x\":1}\r\n]",
        "[\"\\u00e9\\ud83d\\ude00\", \"😀\" ,{\"k\":\"\\/\"}]",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for dir in ["types", "batches", "valid", "invalid-elements"] {
        for entry in std::fs::read_dir(fixtures.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let body = std::fs::read(&path).unwrap();
            if path.extension().is_some_and(|e| e == "json") && body.trim_ascii_start().starts_with(b"[") {
                bodies.push(body);
            }
        }
    }
    assert!(bodies.len() > 60);
    let mut by_keys = 0;
    for body in &bodies {
        let [keys, count, walk] = spans_three_ways(body);
        let text = String::from_utf8_lossy(body);
        assert_eq!(count.as_ref(), walk.as_ref(), "{text}");
        if let Some(keys) = keys {
            assert_eq!(Some(&keys), walk.as_ref(), "{text}");
            by_keys += 1;
        }
    }
    // Every fixture batch is all non-empty objects: the O(1) way must take all of them.
    assert!(by_keys >= bodies.len() - 8, "{by_keys} of {}", bodies.len());
}

#[test]
fn each_way_declines_what_it_cannot_do() {
    // Not all non-empty objects: by_keys declines, counting still works.
    for body in ["[1,{\"a\":1}]", "[{},{\"a\":1}]", "[{\"a\":1},[]]"] {
        let [keys, count, walk] = spans_three_ways(body.as_bytes());
        assert_eq!(keys, None, "{body}");
        assert_eq!(count, walk, "{body}");
    }
    // A count that claims the first element is a bare scalar: the counted end lands on '"'.
    let body = br#"[{"a":1},[2]]"#;
    let mut work = body.to_vec();
    work.resize(body.len() + simd_json::INPUT_PADDING, b' ');
    let (mut buffers, mut tape) = (Buffers::default(), Tape(Vec::new()));
    simd_json::fill_tape_padded(&mut work, body.len(), &mut buffers, &mut tape).unwrap();
    assert_eq!(spans::Spans::new(body, buffers.structural_indexes()).next(1), None);
    assert_eq!(spans::Spans::new(body, buffers.structural_indexes()).next(5), Some((1, 8)));
    // A base address that is not the parsed buffer's: the quotes do not line up, by_keys declines.
    let nodes = &tape.0;
    let mut slots = vec![Slot { at: 1, span: (0, 0), verdict: Err(Reason::NotAnObject) }];
    assert!(!spans::by_keys(body, nodes, body.as_ptr() as usize + 1, &mut slots));
}
