//! `componentize serve` through the binary on the Lua HTTP example
//! (interpreters/lua/examples/http), with a plain HTTP/1.1 client on
//! 127.0.0.1: exact answers, many requests over concurrent keep-alive
//! connections, a failing handler, the same answers under `wasmtime serve`
//! and from a precompiled `.cwasm`,
//! the body limits, a graceful shutdown, and the errors. The JavaScript
//! example (interpreters/js/examples/http, the same routes) answers as the
//! Lua one does, under both hosts, and streams. The Lua wasi:http 0.3
//! example (interpreters/lua/examples/http-p3) answers as the 0.2 one does,
//! under both hosts, streams a 1 MiB body as the handler writes it, and
//! answers 100 concurrent requests with one instance, interleaved. Needs the toolchain build:
//! `bash toolchain/build.sh`.

mod common;

use common::{
    KillOnDrop, build_js, build_lua, cache, componentize, failed, hello, http_example,
    http_p3_example, js_http_example, scratch, toolchain,
};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The HTTP example, built once.
fn http_wasm() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let out = scratch().join("http.wasm");
        build_lua(
            &http_example(),
            &http_example().join("app.lua"),
            &out,
            &cache(),
        );
        out
    })
}

/// The wasi:http 0.3 example, built once.
fn http_p3_wasm() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let out = scratch().join("http-p3.wasm");
        let example = http_p3_example();
        build_lua(&example, &example.join("app.lua"), &out, &cache());
        out
    })
}

/// The JavaScript HTTP example, built once with the bundled interpreter.
fn js_http_wasm() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let out = scratch().join("js-http.wasm");
        let example = js_http_example();
        build_js(&example, &example.join("app.js"), &out, &cache());
        out
    })
}

/// A running server: its address and everything it wrote to stderr so far.
struct Server {
    process: KillOnDrop,
    addr: String,
    stderr: Arc<Mutex<String>>,
}

/// How long a server may take to start listening (the first one compiles
/// the component).
const START_TIMEOUT: Duration = Duration::from_secs(120);

impl Server {
    /// Starts `command` (a server printing `Serving HTTP on http://ADDR/`
    /// to stderr) and waits for that line.
    fn start(mut command: Command) -> Server {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let process = KillOnDrop(child);
        let log = Arc::new(Mutex::new(String::new()));
        let (found, listening) = std::sync::mpsc::channel();
        let collected = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("Serving HTTP on http://") {
                    let _ = found.send(rest.trim_end_matches('/').to_string());
                }
                let mut log = collected.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = listening.recv_timeout(START_TIMEOUT).unwrap_or_else(|_| {
            panic!(
                "the server did not start listening: {}",
                log.lock().unwrap()
            )
        });
        Server {
            process,
            addr,
            stderr: log,
        }
    }

    /// `componentize serve` on the example, on a free port, with `flags`.
    fn componentize(flags: &[&str]) -> Server {
        Server::componentize_serving(http_wasm(), flags)
    }

    /// `componentize serve` on `component`, on a free port, with `flags`.
    fn componentize_serving(component: &Path, flags: &[&str]) -> Server {
        let mut command = componentize();
        command
            .env("COMPONENTIZE_CACHE_DIR", cache())
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(flags)
            .arg(component);
        Server::start(command)
    }

    /// `wasmtime serve` (the toolchain's CLI) on the example.
    fn wasmtime() -> Server {
        Server::wasmtime_serving(http_wasm())
    }

    /// `wasmtime serve` on `component`. The interpreters' libc imports
    /// wasi:cli beyond the proxy world: `-S cli`.
    fn wasmtime_serving(component: &Path) -> Server {
        Server::wasmtime_with(component, &[])
    }

    /// `wasmtime serve -S cli` with `flags` on `component`.
    fn wasmtime_with(component: &Path, flags: &[&str]) -> Server {
        let mut command = Command::new(toolchain("bin/wasmtime"));
        command
            .args(["serve", "-S", "cli", "--addr", "127.0.0.1:0"])
            .args(flags)
            .arg(component);
        Server::start(command)
    }

    /// `wasmtime serve` on the wasi:http 0.3 example: it needs
    /// component-model async and WASIp3.
    fn wasmtime_p3() -> Server {
        Server::wasmtime_with(http_p3_wasm(), &["-W", "component-model-async", "-S", "p3"])
    }

    fn connect(&self) -> Client {
        Client::connect(&self.addr)
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The server's stderr once it contains `line` (it logs a failure after
    /// answering, so the client may see the answer first), or after 10 s.
    fn stderr_with(&self, line: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let stderr = self.stderr();
            if stderr.contains(line) || std::time::Instant::now() > deadline {
                return stderr;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn pid(&self) -> String {
        self.process.0.id().to_string()
    }
}

/// A response as the client read it.
#[derive(Debug, PartialEq)]
struct Reply {
    status: u16,
    /// Lowercase names, in the order received.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

/// An HTTP/1.1 client on one keep-alive connection.
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: &str) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        Client {
            reader: BufReader::new(stream),
        }
    }

    /// Sends a request with a content-length body and reads the reply.
    fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        self.write(&head(method, path, headers, Some(body.len())));
        self.write(body);
        self.reply()
    }

    fn get(&mut self, path: &str) -> Reply {
        self.send("GET", path, &[], b"")
    }

    fn write(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    /// Reads one response: status line, headers, and a body delimited by
    /// content-length, chunked coding, or the end of the connection.
    fn reply(&mut self) -> Reply {
        let reply = self.head();
        self.body(reply)
    }

    /// Reads a response's status line and headers.
    fn head(&mut self) -> Reply {
        let status_line = self.line();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not a status line: {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let line = self.line();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
        Reply {
            status,
            headers,
            body: Vec::new(),
        }
    }

    /// Reads the body of the response whose head is `reply`.
    fn body(&mut self, mut reply: Reply) -> Reply {
        if let Some(n) = reply.header("content-length") {
            reply.body = vec![0; n.parse().unwrap()];
            self.reader.read_exact(&mut reply.body).unwrap();
        } else if reply.header("transfer-encoding") == Some("chunked") {
            loop {
                let size = usize::from_str_radix(self.line().split(';').next().unwrap(), 16);
                let size = size.unwrap();
                let mut chunk = vec![0; size];
                self.reader.read_exact(&mut chunk).unwrap();
                reply.body.extend(chunk);
                assert_eq!(self.line(), "");
                if size == 0 {
                    break;
                }
            }
        } else {
            self.reader.read_to_end(&mut reply.body).unwrap();
        }
        reply
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line.trim_end_matches(['\r', '\n']).to_string()
    }
}

/// A request head; `length` sets content-length, `None` chunked coding.
fn head(method: &str, path: &str, headers: &[(&str, &str)], length: Option<usize>) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: localhost\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match length {
        Some(n) => head.push_str(&format!("content-length: {n}\r\n\r\n")),
        None => head.push_str("transfer-encoding: chunked\r\n\r\n"),
    }
    head.into_bytes()
}

/// `n` bytes of every value, in a fixed pseudo-random order.
fn noise(n: usize) -> Vec<u8> {
    let mut state: u32 = 0x9e37_79b9;
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect()
}

const TEXT: &str = "text/plain; charset=utf-8";

#[test]
fn get_with_a_query_and_a_1_mib_post_are_answered_exactly() {
    let server = Server::componentize(&[]);
    let mut client = server.connect();

    let reply = client.get("/hello?name=J%C3%BCrgen&x=1");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some(TEXT));
    assert_eq!(reply.text(), "hello, Jürgen!\n");
    assert_eq!(client.get("/hello").text(), "hello, world!\n");

    let body = noise(1 << 20);
    let reply = client.send("POST", "/echo", &[], &body);
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(reply.header("x-body-length"), Some("1048576"));
    assert!(reply.body == body, "the echoed body differs");

    // The same body in chunks arrives whole too (read to its end).
    let mut chunked = head("POST", "/echo", &[], None);
    for part in body.chunks(300_000) {
        chunked.extend(format!("{:x}\r\n", part.len()).into_bytes());
        chunked.extend(part);
        chunked.extend(b"\r\n");
    }
    chunked.extend(b"0\r\n\r\n");
    client.write(&chunked);
    let reply = client.reply();
    assert_eq!(reply.header("x-body-length"), Some("1048576"));
    assert!(reply.body == body, "the echoed chunked body differs");

    let reply = client.send("GET", "/headers", &[("X-B", "2"), ("x-a", "1")], b"");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.text(),
        "content-length: 0\nx-a: 1\nx-b: 2\n",
        "the request's headers, sorted (host is not passed to handlers)"
    );

    let reply = client.get("/nowhere");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.text(), "not found: /nowhere\n");
}

#[test]
fn five_hundred_requests_over_16_connections_are_all_answered() {
    let server = Server::componentize(&[]);
    let addr = server.addr.clone();
    let connections: Vec<_> = (0..16)
        .map(|c| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(&addr);
                let mut answered = 0;
                // Requests c, c + 16, c + 32, ... below 500.
                for i in (c..500).step_by(16) {
                    match i % 4 {
                        0 => {
                            let reply = client.get(&format!("/hello?name=user{i}"));
                            assert_eq!(reply.status, 200, "request {i}");
                            assert_eq!(reply.text(), format!("hello, user{i}!\n"));
                        }
                        1 => {
                            // State built at init is there; the counter of
                            // the previous request on this connection is not.
                            let reply = client.get("/state");
                            assert_eq!(
                                reply.text(),
                                "init entries: 100, requests in this instance: 1\n",
                                "request {i}"
                            );
                        }
                        2 => {
                            let body = format!("body of request {i}\n").repeat(i);
                            let reply = client.send("POST", "/echo", &[], body.as_bytes());
                            assert_eq!(reply.text(), body, "request {i}");
                            let length = body.len().to_string();
                            assert_eq!(reply.header("x-body-length"), Some(length.as_str()));
                        }
                        _ => {
                            let id = i.to_string();
                            let reply = client.send("GET", "/headers", &[("x-request", &id)], b"");
                            assert!(
                                reply.text().contains(&format!("x-request: {i}\n")),
                                "request {i}: {}",
                                reply.text()
                            );
                        }
                    }
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    let answered: usize = connections.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(answered, 500);
    // Still serving, and nothing was logged as failed.
    assert_eq!(server.connect().get("/hello").status, 200);
    assert!(!server.stderr().contains("error"), "{}", server.stderr());
}

#[test]
fn a_lua_error_is_answered_with_500_and_logged_and_serving_goes_on() {
    let server = Server::componentize(&[]);
    let mut client = server.connect();
    let reply = client.get("/fail");
    assert_eq!(reply.status, 500);
    // Same connection, next request.
    let reply = client.get("/hello?name=again");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "hello, again!\n");
    let stderr = server.stderr_with("error: GET /fail: ");
    let logged: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(logged.len(), 1, "{stderr}");
    assert!(logged[0].starts_with("error: GET /fail: "), "{stderr}");
    assert!(logged[0].contains("wasm trap"), "{stderr}");
    // The Lua error itself, as the binding printed it.
    assert!(stderr.contains("the /fail route always fails"), "{stderr}");
}

/// Method, path, headers and body.
type Request<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a [u8]);

#[test]
fn wasmtime_serve_answers_the_same() {
    let ours = Server::componentize(&[]);
    let theirs = Server::wasmtime();
    let (mut a, mut b) = (ours.connect(), theirs.connect());
    let body = noise(64 << 10);
    let requests: [Request; 8] = [
        ("GET", "/hello?name=Ada", &[], b""),
        ("GET", "/hello?name=J%C3%BCrgen", &[], b""),
        ("GET", "/hello", &[], b""),
        ("POST", "/echo", &[], &body),
        ("GET", "/headers", &[("x-one", "1"), ("accept", "*/*")], b""),
        ("GET", "/state", &[], b""),
        ("GET", "/state", &[], b""),
        ("GET", "/missing", &[], b""),
    ];
    for (method, path, headers, body) in requests {
        let (x, y) = (
            a.send(method, path, headers, body),
            b.send(method, path, headers, body),
        );
        assert_eq!(x.status, y.status, "{method} {path}");
        assert!(x.body == y.body, "{method} {path}: the bodies differ");
        for name in ["content-type", "content-length", "x-body-length"] {
            assert_eq!(x.header(name), y.header(name), "{method} {path}: {name}");
        }
    }
    // Both answer a failing handler with 500 (each with its own page).
    assert_eq!(a.get("/fail").status, 500);
    assert_eq!(b.get("/fail").status, 500);
}

#[test]
fn bodies_over_the_limits_are_refused() {
    let server =
        Server::componentize(&["--max-request-body", "1KiB", "--max-response-body", "600"]);
    // Declared too large: 413 before the handler runs.
    let reply = server.connect().send("POST", "/echo", &[], &[b'x'; 1025]);
    assert_eq!(reply.status, 413);
    assert_eq!(reply.text(), "request body over the limit of 1024 bytes\n");
    // Chunked, found too large while streaming: 413 as well.
    let mut client = server.connect();
    let mut chunked = head("POST", "/echo", &[], None);
    for _ in 0..2 {
        chunked.extend(b"320\r\n");
        chunked.extend([b'y'; 0x320]);
        chunked.extend(b"\r\n");
    }
    chunked.extend(b"0\r\n\r\n");
    client.write(&chunked);
    assert_eq!(client.reply().status, 413);

    // Under both limits: echoed.
    let reply = server.connect().send("POST", "/echo", &[], &[b'z'; 600]);
    assert_eq!((reply.status, reply.body.len()), (200, 600));
    // A request at the limit, whose echo is over the response limit: 500,
    // logged.
    let reply = server.connect().send("POST", "/echo", &[], &[b'z'; 1024]);
    assert_eq!(reply.status, 500);
    let logged = "error: POST /echo: the response's content-length is over the limit of 600 bytes";
    let stderr = server.stderr_with(logged);
    assert!(stderr.contains(logged), "{stderr}");
}

/// Waits for the server's process to exit; its exit code.
fn exit_code(server: &mut Server) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(status) = server.process.0.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the server did not exit: {}", server.stderr());
}

#[test]
fn sigint_lets_the_request_in_flight_finish_then_exits_0() {
    let mut server = Server::componentize(&[]);
    let mut client = server.connect();
    // A request half sent: the handler is streaming its body.
    let body = noise(1 << 20);
    client.write(&head("POST", "/echo", &[], Some(body.len())));
    client.write(&body[..body.len() / 2]);
    std::thread::sleep(Duration::from_millis(300));
    let kill = Command::new("kill")
        .args(["-INT", &server.pid()])
        .status()
        .unwrap();
    assert!(kill.success());
    std::thread::sleep(Duration::from_millis(300));
    // No new connections once shutting down.
    assert!(TcpStream::connect(&server.addr).is_err());
    client.write(&body[body.len() / 2..]);
    let reply = client.reply();
    assert_eq!(reply.status, 200);
    assert!(reply.body == body, "the request in flight was cut short");
    assert_eq!(exit_code(&mut server), Some(0), "{}", server.stderr());
}

#[test]
fn errors_name_the_problem() {
    // A port that is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = componentize()
        .env("COMPONENTIZE_CACHE_DIR", cache())
        .args(["serve", "--addr", &addr])
        .arg(http_wasm())
        .output()
        .unwrap();
    let e = failed(&o);
    assert!(
        e.starts_with(&format!(
            "error: cannot listen on {addr}: the address is in use"
        )),
        "{e}"
    );

    // A command, not a proxy.
    let hello_wasm = scratch().join("hello.wasm");
    build_lua(&hello(), &hello().join("app.lua"), &hello_wasm, &cache());
    let o = componentize()
        .env("COMPONENTIZE_CACHE_DIR", cache())
        .args(["serve", "--addr", "127.0.0.1:0"])
        .arg(&hello_wasm)
        .output()
        .unwrap();
    let e = failed(&o);
    assert!(
        e.starts_with(
            "error: the component is not an HTTP service: it exports neither \
             `wasi:http/incoming-handler@0.2.x` (wasi:http/proxy) nor `wasi:http/handler@0.3.x` \
             (wasi:http/service); it exports `wasi:cli/run@0.2.12`"
        ),
        "{e}"
    );

    let o = componentize()
        .args(["serve", "--max-request-body", "5MB"])
        .arg(http_wasm())
        .output()
        .unwrap();
    let e = failed(&o);
    assert!(
        e.contains("the unit `MB` is not one of KiB, MiB, GiB"),
        "{e}"
    );
}

#[test]
fn serve_loads_a_cwasm() {
    let cwasm = scratch().join("http.cwasm");
    let compiled = componentize()
        .env("COMPONENTIZE_CACHE_DIR", cache())
        .arg("compile")
        .arg(http_wasm())
        .arg("-o")
        .arg(&cwasm)
        .output()
        .unwrap();
    common::ok(&compiled);
    let server = Server::componentize_serving(&cwasm, &[]);
    let reply = server.connect().get("/hello?name=cwasm");
    assert_eq!(reply.status, 200, "{}", server.stderr());
    assert_eq!(reply.text(), "hello, cwasm!\n");
}

#[test]
fn the_js_example_answers_like_the_lua_one_under_both_hosts() {
    let lua = Server::componentize(&[]);
    let js = Server::componentize_serving(js_http_wasm(), &[]);
    let js_wasmtime = Server::wasmtime_serving(js_http_wasm());
    let mut clients = [lua.connect(), js.connect(), js_wasmtime.connect()];
    let body = noise(1 << 20);
    let requests: [Request; 9] = [
        ("GET", "/hello?name=Ada", &[], b""),
        ("GET", "/hello?name=J%C3%BCrgen&x=1", &[], b""),
        ("GET", "/hello", &[], b""),
        ("POST", "/echo", &[], &body),
        ("POST", "/echo", &[], b""),
        ("GET", "/headers", &[("X-B", "2"), ("x-a", "1")], b""),
        ("GET", "/state", &[], b""),
        ("GET", "/state", &[], b""),
        ("GET", "/missing", &[], b""),
    ];
    for (method, path, headers, body) in requests {
        let replies = clients
            .each_mut()
            .map(|client| client.send(method, path, headers, body));
        let [expected, got @ ..] = &replies;
        for (host, reply) in ["componentize serve", "wasmtime serve"].iter().zip(got) {
            let what = format!("{method} {path} (JS, {host})");
            assert_eq!(reply.status, expected.status, "{what}");
            assert!(reply.body == expected.body, "{what}: {:?}", reply.text());
            for name in ["content-type", "content-length", "x-body-length"] {
                assert_eq!(reply.header(name), expected.header(name), "{what}: {name}");
            }
        }
    }
    assert_eq!(clients[1].get("/hello?name=Ada").text(), "hello, Ada!\n");

    // A thrown error: 500 from both hosts, the JS stack on the server's
    // stderr, and serving goes on.
    assert_eq!(clients[1].get("/fail").status, 500);
    assert_eq!(clients[2].get("/fail").status, 500);
    let stderr = js.stderr_with("error: GET /fail: ");
    assert!(
        stderr.contains("Error: the /fail route always fails (GET /fail)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("(app.js:"),
        "the stack names the script: {stderr}"
    );
    assert_eq!(clients[1].get("/hello").status, 200);
}

#[test]
fn a_js_generator_body_streams_in_chunks_under_both_hosts() {
    let expected: String = (0..500).map(|i| format!("chunk {i} of 500\n")).collect();
    for server in [
        Server::componentize_serving(js_http_wasm(), &[]),
        Server::wasmtime_serving(js_http_wasm()),
    ] {
        let reply = server.connect().get("/stream?count=500");
        assert_eq!(reply.status, 200, "{}", server.stderr());
        // No length known in advance: chunked coding, the body whole.
        assert_eq!(reply.header("content-length"), None);
        assert_eq!(reply.header("transfer-encoding"), Some("chunked"));
        assert_eq!(reply.text(), expected);
    }
}

#[test]
fn js_requests_over_concurrent_connections_each_start_from_the_snapshot() {
    let server = Server::componentize_serving(js_http_wasm(), &[]);
    let connections: Vec<_> = (0..8)
        .map(|c| {
            let addr = server.addr.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(&addr);
                for i in (c..120).step_by(8) {
                    let reply = client.get(&format!("/hello?name=user{i}"));
                    assert_eq!(reply.text(), format!("hello, user{i}!\n"));
                    let reply = client.get("/state");
                    assert_eq!(
                        reply.text(),
                        "init entries: 100, requests in this instance: 1\n",
                        "request {i}"
                    );
                }
            })
        })
        .collect();
    for connection in connections {
        connection.join().unwrap();
    }
    assert!(!server.stderr().contains("error"), "{}", server.stderr());
}

/// The bytes of the p3 example's `/stream` body: byte i is `i % 251`.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

#[test]
fn the_lua_p3_service_answers_like_the_p2_one_under_both_hosts() {
    let p2 = Server::componentize(&[]);
    let ours = Server::componentize_serving(http_p3_wasm(), &[]);
    let theirs = Server::wasmtime_p3();
    let mut clients = [p2.connect(), ours.connect(), theirs.connect()];
    let body = noise(1 << 20);
    let requests: [Request; 5] = [
        ("GET", "/hello?name=J%C3%BCrgen", &[], b""),
        ("GET", "/hello", &[], b""),
        ("POST", "/echo", &[], &body),
        ("GET", "/headers", &[("x-one", "1"), ("accept", "*/*")], b""),
        ("GET", "/missing", &[], b""),
    ];
    for (method, path, headers, body) in requests {
        let [x, y, z] = clients
            .each_mut()
            .map(|client| client.send(method, path, headers, body));
        for (host, reply) in [("componentize serve", &y), ("wasmtime serve", &z)] {
            assert_eq!(reply.status, x.status, "{host}: {method} {path}");
            assert!(
                reply.body == x.body,
                "{host}: {method} {path}: the body differs from p2's"
            );
            for name in ["content-type", "content-length", "x-body-length"] {
                assert_eq!(
                    reply.header(name),
                    x.header(name),
                    "{host}: {method} {path}: {name}"
                );
            }
        }
    }
    assert_eq!(clients[2].get("/hello?name=Ada").text(), "hello, Ada!\n");

    // A Lua error is internal-error: 500, logged with its traceback, and
    // the instance answers the next request on the same connection.
    let reply = clients[1].get("/fail");
    assert_eq!(reply.status, 500);
    let reply = clients[1].get("/state");
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .text()
            .starts_with("init entries: 100, requests in this instance: "),
        "{}",
        reply.text()
    );
    let stderr = ours.stderr_with("the handler failed");
    assert!(
        stderr.contains(
            "error: GET /fail: the handler failed: ErrorCode::InternalError(Some(\"app.lua:"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("the /fail route always fails"), "{stderr}");
    assert!(stderr.contains("stack traceback:"), "{stderr}");
    assert!(!stderr.contains("instance failed"), "{stderr}");
    assert_eq!(clients[2].get("/fail").status, 500);
}

#[test]
fn a_p3_response_body_of_1_mib_streams_as_the_handler_writes_it() {
    const CHUNKS: u32 = 16;
    const DELAY_MS: u32 = 25;
    let path = format!("/stream?chunks={CHUNKS}&size=65536&delay-ms={DELAY_MS}");
    let expected = pattern(1 << 20);
    let ours = Server::componentize_serving(http_p3_wasm(), &[]);
    let theirs = Server::wasmtime_p3();
    for (host, server) in [("componentize serve", &ours), ("wasmtime serve", &theirs)] {
        let mut client = server.connect();
        client.write(&head("GET", &path, &[], Some(0)));
        let reply = client.head();
        // The head goes out when `handle` returns; the handler's coroutine
        // writes the chunks after it, waiting between them.
        let headed = Instant::now();
        assert_eq!(reply.status, 200, "{host}");
        assert_eq!(reply.header("content-length"), None, "{host}");
        assert_eq!(reply.header("transfer-encoding"), Some("chunked"), "{host}");
        let reply = client.body(reply);
        let streamed = headed.elapsed();
        assert!(reply.body == expected, "{host}: the body differs");
        // 15 waits between the chunks come after the head: a body that was
        // buffered whole before the head went out would arrive at once.
        let waits = Duration::from_millis(u64::from((CHUNKS - 1) * DELAY_MS));
        assert!(
            streamed >= waits * 9 / 10,
            "{host}: the body came {streamed:?} after the head, less than the handler's waits \
             ({waits:?})"
        );
    }
}

#[test]
fn a_hundred_concurrent_p3_requests_interleave_in_one_instance() {
    const REQUESTS: usize = 100;
    const WAIT_MS: u64 = 400;
    let server = Server::componentize_serving(
        http_p3_wasm(),
        &[
            "--max-instance-concurrent-reuse-count",
            "100",
            "--max-instance-reuse-count",
            "100",
        ],
    );
    // Every client connects first, then all send at once.
    let start = Arc::new(std::sync::Barrier::new(REQUESTS));
    let began = Instant::now();
    let clients: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let addr = server.addr.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(&addr);
                start.wait();
                let reply = client.get(&format!("/wait?ms={WAIT_MS}"));
                assert_eq!(reply.status, 200, "{}", reply.text());
                reply.text()
            })
        })
        .collect();
    let mut numbers = Vec::new();
    let mut at_start = Vec::new();
    for client in clients {
        let text = client.join().unwrap();
        // "request N: A other(s) in flight at the start, B at the end"
        let fields: Vec<usize> = text
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        let [n, a, _b] = fields[..] else {
            panic!("unexpected answer {text:?}")
        };
        numbers.push(n);
        at_start.push(a);
    }
    let wall = began.elapsed();
    // One instance answered them all: its request counter went 1 to 100.
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=REQUESTS).collect::<Vec<_>>());
    // They overlapped: the n-th request to start found the ones before it
    // still waiting (all of them, unless some had already finished).
    let most = *at_start.iter().max().unwrap();
    assert!(
        most >= REQUESTS / 2,
        "at most {most} requests were in flight together"
    );
    // One after the other they would take 100 waits.
    let sequential = Duration::from_millis(WAIT_MS * REQUESTS as u64);
    assert!(wall < sequential / 4, "{REQUESTS} requests took {wall:?}");
    assert!(!server.stderr().contains("error"), "{}", server.stderr());
}
