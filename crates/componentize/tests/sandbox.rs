//! The init sandbox, tried from a Lua script the way an escaping script
//! would: every way out is denied with an error the script sees, and none of
//! the host reaches the snapshot. Needs `bash toolchain/build.sh`.

mod common;

use common::{hello, libc_dir, lua};
use componentize::{Pipeline, Source};
use componentize_testkit::{HostBuilder, run_command};
use std::collections::BTreeMap;

/// Tries each way out at init and keeps what happened; the command prints
/// it at run time, one `probe: outcome` line each.
const ESCAPE: &str = r#"
local results = {}
local function probe(name, f)
  local ok, a, b = pcall(f)
  if not ok then results[#results + 1] = name .. ": raised " .. tostring(a)
  elseif a == nil then results[#results + 1] = name .. ": denied " .. tostring(b)
  else results[#results + 1] = name .. ": GOT " .. tostring(a) end
end
local function read(path)
  return function()
    local f, err = io.open(path, "rb")
    if not f then return nil, err end
    return f:read("a")
  end
end
probe("passwd", read("/etc/passwd"))
probe("passwd-via-dir", read("/granted/../../../../etc/passwd"))
probe("dotdot", read("/granted/../secret.txt"))
probe("symlink", read("/granted/link"))
probe("granted", read("/granted/inside.txt"))
probe("home", function() return os.getenv("HOME") end)
probe("path", function() return os.getenv("PATH") end)
probe("hostname", read("/etc/hostname"))
probe("clock", function() return os.date("!%Y-%m-%dT%H:%M:%S", os.time()) end)
local net = require("wasi:sockets/instance-network").instance_network()
probe("lookup", function()
  local r = require("wasi:sockets/ip-name-lookup").resolve_addresses(net, "localhost")
  if r.err then return nil, r.err end
  local next = r.ok:resolve_next_address()
  if next.err then return nil, next.err end
  return tostring(next.ok)
end)
probe("tcp", function()
  local r = require("wasi:sockets/tcp-create-socket").create_tcp_socket("ipv4")
  if r.err then return nil, r.err end
  local addr = { tag = "ipv4", value = { port = 80, address = { 127, 0, 0, 1 } } }
  local c = r.ok:start_connect(net, addr)
  if c.err then return nil, c.err end
  return "connect started"
end)
RESULTS = table.concat(results, "\n")
run = { run = function() print(RESULTS) end }
"#;

#[test]
fn every_way_out_of_the_init_sandbox_is_denied_and_nothing_leaks() {
    let host = tempfile::tempdir().unwrap();
    let granted = host.path().join("granted");
    std::fs::create_dir(&granted).unwrap();
    std::fs::write(granted.join("inside.txt"), "granted content").unwrap();
    let secret = "planted-secret-5e1f0c9a";
    std::fs::write(host.path().join("secret.txt"), secret).unwrap();
    std::os::unix::fs::symlink(host.path().join("secret.txt"), granted.join("link")).unwrap();

    let mut pipeline = Pipeline::new(Source::path(lua().interpreter().path), hello());
    let mut options = componentize_init::Options::default();
    options
        .dirs
        .push(componentize_init::PreopenDir::new(&granted, "/granted"));
    pipeline
        .script(Source::bytes("escape.lua", ESCAPE.as_bytes().to_vec()))
        .search_path(libc_dir())
        .init_options(options);
    let wasm = pipeline.run(&mut |_| {}).unwrap().component;

    // The snapshot holds no host path, host name or planted secret.
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let home = std::env::var("HOME").unwrap_or_default();
    let host_dir = host.path().to_string_lossy().into_owned();
    for needle in [secret, hostname.trim(), home.as_str(), host_dir.as_str()] {
        if needle.len() > 3 {
            assert!(
                !wasm.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "the snapshot contains `{needle}`"
            );
        }
    }

    let run = run_command(&wasm, &[], &mut HostBuilder::new()).unwrap();
    let stdout = run.output.stdout();
    let outcomes: BTreeMap<&str, &str> = stdout
        .lines()
        .filter_map(|line| line.split_once(": "))
        .collect();
    let denied = |probe: &str| {
        let outcome = outcomes
            .get(probe)
            .unwrap_or_else(|| panic!("no {probe} in {stdout}"));
        assert!(outcome.starts_with("denied "), "{probe}: {outcome}");
        *outcome
    };
    assert!(
        denied("passwd").contains("No such file or directory"),
        "{stdout}"
    );
    denied("passwd-via-dir");
    assert!(
        denied("dotdot").contains("Operation not permitted"),
        "{stdout}"
    );
    assert!(
        denied("symlink").contains("Operation not permitted"),
        "{stdout}"
    );
    assert_eq!(outcomes["granted"], "GOT granted content");
    assert_eq!(denied("home"), "denied nil");
    assert_eq!(denied("path"), "denied nil");
    denied("hostname");
    // The wall clock is fixed during init: 2000-01-01, whatever the date.
    assert!(
        outcomes["clock"].starts_with("GOT 2000-01-01T00:00:"),
        "{stdout}"
    );
    denied("lookup");
    denied("tcp");
}
