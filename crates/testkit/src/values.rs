//! [`Val`] builders for the interpreter suites, and the `everything`
//! records of world `full` (`interpreters/lua/tests/wit/worlds.wit`).

use wasmtime::component::{ResourceAny, Val};

/// A record of `fields`.
pub fn rec(fields: &[(&str, Val)]) -> Val {
    Val::Record(
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

/// A string.
pub fn string(s: &str) -> Val {
    Val::String(s.into())
}

/// `some(v)`.
pub fn some(v: Val) -> Val {
    Val::Option(Some(Box::new(v)))
}

/// A `list<u8>`.
pub fn bytes(b: &[u8]) -> Val {
    Val::List(b.iter().copied().map(Val::U8).collect())
}

/// A `point` (or `pt`) record.
pub fn point(x: i32, y: i32) -> Val {
    rec(&[("x", Val::S32(x)), ("y", Val::S32(y))])
}

/// Map entries and flags in a fixed order, so values compare.
pub fn normalize(v: Val) -> Val {
    match v {
        Val::Map(mut entries) => {
            entries.sort_by(|a, b| format!("{:?}", a.0).cmp(&format!("{:?}", b.0)));
            Val::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (normalize(k), normalize(v)))
                    .collect(),
            )
        }
        Val::Flags(mut names) => {
            names.sort();
            Val::Flags(names)
        }
        Val::Record(fields) => {
            Val::Record(fields.into_iter().map(|(k, v)| (k, normalize(v))).collect())
        }
        Val::List(items) => Val::List(items.into_iter().map(normalize).collect()),
        Val::Tuple(items) => Val::Tuple(items.into_iter().map(normalize).collect()),
        Val::Option(o) => Val::Option(o.map(|v| Box::new(normalize(*v)))),
        other => other,
    }
}

/// The value the host sends to `check-everything` (the script checks each
/// field).
pub fn host_everything() -> Val {
    rec(&[
        ("a-u8", Val::U8(200)),
        ("a-u16", Val::U16(60000)),
        ("a-u32", Val::U32(4_000_000_000)),
        ("a-u64", Val::U64(u64::MAX)),
        ("a-s8", Val::S8(-5)),
        ("a-s16", Val::S16(-300)),
        ("a-s32", Val::S32(-70000)),
        ("a-s64", Val::S64(i64::MIN)),
        ("a-f32", Val::Float32(0.25)),
        ("a-f64", Val::Float64(-2.5)),
        ("a-bool", Val::Bool(false)),
        ("a-char", Val::Char('ß')),
        ("a-string", string("ünïcödé")),
        ("bytes", bytes(b"\0abc\xff")),
        ("words", Val::List(vec![string("x"), string("y")])),
        (
            "nums",
            Val::List(vec![Val::S32(-1), Val::S32(0), Val::S32(100000)]),
        ),
        ("floats", Val::List(vec![Val::Float64(1.25)])),
        ("pair", Val::Tuple(vec![string("p"), Val::U32(9)])),
        ("maybe", some(string("m"))),
        ("nested", some(some(Val::U32(5)))),
        ("outcome", Val::Result(Ok(Some(Box::new(Val::U32(7)))))),
        ("empty-outcome", Val::Result(Err(None))),
        ("color", Val::Enum("dark-blue".into())),
        ("perms", Val::Flags(vec!["write".into(), "exec-all".into()])),
        (
            "shape",
            Val::Variant("circle".into(), Some(Box::new(Val::Float64(2.5)))),
        ),
        ("points", Val::List(vec![point(5, 6)])),
        (
            "sparse",
            Val::List(vec![
                Val::Option(None),
                some(Val::U32(4)),
                Val::Option(None),
            ]),
        ),
        (
            "table",
            Val::Map(vec![(string("k"), Val::U32(1)), (string("v"), Val::U32(2))]),
        ),
        ("ident", Val::U64(7)),
    ])
}

/// What `make-everything` must return: the literal of each suite's
/// `full` script (`full.lua`, `full.js`).
pub fn script_everything() -> Val {
    rec(&[
        ("a-u8", Val::U8(255)),
        ("a-u16", Val::U16(65535)),
        ("a-u32", Val::U32(u32::MAX)),
        ("a-u64", Val::U64(u64::MAX)),
        ("a-s8", Val::S8(-128)),
        ("a-s16", Val::S16(-32768)),
        ("a-s32", Val::S32(i32::MIN)),
        ("a-s64", Val::S64(i64::MIN)),
        ("a-f32", Val::Float32(1.5)),
        ("a-f64", Val::Float64(std::f64::consts::PI)),
        ("a-bool", Val::Bool(true)),
        ("a-char", Val::Char('€')),
        ("a-string", string("héllo wörld")),
        ("bytes", bytes(&[0, 1, 2, 255])),
        (
            "words",
            Val::List(vec![string("alpha"), string("beta"), string("")]),
        ),
        (
            "nums",
            Val::List(vec![Val::S32(1), Val::S32(-2), Val::S32(3)]),
        ),
        (
            "floats",
            Val::List(vec![
                Val::Float64(0.5),
                Val::Float64(-1e300),
                Val::Float64(3.0),
            ]),
        ),
        ("pair", Val::Tuple(vec![string("two"), Val::U32(2)])),
        ("maybe", Val::Option(None)),
        ("nested", some(Val::Option(None))),
        ("outcome", Val::Result(Err(Some(Box::new(string("bad")))))),
        ("empty-outcome", Val::Result(Ok(None))),
        ("color", Val::Enum("dark-blue".into())),
        ("perms", Val::Flags(vec!["read".into(), "exec-all".into()])),
        (
            "shape",
            Val::Variant("rect".into(), Some(Box::new(point(1, -1)))),
        ),
        ("points", Val::List(vec![point(1, 2), point(3, 4)])),
        (
            "sparse",
            Val::List(vec![
                some(Val::U32(7)),
                Val::Option(None),
                some(Val::U32(9)),
            ]),
        ),
        (
            "table",
            Val::Map(vec![
                (string("one"), Val::U32(1)),
                (string("two"), Val::U32(2)),
            ]),
        ),
        ("ident", Val::U64(42)),
    ])
}

/// The resource in `v`, or a panic.
pub fn resource(v: Option<Val>) -> ResourceAny {
    match v {
        Some(Val::Resource(r)) => r,
        other => panic!("expected a resource, got {other:?}"),
    }
}

/// [`host_everything`] with the edges: every list and map empty but
/// `bytes`, which is large (1 MiB), a string with NUL in it, the last
/// code point, and floats at their limits.
pub fn edge_everything() -> Val {
    let Val::Record(fields) = host_everything() else {
        unreachable!()
    };
    let large: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let edge = |name: &str, v: Val| match name {
        "a-string" => string("a\0b"),
        "a-char" => Val::Char('\u{10FFFF}'),
        "a-f32" => Val::Float32(f32::MAX),
        "a-f64" => Val::Float64(f64::MIN_POSITIVE),
        "bytes" => bytes(&large),
        "words" | "nums" | "floats" | "points" | "sparse" => Val::List(vec![]),
        "table" => Val::Map(vec![]),
        "maybe" => some(string("")),
        _ => v,
    };
    Val::Record(
        fields
            .into_iter()
            .map(|(k, v)| (k.clone(), edge(&k, v)))
            .collect(),
    )
}
