//! End-to-end tests of the JavaScript binding (js.so): values, resources,
//! imports and errors, on the Lua suite's worlds with a JS script.
//!
//! World -> bindings (componentize-generate) -> component linked with
//! `wit_component::Linker` from js.so, the bindings, libqjs.so and libc.so
//! -> wasmtime. The script (tests/js/full.js, the equivalent of the Lua
//! suite's full.lua) is handed to the init export before other exports are
//! called, as the init stage does (without the snapshot); the last test
//! snapshots with the init stage itself.
//!
//! The worlds (interpreters/lua/tests/wit/worlds.wit), the host of
//! componentize:lua-tests/host-api and the checks whose expectations are
//! the same for every interpreter are `componentize_testkit::script`; the
//! tests here that are not one line check what is JavaScript's own: names,
//! messages, BigInts, typed arrays, `[Symbol.dispose]`, `ComponentError`.
//! Each world is compiled once per test binary.

mod common;

use common::script;
use componentize_testkit::script::{Suite, TYPES, Worlds};
use componentize_testkit::values::{bytes, normalize, point, resource, some, string};
use std::sync::OnceLock;
use wasmtime::component::Val;

/// The worlds linked with js.so, the script `full.js` as `app.js`, and the
/// variable `JS_TEST`.
fn suite() -> &'static Suite {
    static SUITE: OnceLock<Suite> = OnceLock::new();
    SUITE.get_or_init(|| {
        let binding = componentize_js::binding().unwrap_or_else(|e| panic!("{e}"));
        let worlds = Worlds::new(&common::hello_wit(), &common::worlds_wit(), binding)
            .expect("the test worlds");
        Suite {
            worlds,
            script_name: "app.js",
            full_script: script("full.js"),
            env_var: "JS_TEST",
            language: "JS",
            hello_script: HELLO.to_string(),
            snapshot: |wasm, name, source| {
                let init = componentize_init::Init::new(wasm)
                    .script(name, source)
                    .run();
                init.unwrap_or_else(|e| panic!("{e:#}")).wasm
            },
        }
    })
}

/// The full script with `types.makeEverything` replaced: it applies
/// `change` (JS statements on `e`) to `everything()`.
fn make_everything_with(change: &str) -> String {
    format!("types.makeEverything = () => {{ const e = everything(); {change}; return e; }};")
}

/// The header of a returned value that does not fit `make-everything`.
const MAKE_EVERYTHING_MISMATCH: &str = "js.so: export componentize:lua-tests/types#make-everything \
     (JS `types.makeEverything`) returned a value that does not match its WIT type: ";

/// A `wasi:cli` command in JavaScript: world `hello`.
const HELLO: &str = r#"import { getArguments } from "wasi:cli/environment";
export const run = {
  run() {
    console.log("hello from JS");
    for (const arg of getArguments()) console.log(`argument: ${arg}`);
  },
};
"#;

// ---------------------------------------------------------------- 1. shared
// The checks every interpreter passes (`componentize_testkit::script`):
// hello, values both ways and round trips, the exported `counter` class
// (constructor, methods, static, own coming back, [Symbol.dispose] counted),
// imported blobs in exports, run-imports (full.js's checks of the imports,
// then no blob left alive), Math.random reseeded, selftest, snapshots.

componentize_testkit::script_suite_tests!(suite);

// ---------------------------------------------------------------- 2. names

#[test]
fn interface_objects_may_use_full_or_unversioned_names() {
    let component = suite().worlds.component("hello");
    for (source, expected) in [
        (
            "const api = { run() { console.log('full name'); } };\n\
             export { api as \"wasi:cli/run@0.2.12\" };\n\
             export const run = { run() { console.log('short name'); } };\n",
            "full name\n",
        ),
        (
            "const api = { run() { console.log('unversioned'); } };\n\
             export { api as \"wasi:cli/run\" };\n",
            "unversioned\n",
        ),
    ] {
        let mut run = suite().run_script(&component, source);
        assert_eq!(run.run_command().unwrap(), Ok(()), "{}", run.stderr());
        assert_eq!(run.stdout(), expected);
    }
}

// ---------------------------------------------------------------- 3. values

#[test]
fn u64_and_s64_are_bigints() {
    // echo-u64 adds one to what it gets, if that is a BigInt.
    let add_one = "types.echoU64 = (n) => typeof n === 'bigint' ? n + 1n : 0n;";
    let mut run = suite().full_run_with(add_one);
    for n in [0, (1 << 53) + 1, i64::MAX as u64, u64::MAX - 1] {
        let got = run.types("echo-u64", &[Val::U64(n)]).unwrap();
        assert_eq!(got, Val::U64(n + 1), "{}", run.stderr());
    }
    let too_big = "result: expected u64 (a BigInt), got bigint 18446744073709551616n";
    run.expect_trap(Some(TYPES), "echo-u64", &[Val::U64(u64::MAX)], &[too_big]);
    // Safe integers as Numbers are accepted for u64/s64; others are not.
    let numbers = "types.echoU64 = (n) => n === 1n ? 9007199254740991 : 2 ** 53;";
    let mut run = suite().full_run_with(numbers);
    let max_safe = run.types("echo-u64", &[Val::U64(1)]).unwrap();
    assert_eq!(max_safe, Val::U64((1 << 53) - 1));
    let not_safe = "result: expected u64 (a BigInt), got number 9007199254740992";
    run.expect_trap(Some(TYPES), "echo-u64", &[Val::U64(2)], &[not_safe]);
}

#[test]
fn lenient_inputs_lower_too() {
    // null for none, Numbers for u64/s64, plain arrays for typed lists,
    // lowerCamelCase case names, truthy flags, getters, lone surrogates.
    let extra = make_everything_with(
        "e.maybe = null; e.aU64 = 5; e.aS64 = -5; e.color = 'darkBlue'; \
         e.perms = { write: 1, read: 0 }; e.bytes = [1, 2]; e.nums = [4, 5]; \
         e.floats = new Float64Array([2.5]); e.sparse = [null, 3]; \
         e.nested = { tag: 'none' }; e.shape = { tag: 'nothing' }; \
         e.points = [{ get x() { return 9; }, y: 8 }]; e.aString = '\\ud800x'; \
         e.bytes = new Uint8ClampedArray([3]); e.words = [...e.words]",
    );
    let mut run = suite().full_run_with(&extra);
    let Val::Record(fields) = run.types("make-everything", &[]).unwrap() else {
        panic!()
    };
    let get = |n: &str| normalize(fields.iter().find(|(k, _)| k == n).unwrap().1.clone());
    assert_eq!(get("maybe"), Val::Option(None));
    assert_eq!(get("a-u64"), Val::U64(5));
    assert_eq!(get("a-s64"), Val::S64(-5));
    assert_eq!(get("color"), Val::Enum("dark-blue".into()));
    assert_eq!(get("perms"), Val::Flags(vec!["write".into()]));
    assert_eq!(get("bytes"), bytes(&[3]));
    assert_eq!(get("nums"), Val::List(vec![Val::S32(4), Val::S32(5)]));
    assert_eq!(get("floats"), Val::List(vec![Val::Float64(2.5)]));
    assert_eq!(
        get("sparse"),
        Val::List(vec![Val::Option(None), some(Val::U32(3))])
    );
    assert_eq!(get("nested"), Val::Option(None));
    assert_eq!(get("shape"), Val::Variant("nothing".into(), None));
    assert_eq!(get("points"), Val::List(vec![point(9, 8)]));
    assert_eq!(get("a-string"), string("\u{fffd}x"));
}

// ---------------------------------------------------------------- 4. resources

#[test]
fn a_throwing_dispose_is_reported_and_the_handle_still_dropped() {
    let extra = "types.Counter.prototype[Symbol.dispose] = function () { \
                 throw new Error('dispose failed'); };";
    let mut run = suite().full_run_with(extra);
    let new = run.call(Some(TYPES), "[constructor]counter", &[Val::S64(1)]);
    let counter = resource(new.unwrap());
    counter.resource_drop(&mut run.store).unwrap();
    assert!(
        run.stderr()
            .contains("js.so: [Symbol.dispose] of a counter threw: Error: dispose failed"),
        "{}",
        run.stderr()
    );
    // The instance goes on working.
    assert_eq!(run.types("closed-count", &[]).unwrap(), Val::U32(0));
}

#[test]
fn unreferenced_imported_resources_are_dropped() {
    // make-blob makes 100 blobs it forgets, and returns one more.
    let extra = "types.makeBlob = (text) => { \
                 for (let i = 0; i < 100; i++) new Blob(encode(text)); \
                 const kept = []; for (let i = 0; i < 10; i++) kept.push(new Blob(encode(text))); \
                 return new Blob(encode(text)); };";
    let mut run = suite().full_run_with(extra);
    let blob = resource(run.call(Some(TYPES), "make-blob", &[string("x")]).unwrap());
    assert_eq!(run.host().live_blobs, 1, "{}", run.stderr());
    assert_eq!(run.take_blob(blob), b"x");
}

// ---------------------------------------------------------------- 5. imports

#[test]
fn importing_what_the_world_does_not_import_fails_at_init() {
    for (source, expected) in [
        (
            "import { f } from \"$root\";\n",
            "cannot import '$root': the world does not import that interface",
        ),
        (
            "import { x } from \"wasi:http/types@0.2.12\";\n",
            "cannot import 'wasi:http/types@0.2.12': the world does not import that interface",
        ),
        (
            "import { noSuch } from \"componentize:lua-tests/host-api\";\n",
            "noSuch",
        ),
    ] {
        let err = suite().init_error(source);
        assert!(err.contains(expected), "{source}: {err}");
    }
}

// ---------------------------------------------------------------- 6. errors

#[test]
fn syntax_error_names_file_line_and_column() {
    let err = suite().init_error("const a = 1;\nconst b = 2;\nconst = 3;\n");
    assert!(err.starts_with("app.js:3:7: SyntaxError: "), "{err}");
}

#[test]
fn runtime_error_at_init_is_reported_with_the_stack() {
    let err =
        suite().init_error("const x = 1;\nfunction f() { throw new Error('kaboom'); }\nf();\n");
    assert!(err.starts_with("Error: kaboom\n"), "{err}");
    assert!(err.contains("at f (app.js:2:"), "{err}");
}

#[test]
fn missing_exports_are_listed_at_init() {
    let source = "export const types = {};\nexport const runImports = 5;\n\
                  export function boom() { return 1; }\n";
    let err = suite().init_error(source);
    for expected in [
        "app.js: the module does not export what the world's exports need:",
        "\n  - function `runImports` (for export run-imports) is not a function",
        "\n  - function `getEnv` (for export get-env) is not defined",
        "\n  - function `types.makeEverything` (for export componentize:lua-tests/types#make-everything) is not defined",
        "\n  - class `types.Counter` (for resource counter of componentize:lua-tests/types) is not exported",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(!err.contains("`boom`"), "{err}");
    assert_eq!(err.matches("class `types.Counter`").count(), 1, "{err}");
    let err = suite().init_error("export function boom() {}\n");
    assert!(
        err.contains("object `types` (for interface componentize:lua-tests/types) is not exported"),
        "{err}"
    );
}

#[test]
fn uncaught_exception_in_export_traps_with_the_js_stack() {
    let mut run = suite().full_run();
    let message = "js.so: error in export boom (JS `boom`): Error: boom!\n";
    run.expect_trap(None, "boom", &[], &[message, "    at boom (app.js:"]);
}

#[test]
fn errors_become_err_for_string_results() {
    let mut run = suite().full_run();
    let mut fallible = |n: i32| run.call(None, "fallible", &[Val::S32(n)]).unwrap();
    let err = |s: &str| Some(Val::Result(Err(Some(Box::new(string(s))))));
    assert_eq!(
        fallible(4),
        Some(Val::Result(Ok(Some(Box::new(Val::S32(8))))))
    );
    assert_eq!(fallible(0), err("zero"), "a ComponentError's payload");
    assert_eq!(fallible(1), err("one"), "a thrown string");
    assert_eq!(
        fallible(-1),
        err("Error: negative input"),
        "an Error, as text"
    );
    assert_eq!(run.stderr(), "");
}

#[test]
fn errors_in_result_without_payload_print_and_return_err() {
    suite().check_result_without_payload(
        "globalThis.commandShouldFail = true;",
        "js.so: error in export run-command (JS `runCommand`): Error: command failed\n    at runCommand (app.js:",
    );
}

#[test]
fn type_mismatch_names_function_and_position() {
    let mut run = suite().full_run_with("types.echoU64 = () => 'x';");
    let message = "js.so: export componentize:lua-tests/types#echo-u64 (JS `types.echoU64`) \
                   returned a value that does not match its WIT type: result: expected u64 (a \
                   BigInt), got string \"x\"";
    run.expect_trap(Some(TYPES), "echo-u64", &[Val::U64(1)], &[message]);
    suite().check_make_everything_traps(
        &make_everything_with("e.points[1].y = 'no'"),
        MAKE_EVERYTHING_MISMATCH,
        "result.points[1].y: expected s32 (an integer in [-2147483648, 2147483647]), got string \"no\"",
    );
}

#[test]
fn mismatches_are_reported_with_their_position() {
    let cases = [
        (
            "e.aU8 = 256",
            "result.aU8: expected u8 (an integer in [0, 255]), got number 256",
        ),
        (
            "e.aS32 = 1.5",
            "result.aS32: expected s32 (an integer in [-2147483648, 2147483647]), got number 1.5",
        ),
        (
            "e.aS64 = 2n ** 63n",
            "result.aS64: expected s64 (a BigInt), got bigint 9223372036854775808n",
        ),
        (
            "e.aU64 = -1n",
            "result.aU64: expected u64 (a BigInt), got bigint -1n",
        ),
        (
            "e.aF64 = '1'",
            "result.aF64: expected f64 (a number), got string \"1\"",
        ),
        (
            "e.aChar = 'ab'",
            "result.aChar: expected char (a string of one Unicode scalar value), got string \"ab\"",
        ),
        (
            "e.aBool = 1",
            "result.aBool: expected bool (a boolean), got number 1",
        ),
        (
            "e.aString = undefined",
            "result.aString: expected string, got undefined",
        ),
        (
            "e.color = 'purple'",
            "result.color: expected enum color (one of \"red\", \"green\", \"dark-blue\"), got string \"purple\"",
        ),
        (
            "e.perms = { reed: true }",
            "result.perms: `reed` is not a flag of perms",
        ),
        (
            "e.shape = { tag: 'circle' }",
            "result.shape.val: expected f64 (a number), got undefined",
        ),
        (
            "e.shape = { tag: 'square', val: 1 }",
            "result.shape.tag: expected one of \"circle\", \"rect\", \"nothing\", got string \"square\"",
        ),
        (
            "e.shape = 'circle'",
            "result.shape: expected variant shape (an object { tag, val }), got string \"circle\"",
        ),
        (
            "e.outcome = 5",
            "result.outcome: expected result (an object { tag: \"ok\" | \"err\", val }), got number 5",
        ),
        (
            "e.outcome = { tag: 'ok', val: -1 }",
            "result.outcome.val: expected u32 (an integer in [0, 4294967295]), got number -1",
        ),
        (
            "e.nested = 5",
            "result.nested: expected option (an object { tag: \"some\", val } or { tag: \"none\" }), got number 5",
        ),
        ("e.maybe = 5", "result.maybe: expected string, got number 5"),
        (
            "e.words[1] = false",
            "result.words[1]: expected string, got boolean false",
        ),
        (
            "e.bytes = 'abc'",
            "result.bytes: expected list (a Uint8Array or an array), got string \"abc\"",
        ),
        (
            "e.nums = [1, 2 ** 31]",
            "result.nums[1]: expected s32 (an integer in [-2147483648, 2147483647]), got number 2147483648",
        ),
        (
            "e.points[0] = null",
            "result.points[0]: expected record point (an object), got null",
        ),
        (
            "e.table = new Map([['k', 'v']])",
            "result.table[0].value: expected u32 (an integer in [0, 4294967295]), got string \"v\"",
        ),
        (
            "e.table = { one: 1 }",
            "result.table: expected map (a Map), got object Object",
        ),
        (
            "e.pair = ['x']",
            "result.pair: expected tuple (an array of 2 elements), got an array",
        ),
        (
            "e.sparse = [1, 'x']",
            "result.sparse[1]: expected u32 (an integer in [0, 4294967295]), got string \"x\"",
        ),
    ];
    for (change, expected) in cases {
        suite().check_make_everything_traps(
            &make_everything_with(change),
            MAKE_EVERYTHING_MISMATCH,
            expected,
        );
    }
}

#[test]
fn exports_need_init_first_and_init_runs_once() {
    suite().check_init_first_and_once(
        "js.so: export boom called before the init export ran the script",
        "the JavaScript module was already initialized",
    );
}

#[test]
fn async_exports_settle_before_returning_or_trap() {
    let extra = "types.echoU64 = async (n) => { await null; if (n === 0n) await new Promise(() => {}); \
                 if (n === 1n) throw new Error('rejected'); return n * 2n; };";
    let mut run = suite().full_run_with(extra);
    let got = run.types("echo-u64", &[Val::U64(21)]).unwrap();
    assert_eq!(got, Val::U64(42));
    let rejected = "js.so: error in export componentize:lua-tests/types#echo-u64 \
                    (JS `types.echoU64`): Error: rejected";
    run.expect_trap(Some(TYPES), "echo-u64", &[Val::U64(1)], &[rejected]);
    let mut run = suite().full_run_with(extra);
    let pending = "(JS `types.echoU64`) returned a promise that did not settle";
    run.expect_trap(Some(TYPES), "echo-u64", &[Val::U64(0)], &[pending]);
}
