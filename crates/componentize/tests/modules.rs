//! Lua apps of several files: the script's folder is the module path at
//! init, modules land in the snapshot, editing one reruns init, a module
//! first required at runtime gets a clear error; and at runtime `io.open`
//! and `os.getenv` see the runtime's folders and variables, not init's.
//! Built with the bundled Lua through the CLI. The same for JavaScript: an
//! app of ES modules resolved from the script's folder, a module imported
//! first at runtime refused clearly, and at init a missing module or one
//! outside the folder named in the error.

mod common;

use common::{componentize, copy_dir, failed, hello, js_hello, ok};
use std::path::Path;

const APP: &str = r#"
local json = require("lib.json")
local util = require("lib.util")
GREETING = util.greet("modules")
run = { run = function()
  print(json.encode({ greeting = GREETING, files = 3 }))
  local loaded, err = pcall(require, "lib.late")
  print(loaded, err)
  local f = io.open("/data/value.txt")
  print("file:", f and f:read("a") or "none", "MODE:", os.getenv("MODE"))
end }
"#;

const JSON: &str = r#"
local json = {}
function json.encode(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = t[k]
    parts[#parts + 1] = string.format("%q:%s", k, type(v) == "string" and string.format("%q", v) or tostring(v))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end
return json
"#;

/// Builds `app` (its `app.lua`) into `out` with the bundled Lua and the
/// cache in `cache`; the stage lines of stderr.
fn build(app: &Path, cache: &Path, out: &Path) -> String {
    let o = build_with("lua", app, cache, out);
    ok(&o);
    String::from_utf8(o.stderr).unwrap()
}

/// `componentize --interpreter INTERPRETER` building `app` (its
/// `app.lua` or `app.js`) into `out` with the cache in `cache`.
fn build_with(interpreter: &str, app: &Path, cache: &Path, out: &Path) -> std::process::Output {
    let script = if interpreter == "js" {
        "app.js"
    } else {
        "app.lua"
    };
    componentize()
        .env("COMPONENTIZE_CACHE_DIR", cache)
        .args(["--interpreter", interpreter, "--world"])
        .arg(app)
        .arg("--init")
        .arg(app.join(script))
        .arg("-o")
        .arg(out)
        .output()
        .unwrap()
}

fn cached(stages: &str, stage: &str) -> bool {
    let line = stages
        .lines()
        .find(|l| l.trim_start().starts_with(stage))
        .unwrap_or_else(|| panic!("no {stage} in {stages}"));
    line.ends_with("(cached)")
}

#[test]
fn a_three_module_app_builds_runs_and_is_cached_by_its_modules() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app");
    copy_dir(&hello(), &app);
    std::fs::write(app.join("app.lua"), APP).unwrap();
    std::fs::create_dir(app.join("lib")).unwrap();
    std::fs::write(app.join("lib/json.lua"), JSON).unwrap();
    std::fs::write(
        app.join("lib/util.lua"),
        "return { greet = function(n) return 'hi ' .. n end }\n",
    )
    .unwrap();
    std::fs::write(app.join("lib/late.lua"), "return {}\n").unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("value.txt"), "runtime file").unwrap();
    let (cache, out) = (dir.path().join("cache"), dir.path().join("app.wasm"));

    let first = build(&app, &cache, &out);
    assert!(!cached(&first, "init"), "{first}");
    let run = |out: &Path| {
        let o = componentize()
            .env("COMPONENTIZE_CACHE_DIR", &cache)
            .arg("run")
            .arg("--dir")
            .arg(format!("{}::/data", data.display()))
            .args(["--env", "MODE=prod"])
            .arg(out)
            .output()
            .unwrap();
        ok(&o)
    };
    let stdout = run(&out);
    assert!(
        stdout.starts_with(
            "{\"files\":3,\"greeting\":\"hi modules\"}\nfalse\tmodule 'lib.late' not found:\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "\n\tmodule 'lib.late' was not loaded at init: componentize reads modules only"
        ),
        "{stdout}"
    );
    // The runtime's folder and variable, which init never saw.
    assert!(
        stdout.ends_with("\nfile:\truntime file\tMODE:\tprod\n"),
        "{stdout}"
    );

    // Nothing changed: every stage is cached.
    let again = build(&app, &cache, &out);
    assert!(cached(&again, "init"), "{again}");

    // A module changed: init runs again (generate and link stay cached),
    // and the snapshot has the new module.
    std::fs::write(
        app.join("lib/util.lua"),
        "return { greet = function(n) return 'hello ' .. n end }\n",
    )
    .unwrap();
    let changed = build(&app, &cache, &out);
    assert!(
        cached(&changed, "generate") && cached(&changed, "link"),
        "{changed}"
    );
    assert!(!cached(&changed, "init"), "{changed}");
    assert!(run(&out).starts_with(r#"{"files":3,"greeting":"hello modules"}"#));
}

const JS_APP: &str = r#"
import { greet } from "./lib/util.js";
import * as json from "./lib/json.js";
const greeting = greet("modules");
export const run = {
  async run() {
    console.log(json.encode({ greeting, files: 3 }));
    try { await import("./lib/late.js"); } catch (e) { console.log(`${e.name}: ${e.message}`); }
  },
};
"#;

#[test]
fn a_js_app_of_modules_builds_runs_and_is_cached_by_its_modules() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app");
    copy_dir(&js_hello(), &app);
    std::fs::write(app.join("app.js"), JS_APP).unwrap();
    std::fs::create_dir(app.join("lib")).unwrap();
    // Modules import each other by paths relative to themselves.
    std::fs::write(
        app.join("lib/json.js"),
        "import { sorted } from \"../lib/util.js\";\n\
         export const encode = (o) => JSON.stringify(Object.fromEntries(sorted(Object.entries(o))));\n",
    )
    .unwrap();
    let util = "export const greet = (n) => `hi ${n}`;\n\
                export const sorted = (a) => [...a].sort(([x], [y]) => (x < y ? -1 : 1));\n";
    std::fs::write(app.join("lib/util.js"), util).unwrap();
    std::fs::write(app.join("lib/late.js"), "export {};\n").unwrap();
    let (cache, out) = (dir.path().join("cache"), dir.path().join("app.wasm"));
    let built = |app: &Path| {
        let o = build_with("js", app, &cache, &out);
        ok(&o);
        String::from_utf8(o.stderr).unwrap()
    };
    let run = |out: &Path| {
        let o = componentize()
            .env("COMPONENTIZE_CACHE_DIR", &cache)
            .arg("run")
            .arg(out)
            .output()
            .unwrap();
        ok(&o)
    };

    assert!(!cached(&built(&app), "init"));
    let stdout = run(&out);
    assert_eq!(
        stdout.lines().next(),
        Some(r#"{"files":3,"greeting":"hi modules"}"#),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "ReferenceError: module 'lib/late.js' was not loaded at init: componentize reads \
             modules only while it builds the component"
        ),
        "{stdout}"
    );

    // Nothing changed: cached. A module changed: init runs again.
    assert!(cached(&built(&app), "init"));
    std::fs::write(app.join("lib/util.js"), util.replace("hi ", "hello ")).unwrap();
    let changed = built(&app);
    assert!(
        cached(&changed, "link") && !cached(&changed, "init"),
        "{changed}"
    );
    assert!(run(&out).starts_with(r#"{"files":3,"greeting":"hello modules"}"#));

    // A module that is not there, and one outside the script's folder:
    // the build fails naming it, and writes nothing.
    for (import, expected) in [
        (
            "./lib/missing.js",
            "cannot find module 'lib/missing.js' in the script's folder or the module path",
        ),
        (
            "../secret.js",
            "cannot import '../secret.js' from 'app.js': it is outside the module folders",
        ),
    ] {
        std::fs::write(dir.path().join("secret.js"), "export const key = 1;\n").unwrap();
        std::fs::write(
            app.join("app.js"),
            format!("import \"{import}\";\n{JS_APP}"),
        )
        .unwrap();
        let never = dir.path().join("never.wasm");
        let o = build_with("js", &app, &cache, &never);
        let stderr = failed(&o);
        assert!(stderr.contains(expected), "{import}: {stderr}");
        assert!(!never.exists());
    }
}
