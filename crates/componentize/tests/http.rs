//! wasi:http during init, through the pipeline with the Lua binding: the
//! host provides it, and refuses every outgoing request, naming it, unless
//! `--allow-http` opens the network. Needs the toolchain build:
//! `bash toolchain/build.sh`.

mod common;

use common::{libc_dir, lua, ok, toolchain};
use componentize::{Pipeline, Source};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;

/// A request to a port nobody listens on: it must never leave the sandbox.
const SCRIPT: &str = r#"
local types = require("wasi:http/types")
local outgoing = require("wasi:http/outgoing-handler")
local request = types.outgoing_request(types.fields())
request:set_scheme("HTTP")
request:set_authority("127.0.0.1:9")
request:set_path_with_query("/probe?x=1")
local sent = outgoing.handle(request, nil)
print("handle returned", sent.ok ~= nil)
"#;

/// The pipeline for world `http-client` with `script`.
fn client(script: &str) -> Pipeline {
    let mut pipeline = Pipeline::new(
        Source::path(lua().interpreter().path),
        componentize_testkit::repo_file("fixtures/init/imports"),
    );
    pipeline
        .world("http-client")
        .script(Source::bytes("client.lua", script.as_bytes().to_vec()))
        .search_path(libc_dir());
    pipeline
}

#[test]
fn an_outgoing_request_at_init_is_refused_naming_its_url() {
    let err = format!("{:#}", client(SCRIPT).run(&mut |_| {}).err().unwrap());
    assert!(
        err.contains(
            "init made outgoing HTTP requests, which the init sandbox refuses (it has no \
             network): GET http://127.0.0.1:9/probe?x=1"
        ),
        "{err}"
    );
    // The script ran on after the refusal, and its output is shown.
    assert!(err.contains("handle returned\ttrue"), "{err}");
}

/// Fetches `http://ADDR/config?v=1` at init and keeps the response; the
/// command prints what init got.
const FETCH_AT_INIT: &str = r#"
local types = require("wasi:http/types")
local outgoing = require("wasi:http/outgoing-handler")
local request = types.outgoing_request(types.fields())
request:set_scheme("HTTP")
request:set_authority(ADDR)
request:set_path_with_query("/config?v=1")
local future = outgoing.handle(request, nil).ok
local pollable <close> = future:subscribe()
pollable:block()
local got = future:get().ok
if got.err then error("the request failed: " .. tostring(got.err.tag) .. " " .. tostring(got.err.value)) end
local response = got.ok
local body = response:consume().ok
local stream = body:stream().ok
local parts = {}
while true do
  local r = stream:blocking_read(4096)
  if r.err then break end
  parts[#parts + 1] = r.ok
end
stream:close()
FETCHED = response:status() .. " " .. table.concat(parts)
run = { run = function() print("fetched at init: " .. FETCHED) end }
"#;

/// Answers one request with `body` on a background thread; the request
/// line it got comes back through the handle.
fn serve_once(body: &'static str) -> (String, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        // The rest of the head, up to the empty line.
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap() > 2 {
            line.clear();
        }
        let mut stream = reader.into_inner();
        write!(
            stream,
            "HTTP/1.1 201 Created\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let _ = stream.read(&mut [0; 1]);
        request_line.trim_end().to_string()
    });
    (addr, server)
}

#[test]
fn allow_http_lets_init_fetch_from_a_local_server_into_the_snapshot() {
    let (addr, server) = serve_once("answer=42");
    let script = FETCH_AT_INIT.replace("ADDR", &format!("{addr:?}"));
    let mut pipeline = client(&script);
    let mut options = componentize_init::Options::default();
    options.allow_http = true;
    pipeline.init_options(options);
    let built = pipeline.run(&mut |_| {}).unwrap();
    assert_eq!(server.join().unwrap(), "GET /config?v=1 HTTP/1.1");

    // The snapshot holds the response: running it needs no network (and
    // the server is gone).
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("client.wasm");
    std::fs::write(&wasm, &built.component).unwrap();
    let o = Command::new(toolchain("bin/wasmtime"))
        .args(["run", "-W", "exceptions=y", "-S", "http"])
        .arg(&wasm)
        .output()
        .unwrap();
    assert_eq!(ok(&o), "fetched at init: 201 answer=42\n");

    // Without the flag the same script is refused, naming the URL.
    let err = format!("{:#}", client(&script).run(&mut |_| {}).err().unwrap());
    assert!(
        err.contains(&format!("GET http://{addr}/config?v=1")),
        "{err}"
    );
    assert!(err.contains("--allow-http"), "{err}");
}
