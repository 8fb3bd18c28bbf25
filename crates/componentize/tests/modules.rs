//! Lua apps of several files: the script's folder is the module path at
//! init, modules land in the snapshot, editing one reruns init, a module
//! first required at runtime gets a clear error; and at runtime `io.open`
//! and `os.getenv` see the runtime's folders and variables, not init's.
//! Built with the bundled Lua through the CLI.

mod common;

use common::{componentize, copy_dir, hello, ok};
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
    let o = componentize()
        .env("COMPONENTIZE_CACHE_DIR", cache)
        .args(["--interpreter", "lua", "--world"])
        .arg(app)
        .arg("--init")
        .arg(app.join("app.lua"))
        .arg("-o")
        .arg(out)
        .output()
        .unwrap();
    ok(&o);
    String::from_utf8(o.stderr).unwrap()
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
