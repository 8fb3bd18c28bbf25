// An HTTP service: the routes below, served by any wasi:http/proxy host.
//   componentize --interpreter js --world app.wit --init app.js -o http.wasm
//   componentize serve http.wasm
//   curl 'http://127.0.0.1:8080/hello?name=Ada'
// The same routes as the Lua example (interpreters/lua/examples/http), plus
// /stream.
import { serve, Response, parseQuery } from "componentize:http";

// Built once, while the component is built: every request starts with it.
const squares = Array.from({ length: 100 }, (_, i) => (i + 1) ** 2);

// Counts the requests this instance has handled. Each request gets a fresh
// instance from the snapshot, so it is always 1 when a request reads it.
let requests = 0;

const text = (status, body) =>
  new Response(body, { status, headers: { "content-type": "text/plain; charset=utf-8" } });

const routes = {
  "GET /hello": (req) => text(200, `hello, ${parseQuery(req.query).name ?? "world"}!\n`),

  "POST /echo": async (req) => {
    const body = await req.bytes();
    return new Response(body, {
      headers: { "content-type": "application/octet-stream", "x-body-length": String(body.length) },
    });
  },

  "GET /headers": (req) =>
    text(200, [...req.headers].map(([name, value]) => `${name}: ${value}\n`).sort().join("")),

  "GET /state": () =>
    text(200, `init entries: ${squares.length}, requests in this instance: ${requests}\n`),

  // A body produced piece by piece: sent to the client as it is yielded.
  "GET /stream": (req) => {
    const count = Number(parseQuery(req.query).count ?? 4);
    return new Response((function* () {
      for (let i = 0; i < count; i++) yield `chunk ${i} of ${count}\n`;
    })(), { headers: { "content-type": "text/plain; charset=utf-8" } });
  },

  "GET /fail": (req) => {
    throw new Error(`the /fail route always fails (${req.method} ${req.path})`);
  },
};

export const incomingHandler = serve((req) => {
  requests += 1;
  const route = routes[`${req.method} ${req.path}`];
  return route ? route(req) : text(404, `not found: ${req.path}\n`);
});
