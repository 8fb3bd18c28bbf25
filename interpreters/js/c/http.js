// componentize:http: wasi:http/incoming-handler for JavaScript, with the
// shapes of the web's fetch API (Request, Response, Headers).
//
// js.so embeds this file as the module "componentize:http". It needs a world
// that imports wasi:http/types (`include wasi:http/proxy@0.2.x`). See
// ../README.md, "HTTP services", for the interface.
import * as types from "wasi:http/types";

// The bytes asked for in one read of the request body.
const READ_CHUNK = 64n * 1024n;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

// A ComponentError of wasi:http or wasi:io, as text.
function detail(e) {
  if (!(e instanceof ComponentError)) return String(e);
  const p = e.payload;
  if (p === undefined) return "error";
  if (p && typeof p === "object" && "tag" in p) {
    const v = p.val;
    const text = v && typeof v.toDebugString === "function" ? v.toDebugString() : v;
    return text === undefined ? p.tag : `${p.tag}: ${text}`;
  }
  return String(p);
}

function failed(what, e) {
  throw new Error(`${what} failed: ${detail(e)}`);
}

const isClosed = (e) => e instanceof ComponentError && e.payload && e.payload.tag === "closed";

/** Header names and values, names case-insensitive (stored in lower case). */
export class Headers {
  #list = [];
  constructor(init) {
    if (init instanceof Headers) init = init.entries();
    else if (init && !(Symbol.iterator in Object(init))) init = Object.entries(init);
    for (const [name, value] of init || []) this.append(name, value);
  }
  append(name, value) { this.#list.push([String(name).toLowerCase(), String(value)]); }
  set(name, value) { this.delete(name); this.append(name, value); }
  delete(name) {
    const n = String(name).toLowerCase();
    this.#list = this.#list.filter(([k]) => k !== n);
  }
  get(name) {
    const n = String(name).toLowerCase();
    const values = this.#list.filter(([k]) => k === n).map(([, v]) => v);
    return values.length ? values.join(", ") : null;
  }
  has(name) { return this.get(name) !== null; }
  *entries() { yield* this.#list.map(([k, v]) => [k, v]); }
  *keys() { for (const [k] of this.#list) yield k; }
  *values() { for (const [, v] of this.#list) yield v; }
  forEach(f, self) { for (const [k, v] of this.#list) f.call(self, v, k, this); }
  [Symbol.iterator]() { return this.entries(); }
}

/** Decodes `%XX` escapes, and `+` as a space (form encoding). */
export function unescape(s) {
  return decodeURIComponent(s.replace(/\+/g, " "));
}

/** `"a=1&b=x%20y"` -> `{ a: "1", b: "x y" }`; of a repeated name, the last value wins. */
export function parseQuery(query) {
  const params = {};
  for (const pair of (query || "").split("&")) {
    if (!pair) continue;
    const eq = pair.indexOf("=");
    const name = eq < 0 ? pair : pair.slice(0, eq);
    params[unescape(name)] = eq < 0 ? "" : unescape(pair.slice(eq + 1));
  }
  return params;
}

// The request body, read from the host on demand, once.
function* readBody(incoming) {
  let body, stream;
  try {
    body = incoming.consume();
    stream = body.stream();
  } catch (e) {
    failed("reading the request body", e);
  }
  try {
    for (;;) {
      let chunk;
      try {
        chunk = stream.blockingRead(READ_CHUNK);
      } catch (e) {
        if (isClosed(e)) return;
        failed("reading the request body", e);
      }
      if (chunk.length) yield chunk;
    }
  } finally {
    // The stream is a child of the body: drop it first.
    stream[Symbol.dispose]();
    body[Symbol.dispose]();
  }
}

function concat(chunks) {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

const METHODS = ["get", "head", "post", "put", "delete", "connect", "options", "trace", "patch"];

/** The request a handler gets. */
export class Request {
  #incoming;
  #bytes;
  #read = false;
  constructor(incoming) {
    this.#incoming = incoming;
    const m = incoming.method();
    this.method = m.tag === "other" ? m.val : m.tag.toUpperCase();
    const pathWithQuery = incoming.pathWithQuery() ?? "/";
    const q = pathWithQuery.indexOf("?");
    this.path = q < 0 ? pathWithQuery : pathWithQuery.slice(0, q);
    this.query = q < 0 ? undefined : pathWithQuery.slice(q + 1);
    this.pathWithQuery = pathWithQuery;
    const scheme = incoming.scheme();
    this.scheme = scheme === undefined ? undefined : scheme.tag === "other" ? scheme.val : scheme.tag.toLowerCase();
    this.authority = incoming.authority();
    this.url = `${this.scheme ?? "http"}://${this.authority ?? "localhost"}${pathWithQuery}`;
    const fields = incoming.headers();
    this.headers = new Headers(fields.entries().map(([k, v]) => [k, decoder.decode(v)]));
    fields[Symbol.dispose]();
  }
  /** The body's chunks (Uint8Array) as they arrive, for bodies too large to hold. */
  *chunks() {
    if (this.#read) throw new TypeError("the request body was already read");
    this.#read = true;
    yield* readBody(this.#incoming);
  }
  #all() {
    if (this.#bytes === undefined) this.#bytes = concat([...this.chunks()]);
    return this.#bytes;
  }
  /** The whole body. These return promises, as fetch's do. */
  async bytes() { return this.#all(); }
  async arrayBuffer() { return this.#all().slice().buffer; }
  async text() { return decoder.decode(this.#all()); }
  async json() { return JSON.parse(decoder.decode(this.#all())); }
}

/** What a handler returns. `body`: a string, bytes, or an iterable of them (streamed). */
export class Response {
  constructor(body = null, init = {}) {
    this.body = body;
    this.status = init.status ?? 200;
    this.headers = new Headers(init.headers);
  }
  static json(data, init = {}) {
    const r = new Response(JSON.stringify(data), init);
    if (!r.headers.has("content-type")) r.headers.set("content-type", "application/json");
    return r;
  }
}

const toBytes = (chunk) =>
  typeof chunk === "string" ? encoder.encode(chunk)
  : chunk instanceof Uint8Array ? chunk
  : chunk instanceof ArrayBuffer ? new Uint8Array(chunk)
  : ArrayBuffer.isView(chunk) ? new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)
  : (() => { throw new TypeError(`a response body chunk must be a string or bytes, got ${typeof chunk}`); })();

// Writes all of `data`, as fast as the host takes it.
function writeAll(stream, data) {
  let at = 0;
  while (at < data.length) {
    let room;
    try {
      room = Number(stream.checkWrite());
    } catch (e) {
      failed("writing the response body", e);
    }
    if (room === 0) {
      const ready = stream.subscribe();
      ready.block();
      ready[Symbol.dispose]();
      continue;
    }
    const n = Math.min(room, data.length - at);
    try {
      stream.write(data.subarray(at, at + n));
    } catch (e) {
      failed("writing the response body", e);
    }
    at += n;
  }
}

function respond(out, response) {
  if (!(response instanceof Response))
    throw new TypeError(`the handler must return a Response, got ${response === null ? "null" : typeof response}`);
  let body = response.body ?? "";
  const single = typeof body === "string" || body instanceof ArrayBuffer || ArrayBuffer.isView(body);
  if (single) body = toBytes(body);
  const headers = new Headers(response.headers);
  if (single && !headers.has("content-length")) headers.set("content-length", String(body.length));
  let fields;
  const list = [...headers].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  try {
    fields = types.Fields.fromList(list.map(([k, v]) => [k, encoder.encode(v)]));
  } catch (e) {
    failed(`setting the response headers (${list.map(([k]) => k).join(", ")})`, e);
  }
  const outgoing = new types.OutgoingResponse(fields);
  try {
    outgoing.setStatusCode(response.status);
  } catch {
    throw new RangeError(`invalid response status ${response.status}`);
  }
  const outgoingBody = outgoing.body();
  // The head goes out first, so a large body streams instead of filling
  // the host's buffer before anyone reads it.
  types.ResponseOutparam.set(out, { tag: "ok", val: outgoing });
  const stream = outgoingBody.write();
  if (single) writeAll(stream, body);
  else for (const chunk of body) writeAll(stream, toBytes(chunk));
  // Once a body with a content-length is complete, the host may close the
  // stream before the flush returns: `closed` then means delivered.
  try {
    stream.blockingFlush();
  } catch (e) {
    if (!isClosed(e)) failed("flushing the response body", e);
  }
  stream[Symbol.dispose]();
  types.OutgoingBody.finish(outgoingBody, undefined);
}

/**
 * The component's wasi:http/incoming-handler for `handler(request)`, which
 * returns a Response (or a promise of one):
 *   export const incomingHandler = serve((req) => new Response("hi"));
 * An exception in the handler traps the export; hosts answer 500.
 */
export function serve(handler) {
  return {
    async handle(incoming, out) {
      const response = await handler(new Request(incoming));
      respond(out, response);
    },
  };
}
