//! wasi:http during init, through the pipeline with the Lua binding: the
//! host provides it, and refuses every outgoing request, naming it. Needs
//! the toolchain build: `bash toolchain/build.sh`.

mod common;

use common::{libc_dir, lua};
use componentize::{Pipeline, Source};

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

#[test]
fn an_outgoing_request_at_init_is_refused_naming_its_url() {
    let mut pipeline = Pipeline::new(
        Source::path(lua().interpreter().path),
        componentize_testkit::repo_file("fixtures/init/imports"),
    );
    pipeline
        .world("http-client")
        .script(Source::bytes("client.lua", SCRIPT.as_bytes().to_vec()))
        .search_path(libc_dir());
    let err = format!("{:#}", pipeline.run(&mut |_| {}).err().unwrap());
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
