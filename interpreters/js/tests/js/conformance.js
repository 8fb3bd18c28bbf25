// The JavaScript engine's conformance as a component (tests/conformance.rs):
// what scripts rely on, from closures to Date. test262 is not on a registry
// we can reach; this is its equivalent for a script's everyday needs. Every
// check runs at runtime, in the snapshot; `run` prints one line per failure,
// then the counts, and throws (err, exit code 1) when any check failed.
//
// The host grants CONFORMANCE=yes and the arguments ["conformance", "x y"].
import { getEnvironment, getArguments } from "wasi:cli/environment@0.2.12";

const checks = [];
const check = (name, f) => checks.push({ name, f });
const show = (v) => JSON.stringify(v, (_, x) => (typeof x === "bigint" ? `${x}n` : x));
const eq = (got, expected, what = "value") => {
  const [g, e] = [show(got), show(expected)];
  if (!Object.is(got, expected) && (typeof got !== "object" || g !== e))
    throw new Error(`${what}: expected ${e}, got ${g}`);
};
const throws = (f, type, pattern) => {
  try { f(); } catch (e) {
    if (type && !(e instanceof type)) throw new Error(`expected a ${type.name}, got ${e}`);
    if (pattern && !pattern.test(String(e.message))) throw new Error(`error was: ${e.message}`);
    return e;
  }
  throw new Error("expected an exception");
};

// What init saw: the snapshot keeps it, the runtime's clock differs.
const initNow = Date.now();
const built = new Map([["at", "init"]]);
let counter = 0;
const next = () => ++counter;

check("closures capture variables, not values", () => {
  const fs = [];
  for (let i = 0; i < 3; i++) fs.push(() => i);
  eq(fs.map((f) => f()), [0, 1, 2]);
  const make = () => { let n = 0; return { inc: () => ++n, get: () => n }; };
  const a = make(), b = make();
  a.inc(); a.inc(); b.inc();
  eq([a.get(), b.get()], [2, 1]);
  eq([next(), next()], [1, 2], "module state from init, changed at runtime");
});
check("classes: fields, private members, statics, accessors, inheritance", () => {
  class Shape {
    static count = 0;
    #id;
    constructor(name) { this.name = name; this.#id = ++Shape.count; }
    get id() { return this.#id; }
    area() { return 0; }
    toString() { return `${this.name}#${this.#id} (${this.area()})`; }
    static #secret() { return "s"; }
    static reveal() { return Shape.#secret(); }
    static isShape(o) { return #id in o; }
  }
  class Square extends Shape {
    constructor(side) { super("square"); this.side = side; }
    area() { return this.side ** 2; }
    toString() { return `[${super.toString()}]`; }
  }
  const s = new Square(3);
  eq(String(s), "[square#1 (9)]");
  eq(s instanceof Shape, true);
  eq(Object.getPrototypeOf(Square), Shape);
  eq(Shape.reveal(), "s");
  eq([Shape.isShape(s), Shape.isShape({ id: 1 })], [true, false]);
});
check("generators and iterators", () => {
  function* fib() { let [a, b] = [0, 1]; for (;;) { yield a; [a, b] = [b, a + b]; } }
  const first = [];
  for (const n of fib()) { if (first.length === 10) break; first.push(n); }
  eq(first, [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]);
  function* inner() { const x = yield 1; yield x * 2; return "done"; }
  const g = inner();
  eq(g.next().value, 1); eq(g.next(21).value, 42); eq(g.next(), { value: "done", done: true });
  function* outer() { yield* [1, 2]; yield* inner(); }
  eq([...outer()], [1, 2, 1, NaN]);
  const iterable = { *[Symbol.iterator]() { yield "a"; yield "b"; } };
  eq(Array.from(iterable), ["a", "b"]);
});
check("async functions, promises and microtask order", async () => {
  const order = [];
  const p = (async () => { order.push("start"); await null; order.push("after await"); return 7; })();
  queueMicrotask(() => order.push("microtask"));
  order.push("sync");
  eq(await p, 7);
  eq(order, ["start", "sync", "after await", "microtask"]);
  eq(await Promise.all([1, Promise.resolve(2), (async () => 3)()]), [1, 2, 3]);
  const settled = await Promise.allSettled([Promise.reject(new Error("no")), 1]);
  eq(settled.map((s) => s.status), ["rejected", "fulfilled"]);
  eq(await Promise.any([Promise.reject(1), Promise.resolve(2)]), 2);
  try { await Promise.reject(new TypeError("bad")); } catch (e) { eq(e.message, "bad"); }
  async function* ticks() { for (let i = 0; i < 3; i++) yield i; }
  const got = [];
  for await (const t of ticks()) got.push(t);
  eq(got, [0, 1, 2]);
});
check("Proxy and Reflect", () => {
  const log = [];
  const target = { a: 1 };
  const p = new Proxy(target, {
    get(t, k, r) { log.push(`get ${String(k)}`); return k in t ? Reflect.get(t, k, r) : `no ${String(k)}`; },
    set(t, k, v) { if (typeof v !== "number") throw new TypeError("numbers only"); t[k] = v * 2; return true; },
    has: (t, k) => k === "hidden" || k in t,
    deleteProperty: () => false,
  });
  eq(p.a, 1); eq(p.b, "no b");
  p.c = 4; eq(target.c, 8);
  throws(() => { p.d = "x"; }, TypeError, /numbers only/);
  eq("hidden" in p, true);
  eq(Reflect.deleteProperty(p, "a"), false);
  eq(Reflect.ownKeys({ b: 1, [Symbol.for("s")]: 2 }).length, 2);
  eq(log, ["get a", "get b"]);
  const { proxy, revoke } = Proxy.revocable({}, {});
  revoke();
  throws(() => proxy.x, TypeError);
});
check("typed arrays, DataView and ArrayBuffer", () => {
  const buf = new ArrayBuffer(8);
  const view = new DataView(buf);
  view.setUint32(0, 0xdeadbeef); view.setFloat32(4, 1.5, true);
  eq(new Uint8Array(buf, 0, 4), new Uint8Array([0xde, 0xad, 0xbe, 0xef]));
  eq(view.getUint32(0, true), 0xefbeadde);
  eq(new Float32Array(buf, 4, 1)[0], 1.5);
  const u8 = Uint8Array.from([250, 5, 9]);
  eq(Array.from(u8.map((x) => x + 10)), [4, 15, 19], "wraps");
  eq(Array.from(new Uint8ClampedArray([300, -5])), [255, 0]);
  eq(Array.from(new Int16Array([1, 2, 3, 4]).subarray(1, 3)), [2, 3]);
  const big = new BigInt64Array([-1n, 2n ** 62n]);
  eq(big[0], -1n); eq(new BigUint64Array(big.buffer)[0], 2n ** 64n - 1n);
  eq(Array.from(new Float64Array([3, 1, 2]).sort()), [1, 2, 3]);
  eq(buf.slice(4).byteLength, 4);
});
check("JSON", () => {
  const text = '{"a":[1,2,{"b":null}],"c":"\\u00e9\\n","d":1e3,"e":true}';
  const v = JSON.parse(text);
  eq(v.a[2].b, null); eq(v.c, "é\n"); eq(v.d, 1000);
  eq(JSON.stringify(v), '{"a":[1,2,{"b":null}],"c":"é\\n","d":1000,"e":true}');
  eq(JSON.stringify({ a: 1, b: [1, 2] }, null, 2), '{\n  "a": 1,\n  "b": [\n    1,\n    2\n  ]\n}');
  eq(JSON.parse('{"x":1,"y":2}', (k, v) => (k === "y" ? undefined : v)), { x: 1 });
  eq(JSON.stringify({ toJSON: () => "custom" }), '"custom"');
  eq(JSON.stringify([undefined, () => 1, NaN]), "[null,null,null]");
  throws(() => JSON.parse("{bad}"), SyntaxError);
  throws(() => JSON.stringify(10n), TypeError);
  const cyclic = {}; cyclic.self = cyclic;
  throws(() => JSON.stringify(cyclic), TypeError);
});
check("RegExp: groups, flags, lookbehind, unicode", () => {
  const m = /(?<year>\d{4})-(?<month>\d\d)/.exec("on 2024-05-17");
  eq(m.groups.year, "2024"); eq(m.index, 3);
  eq("a1b22c333".replace(/\d+/g, (d) => `[${d.length}]`), "a[1]b[2]c[3]");
  eq([..."x1y2".matchAll(/[a-z](\d)/g)].map((x) => x[1]), ["1", "2"]);
  eq("price: $42".match(/(?<=\$)\d+/)[0], "42");
  eq(/^.$/u.test("😀"), true); eq(/^.$/.test("😀"), false);
  eq(/\p{Script=Greek}+/u.exec("abc αβγ")[0], "αβγ");
  const sticky = /a/y; sticky.lastIndex = 1; eq(sticky.test("ba"), true);
  eq("A\nb".match(/^b/m)[0], "b"); eq(/a.b/s.test("a\nb"), true);
  eq("aBc".replace(/b/i, "x"), "axc");
  eq("a,b;c".split(/[,;]/), ["a", "b", "c"]);
  eq(new RegExp("a+", "g").flags, "g");
  throws(() => new RegExp("("), SyntaxError);
});
check("BigInt", () => {
  eq(2n ** 100n, 1267650600228229401496703205376n);
  eq((-7n) / 2n, -3n); eq((-7n) % 2n, -1n);
  eq(BigInt.asUintN(64, -1n), 18446744073709551615n);
  eq(BigInt.asIntN(8, 255n), -1n);
  eq(BigInt("0x1f"), 31n); eq((255n).toString(16), "ff");
  eq(1n < 2, true); eq(2n == 2, true); eq(typeof 1n, "bigint");
  throws(() => 1n + 1, TypeError);
  eq(BigInt(Number.MAX_SAFE_INTEGER) + 2n, 9007199254740993n);
});
check("Date: the runtime's clock, UTC arithmetic, parsing and formatting", () => {
  const now = Date.now();
  if (!(now > Date.UTC(2024, 0, 1))) throw new Error(`Date.now() is ${now}: not the real clock`);
  if (now === initNow) throw new Error("Date.now() is still the value init saw");
  eq(new Date(0).toISOString(), "1970-01-01T00:00:00.000Z");
  const d = new Date(Date.UTC(2024, 1, 29, 12, 30, 15, 250));
  eq(d.toISOString(), "2024-02-29T12:30:15.250Z");
  eq([d.getUTCDay(), d.getUTCMonth(), d.getUTCFullYear()], [4, 1, 2024]);
  eq(Date.parse("2000-01-01T00:00:00Z"), 946684800000);
  eq(new Date("2024-03-10T10:00:00.000Z").getTime() - d.getTime(), 10 * 86400000 - 9015250);
  d.setUTCMonth(12); eq(d.toISOString().slice(0, 10), "2025-01-29");
  eq(JSON.stringify({ d: new Date(86400000) }), '{"d":"1970-01-02T00:00:00.000Z"}');
  eq(isNaN(new Date("not a date").getTime()), true);
  const t0 = performance.now(); let x = 0; for (let i = 0; i < 1e5; i++) x += i;
  eq(performance.now() >= t0, true);
});
check("Map, Set, WeakMap, WeakRef and Symbols", () => {
  eq(built.get("at"), "init", "a Map built at init");
  const m = new Map([[1, "a"], ["1", "b"]]);
  m.set(NaN, "n"); eq(m.get(NaN), "n"); eq(m.size, 3); eq([...m.keys()], [1, "1", NaN]);
  const s = new Set([3, 1, 3, 2]); eq([...s], [3, 1, 2]);
  const key = {}; const w = new WeakMap([[key, 5]]); eq(w.get(key), 5); eq(w.has({}), false);
  eq(new WeakRef(key).deref(), key);
  const sym = Symbol("tag"); const o = { [sym]: 1, a: 2 };
  eq(Object.keys(o), ["a"]); eq(o[sym], 1); eq(sym.description, "tag");
  eq(Symbol.for("x"), Symbol.for("x"));
  eq(Object.groupBy([1, 2, 3, 4], (n) => (n % 2 ? "odd" : "even")).odd, [1, 3]);
});
check("syntax: destructuring, spread, optional chaining, labels, tagged templates", () => {
  const { a, b: [, second] = [], ...rest } = { a: 1, b: [1, 2], c: 3, d: 4 };
  eq([a, second, rest], [1, 2, { c: 3, d: 4 }]);
  const f = (x, y = x * 2, ...zs) => [x, y, zs];
  eq(f(1), [1, 2, []]); eq(f(...[1, 2, 3, 4]), [1, 2, [3, 4]]);
  const deep = { p: { q: null } };
  eq(deep?.p?.q?.r, undefined); eq(deep.x?.(), undefined); eq(deep.p.q ?? "dflt", "dflt");
  let v = null; v ??= 5; v ||= 6; v &&= v + 1; eq(v, 6);
  let found;
  outer: for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) if (i * j === 2) { found = [i, j]; break outer; }
  eq(found, [1, 2]);
  const tag = (s, ...vs) => s.raw.join("|") + vs.join(",");
  eq(tag`a${1}b${2}\n`, "a|b|\\n1,2");
  eq(1_000_000, 1e6); eq(0b101 + 0o17 + 0xff, 275);
  eq((() => { try { return "try"; } finally { counter += 0; } })(), "try");
});
check("strings, arrays, numbers and Math", () => {
  eq("abc".padStart(5, "-"), "--abc"); eq("a-b-c".replaceAll("-", "+"), "a+b+c");
  eq("héllo".at(-1), "o"); eq("é".normalize("NFD").length, 2); eq("ǅ".toLowerCase(), "ǆ");
  eq([..."😀a"].length, 2); eq("😀".codePointAt(0), 0x1f600); eq(String.fromCodePoint(0x1f600), "😀");
  eq([3, 1, 2].toSorted(), [1, 2, 3]); eq([1, [2, [3, [4]]]].flat(Infinity), [1, 2, 3, 4]);
  eq([1, 2, 3].findLast((x) => x < 3), 2); eq([1, 2].flatMap((x) => [x, x * 10]), [1, 10, 2, 20]);
  eq(["b", "a", "C"].sort((x, y) => x.localeCompare(y)).length, 3);
  eq((0.1 + 0.2).toFixed(2), "0.30"); eq((255).toString(2), "11111111"); eq(parseFloat("3.5e2x"), 350);
  eq(Number.isInteger(5.0), true); eq(Number.EPSILON > 0, true); eq(Math.hypot(3, 4), 5);
  eq(Math.trunc(-4.7), -4); eq(Math.sign(-3), -1); eq(Math.clz32(1), 31); eq(Math.fround(5.5), 5.5);
  eq(String(1 / 3), "0.3333333333333333"); eq(String(1e21), "1e+21"); eq(String(-0), "0");
});
check("errors: types, cause, stack, finally", () => {
  const e = new Error("outer", { cause: new RangeError("inner") });
  eq(e.cause.name, "RangeError");
  eq(typeof e.stack, "string");
  throws(() => null.x, TypeError); throws(() => undeclared, ReferenceError); // eslint-disable-line
  throws(() => new Array(-1), RangeError);
  throws(() => eval("let let = 1"), SyntaxError);
  class AppError extends Error { constructor(m) { super(m); this.name = "AppError"; } }
  eq(String(new AppError("x")), "AppError: x");
  const agg = new AggregateError([new Error("a")], "many"); eq(agg.errors.length, 1);
  let steps = [];
  try { try { throw 1; } finally { steps.push("finally"); } } catch (x) { steps.push(`caught ${x}`); }
  eq(steps, ["finally", "caught 1"]);
});
check("eval, Function, globalThis and getters", () => {
  eq(eval("1 + 2"), 3); eq(new Function("a", "b", "return a * b")(6, 7), 42);
  eq(typeof globalThis, "object"); globalThis.made = 1; eq(made, 1); // eslint-disable-line
  const o = { _v: 1, get v() { return this._v * 10; }, set v(x) { this._v = x; } };
  o.v = 4; eq(o.v, 40);
  const frozen = Object.freeze({ a: 1 });
  throws(() => { "use strict"; frozen.a = 2; }, TypeError);
  eq(Object.entries({ x: 1, y: 2 }), [["x", 1], ["y", 2]]);
});
check("TextEncoder and TextDecoder", () => {
  const bytes = new TextEncoder().encode("añ😀");
  eq(Array.from(bytes), [0x61, 0xc3, 0xb1, 0xf0, 0x9f, 0x98, 0x80]);
  eq(new TextDecoder().decode(bytes), "añ😀");
  eq(new TextDecoder().decode(new Uint8Array([0xff, 0x61])), "\ufffda");
  throws(() => new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array([0xff])), TypeError);
  eq(new TextDecoder().decode(new Uint8Array([0xef, 0xbb, 0xbf, 0x62])), "b", "the BOM is dropped");
});
check("crypto and Math.random", () => {
  const a = crypto.getRandomValues(new Uint8Array(32));
  const b = crypto.getRandomValues(new Uint32Array(8));
  eq(a.some((x) => x !== 0) && b.some((x) => x !== 0), true);
  eq(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(crypto.randomUUID()), true);
  const r = Array.from({ length: 100 }, Math.random);
  eq(r.every((x) => x >= 0 && x < 1) && new Set(r).size === 100, true);
  throws(() => crypto.getRandomValues(new Float64Array(1)), TypeError);
});
check("console formats values", () => {
  eq(typeof console.log, "function"); eq(typeof console.error, "function");
});
check("WASI imports: the runtime's environment and arguments", () => {
  eq(getEnvironment().find(([k]) => k === "CONFORMANCE"), ["CONFORMANCE", "yes"]);
  eq(getArguments().slice(1), ["x y"]);
});

export const run = {
  async run() {
    let passed = 0, failed = 0;
    for (const { name, f } of checks) {
      try { await f(); passed++; } catch (e) { failed++; console.log(`FAIL ${name}: ${e?.message ?? e}`); }
    }
    console.log("inspect:", { a: [1, "two", { three: 3n }], m: new Map([[1, 2]]) }, null, undefined);
    console.log(`conformance: ${passed} passed, ${failed} failed`);
    if (failed > 0) throw new Error(`${failed} checks failed`);
  },
};
