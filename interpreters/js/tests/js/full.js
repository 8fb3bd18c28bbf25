// The script of world `full` (interpreters/lua/tests/wit/worlds.wit): every
// value type, resources both ways, imports. The JavaScript equivalent of
// interpreters/lua/tests/lua/full.lua; the test host (tests/js.rs) checks
// what these functions return.
import { add, log, swap, classify, maybeDouble, Blob } from "componentize:lua-tests/host-api";
import * as environment from "wasi:cli/environment@0.2.12";
import { getEnvironment } from "wasi:cli/environment";
import { now } from "wasi:clocks/wall-clock";
import { getRandomBytes } from "wasi:random/random@0.2.12";

const encode = (s) => new TextEncoder().encode(s);
const decode = (b) => new TextDecoder().decode(b);
const same = (a, b) => a.length === b.length && Array.from(a).every((x, i) => Object.is(x, b[i]));

// Every field of `everything`, as the script builds it (JS -> WIT).
function everything() {
  return {
    aU8: 255, aU16: 65535, aU32: 4294967295,
    aU64: 18446744073709551615n, // u64 and s64 are BigInts
    aS8: -128, aS16: -32768, aS32: -2147483648, aS64: -9223372036854775808n,
    aF32: 1.5, aF64: Math.PI, aBool: true,
    aChar: "€", aString: "héllo wörld",
    bytes: new Uint8Array([0, 1, 2, 255]), // list<u8> is a Uint8Array
    words: ["alpha", "beta", ""],
    nums: new Int32Array([1, -2, 3]),
    floats: [0.5, -1e300, 3], // a plain array is fine where a typed array goes
    pair: ["two", 2],
    maybe: undefined, // none
    nested: { tag: "some", val: undefined }, // some(none): an option of an option is tagged
    outcome: { tag: "err", val: "bad" },
    emptyOutcome: { tag: "ok" },
    color: "dark-blue",
    perms: { read: true, execAll: true },
    shape: { tag: "rect", val: { x: 1, y: -1 } },
    points: [{ x: 1, y: 2 }, { x: 3, y: 4 }],
    sparse: [7, undefined, 9],
    table: new Map([["one", 1], ["two", 2]]),
    ident: 42n,
  };
}

// Exported resource `counter`: a class. Its [Symbol.dispose] runs when the
// host drops the last handle.
let closed = 0;
class Counter {
  #n;
  constructor(start) { this.#n = start; }
  increment(by) { this.#n += by; return this.#n; }
  get() { return this.#n; }
  static sum(a, b) { return new Counter(a.get() + b.get()); }
  [Symbol.dispose]() { closed++; }
}

let lastBorrowed; // a borrow is only valid during the call that lent it

// Exported interface componentize:lua-tests/types: the object `types`.
export const types = {
  makeEverything() { return everything(); },

  // The host sends a fixed value; check how JS sees it (WIT -> JS).
  checkEverything(e) {
    const fails = [];
    const check = (name, ok) => { if (!ok) fails.push(name); };
    check("aU8", e.aU8 === 200);
    check("aU16", e.aU16 === 60000);
    check("aU32", e.aU32 === 4000000000);
    check("aU64", e.aU64 === 18446744073709551615n);
    check("aS8", e.aS8 === -5);
    check("aS16", e.aS16 === -300);
    check("aS32", e.aS32 === -70000);
    check("aS64", e.aS64 === -9223372036854775808n);
    check("aF32", e.aF32 === 0.25);
    check("aF64", e.aF64 === -2.5);
    check("aBool", e.aBool === false);
    check("aChar", e.aChar === "ß");
    check("aString", e.aString === "ünïcödé");
    check("bytes", e.bytes instanceof Uint8Array && same(e.bytes, [0, 97, 98, 99, 255]));
    check("words", Array.isArray(e.words) && same(e.words, ["x", "y"]));
    check("nums", e.nums instanceof Int32Array && same(e.nums, [-1, 0, 100000]));
    check("floats", e.floats instanceof Float64Array && same(e.floats, [1.25]));
    check("pair", Array.isArray(e.pair) && same(e.pair, ["p", 9]));
    check("maybe", e.maybe === "m");
    check("nested", e.nested.tag === "some" && e.nested.val === 5);
    check("outcome", e.outcome.tag === "ok" && e.outcome.val === 7);
    check("emptyOutcome", e.emptyOutcome.tag === "err" && !("val" in e.emptyOutcome));
    check("color", e.color === "dark-blue");
    check("perms", same(Object.entries(e.perms).flat(), ["read", false, "write", true, "execAll", true]));
    check("shape", e.shape.tag === "circle" && e.shape.val === 2.5);
    check("points", e.points.length === 1 && e.points[0].x === 5 && e.points[0].y === 6);
    check("sparse", same(e.sparse, [undefined, 4, undefined]));
    check("table", e.table instanceof Map && e.table.size === 2 && e.table.get("k") === 1 && e.table.get("v") === 2);
    check("ident", e.ident === 7n);
    check("field names", Object.keys(e).length === 29 && "emptyOutcome" in e && !("empty-outcome" in e));
    return fails;
  },

  echoEverything(e) { return e; },
  echoShape(s) { return s; },
  echoNested(n) { return n; },
  echoU64(n) { return n; },

  Counter,
  // own<counter> coming back: the object itself.
  consume(c) { return c.get(); },
  closedCount() { return closed; },

  // Imported resources in exports.
  blobSize(b) {
    lastBorrowed = b;
    return b.size();
  },
  blobGrow(b, extra) {
    b.append(encode(extra));
    return b; // moves the handle back to the caller
  },
  makeBlob(text) { return new Blob(encode(text)); },
};

// `expect(name, f, text)`: f throws an error whose message has `text`.
function throws(check) {
  return (name, f, text, type = TypeError) => {
    try {
      f();
      check(`${name}: no error`, false);
    } catch (e) {
      check(`${name}: ${e}`, e instanceof type && String(e.message).includes(text));
    }
  };
}

// Imported resources from JS; `c` and `d` are left to the collector.
function blobChecks(check) {
  const expect = throws(check);
  const b = new Blob(encode("abc"));
  b.append(encode("def"));
  check("blob size", b.size() === 6);
  check("blob read", b.read() instanceof Uint8Array && decode(b.read()) === "abcdef");
  const c = new Blob([120, 121, 122]); // a plain array for list<u8>
  const d = Blob.concat(b, c);
  check("blob concat", decode(d.read()) === "abcdefxyz");
  check("instanceof", c instanceof Blob && d instanceof Blob && Object.getPrototypeOf(d) === Blob.prototype);
  check("class name", Blob.name === "Blob" && typeof Blob.prototype[Symbol.dispose] === "function");
  b[Symbol.dispose]();
  b[Symbol.dispose](); // disposing twice is fine
  expect("use after dispose", () => b.size(), "resource blob was already dropped or moved");
  expect("dropped argument", () => Blob.concat(c, b), "argument #2: resource blob was already dropped or moved");
  const stack = new DisposableStack();
  const tmp = stack.use(new Blob(encode("tmp")));
  check("DisposableStack use", tmp.size() === 3);
  stack.dispose();
  expect("disposed by the stack", () => tmp.size(), "already dropped or moved");
  expect("not a blob", () => Blob.concat({}, c), "bad argument #1");
  // Set when blob-size ran before (not in world `snapshot`).
  if (lastBorrowed) expect("expired borrow", () => lastBorrowed.size(), "already dropped or moved");
}

// World-level exports are module exports.
export function runImports() {
  const fails = [];
  const check = (name, ok) => { if (!ok) fails.push(name); };
  const expect = throws(check);

  check("versionless import", environment.getEnvironment === getEnvironment);
  const found = getEnvironment().find(([k]) => k === "JS_TEST");
  check("environment", found !== undefined && found[1] === "hello env");

  check("add", add(2, 40) === 42);
  log("from js");
  const p = swap({ x: 1, y: 2 });
  check("swap", p.x === 2 && p.y === 1 && Object.keys(p).join() === "x,y");
  check("classify ok", classify(4) === "even" && classify(7) === "odd");
  try {
    classify(-1);
    check("classify err: no error", false);
  } catch (e) {
    check(`classify err: ${e}`, e instanceof ComponentError && e instanceof Error && e.payload === "negative" &&
      e.message === "negative");
  }
  check("maybe none", maybeDouble(undefined) === undefined && maybeDouble(null) === undefined);
  check("maybe missing argument", maybeDouble() === undefined);
  check("maybe some", maybeDouble(21) === 42);

  expect("bad argument", () => add("x", 1),
    "bad argument #1 to 'componentize:lua-tests/host-api#add' (argument #1: expected s32");
  expect("bad field", () => swap({ x: 1 }), "(argument #1.y: expected s32 (an integer in [-2147483648, 2147483647]), got undefined)");
  expect("out of range", () => add(1, 2 ** 40), "argument #2: expected s32 (an integer in [-2147483648, 2147483647]), got number 1099511627776");
  expect("not an integer", () => add(1.5, 1), "got number 1.5");
  expect("too many", () => add(1, 2, 3), "too many arguments to 'componentize:lua-tests/host-api#add' (expected 2, got 3)");
  expect("bad bytes", () => new Blob("abc"), "expected list (a Uint8Array or an array), got string \"abc\"");

  // Imports work from promise jobs and generators, too.
  let fromJob;
  Promise.resolve(20).then((n) => { fromJob = add(n, 22); });
  function* gen(a) { const b = yield add(a, 1); return add(b, 1); }
  const g = gen(1);
  check("generator", g.next().value === 2 && g.next(10).value === 11);

  blobChecks(check);

  const t = now();
  check("wall clock", typeof t.seconds === "bigint" && t.seconds > 1600000000n && t.nanoseconds < 1e9);
  check("Date.now", Date.now() > 1600000000000 && Math.abs(Date.now() / 1000 - Number(t.seconds)) < 60);
  const bytes = getRandomBytes(16n);
  check("random bytes", bytes instanceof Uint8Array && bytes.length === 16);
  check("random bytes (a Number for u64)", getRandomBytes(8).length === 8);
  const values = crypto.getRandomValues(new Uint32Array(4));
  check("crypto.getRandomValues", values.some((v) => v !== 0));
  queueMicrotask(() => check("promise job ran", fromJob === 42));
  return fails;
}

export function getEnv(name) {
  const found = getEnvironment().find(([k]) => k === name);
  return found && found[1];
}

export function randomPair() {
  return [Math.floor(Math.random() * 2 ** 32), Math.floor(Math.random() * 2 ** 32)];
}

// Checks of the JS runtime itself; async, so its jobs run before it returns.
export async function selftest() {
  const fails = [];
  const check = (name, ok) => { if (!ok) fails.push(name); };
  try {
    throw { code: 7 };
  } catch (e) {
    check("throw an object", e.code === 7);
  }
  function named() { throw new Error("inner"); }
  try {
    named();
  } catch (e) {
    check(`stack: ${e.stack}`, e.stack.includes("named") && e.stack.includes("app.js"));
  }
  try {
    try { throw new Error("inner"); } finally { check("finally", true); }
  } catch (e) {
    check("rethrow through finally", e.message === "inner");
  }
  class Bad extends Error { constructor() { super("bad"); this.name = "Bad"; } }
  check("error subclass", String(new Bad()) === "Bad: bad" && new Bad() instanceof Error);
  check("await", (await Promise.all([1, Promise.resolve(2)])).join() === "1,2");
  const settled = await Promise.allSettled([Promise.reject(new Error("no")), 3]);
  check("allSettled", settled[0].status === "rejected" && settled[1].value === 3);
  check("async import", (await (async () => add(await Promise.resolve(40), 2))()) === 42);
  check("BigInt", 2n ** 64n - 1n === 18446744073709551615n && BigInt.asIntN(64, 2n ** 63n) === -(2n ** 63n));
  check("JSON", JSON.stringify({ a: [1, "x", null] }) === '{"a":[1,"x",null]}' && JSON.parse("[1]")[0] === 1);
  check("RegExp", /(\d+)-(?<b>\d+)/.exec("12-34").groups.b === "34" && "a-b-c".replaceAll("-", "") === "abc");
  check("unicode", [..."héllo€"].length === 6 && "€".codePointAt(0) === 0x20ac && encode("€").length === 3);
  check("TextDecoder", decode(new Uint8Array([0xff, 0x61])) === "\ufffda");
  const words = [];
  for (let i = 1; i <= 20000; i++) words.push(String((i * 7919) % 20000));
  words.sort();
  check("sort", words[0] === "0" && words[19999] === "9999");
  check("string repeat", "ab".repeat(100000).length === 200000);
  const m = new Map([[1, "a"]]), s = new Set([1, 1, 2]);
  check("Map/Set", m.get(1) === "a" && s.size === 2);
  check("typed arrays", new Float64Array([1.5]).buffer.byteLength === 8 && new DataView(new ArrayBuffer(4)).getInt32(0) === 0);
  check("Proxy", new Proxy({}, { get: (_, k) => k }).hello === "hello");
  check("WeakRef", new WeakRef({}).deref() !== null);
  check("Object.groupBy", Object.groupBy([1, 2, 3], (x) => (x % 2 ? "odd" : "even")).odd.length === 2);
  check("Date", new Date(0).toISOString() === "1970-01-01T00:00:00.000Z");
  check("Math.random", Math.random() !== Math.random());
  check("globalThis", typeof globalThis.console.log === "function" && typeof structuredClone === "undefined");
  return fails;
}

// Error paths.
export function boom() {
  throw new Error("boom!");
}

export function fallible(n) {
  if (n < 0) throw new Error("negative input"); // err with the error as text
  if (n === 0) throw new ComponentError("zero"); // err with this payload
  if (n === 1) throw "one"; // a thrown string is the payload
  return n * 2;
}

export function runCommand() {
  if (globalThis.commandShouldFail) throw new Error("command failed");
}
