// The JS environment js.so adds to QuickJS-NG: console, TextEncoder,
// TextDecoder, crypto.getRandomValues and ComponentError. Evaluated once
// when the bindings start (so it is part of every snapshot); `natives` are
// the C helpers of globals.c, kept in this closure only.
(function (natives) {
  "use strict";
  const define = (obj, name, value) =>
    Object.defineProperty(obj, name, { value, writable: true, configurable: true, enumerable: false });

  // ---- ComponentError: what an import's `err` throws, and what an export
  // may throw to return a specific `err` payload.
  class ComponentError extends Error {
    constructor(payload) {
      super(typeof payload === "string" ? payload : inspect(payload, 2, []));
      this.name = "ComponentError";
      this.payload = payload;
    }
  }
  define(globalThis, "ComponentError", ComponentError);

  // ---- console: a small inspector in the spirit of Node's util.inspect.
  // Single quotes as Node prints them, double when the text has a single
  // quote and no double one.
  const quote = (s) => {
    const escaped = JSON.stringify(s);
    if (s.includes("'") && !s.includes('"')) return escaped;
    return `'${escaped.slice(1, -1).replace(/\\"/g, '"').replace(/'/g, "\\'")}'`;
  };
  const keyText = (k) => (/^[A-Za-z_$][\w$]*$/.test(k) ? k : quote(k));
  function inspect(v, depth, seen) {
    switch (typeof v) {
      case "string": return seen.length ? quote(v) : v;
      case "bigint": return `${v}n`;
      case "symbol": return v.toString();
      case "function": return v.name ? `[Function: ${v.name}]` : "[Function (anonymous)]";
      case "undefined": return "undefined";
      case "number": return Object.is(v, -0) ? "-0" : String(v);
      case "boolean": return String(v);
    }
    if (v === null) return "null";
    if (seen.includes(v)) return "[Circular]";
    if (v instanceof Error) return v.stack ? `${v.name}: ${v.message}\n${v.stack}`.trimEnd() : String(v);
    if (v instanceof Date) return isNaN(v) ? "Invalid Date" : v.toISOString();
    if (v instanceof RegExp) return String(v);
    const inner = (x) => inspect(x, depth - 1, seen.concat([v]));
    const wrap = (open, items, close) => {
      if (items.length === 0) return `${open}${close}`;
      const line = `${open} ${items.join(", ")} ${close}`;
      return line.length <= 72 ? line : `${open}\n  ${items.join(",\n  ")}\n${close}`;
    };
    const ctorName = v.constructor && v.constructor.name;
    if (ArrayBuffer.isView(v) && !(v instanceof DataView)) {
      if (depth < 0) return `[${ctorName}]`;
      return `${ctorName}(${v.length}) ` + wrap("[", Array.from(v, (x) => inspect(x, 0, [v])), "]");
    }
    if (Array.isArray(v)) {
      if (depth < 0) return "[Array]";
      return wrap("[", Array.from(v, inner), "]");
    }
    if (v instanceof Map) {
      if (depth < 0) return "[Map]";
      return `Map(${v.size}) ` + wrap("{", Array.from(v, ([k, x]) => `${inner(k)} => ${inner(x)}`), "}");
    }
    if (v instanceof Set) {
      if (depth < 0) return "[Set]";
      return `Set(${v.size}) ` + wrap("{", Array.from(v, inner), "}");
    }
    if (v instanceof Promise) return "Promise { <state unknown> }";
    const prefix = ctorName && ctorName !== "Object" ? `${ctorName} ` : "";
    if (depth < 0) return `[${ctorName || "Object"}]`;
    return prefix + wrap("{", Object.keys(v).map((k) => `${keyText(k)}: ${inner(v[k])}`), "}");
  }
  // console.log("%s is %d", ...): the format directives of the Console spec.
  function format(args) {
    let out = "";
    let rest = args;
    if (typeof args[0] === "string" && args[0].includes("%")) {
      let i = 1;
      out = args[0].replace(/%([sdifoOjc%])/g, (m, c) => {
        if (c === "%") return "%";
        if (i >= args.length) return m;
        const a = args[i++];
        switch (c) {
          case "s": return typeof a === "string" ? a : inspect(a, 1, []);
          case "d": case "i": return typeof a === "bigint" ? `${a}n` : String(parseInt(a));
          case "f": return String(parseFloat(a));
          case "j": return JSON.stringify(a);
          case "c": return "";
          default: return inspect(a, 2, [0]);
        }
      });
      rest = args.slice(i);
      if (rest.length) out += " ";
    }
    return out + rest.map((a) => inspect(a, 2, [])).join(" ");
  }
  let indent = "";
  const counts = new Map();
  const timers = new Map();
  const emit = (fd) => (...args) => {
    const text = format(args);
    natives.write(fd, (indent ? text.replace(/^/gm, indent) : text) + "\n");
  };
  const console = {
    log: emit(1), info: emit(1), debug: emit(1),
    error: emit(2), warn: emit(2), trace: (...a) => emit(2)(...a, "\n" + new Error().stack),
    dir: (v) => natives.write(1, inspect(v, 2, [0]) + "\n"),
    assert: (ok, ...a) => { if (!ok) emit(2)("Assertion failed" + (a.length ? ":" : ""), ...a); },
    group: (...a) => { if (a.length) emit(1)(...a); indent += "  "; },
    groupEnd: () => { indent = indent.slice(2); },
    count: (label = "default") => { const n = (counts.get(label) || 0) + 1; counts.set(label, n); emit(1)(`${label}: ${n}`); },
    countReset: (label = "default") => counts.delete(label),
    time: (label = "default") => timers.set(label, Date.now()),
    timeEnd: (label = "default") => { const t = timers.get(label); timers.delete(label); emit(1)(`${label}: ${Date.now() - t}ms`); },
    timeLog: (label = "default", ...a) => emit(1)(`${label}: ${Date.now() - timers.get(label)}ms`, ...a),
    table: (v) => emit(1)(v),
  };
  console.group.collapsed = console.group;
  define(globalThis, "console", console);

  // ---- TextEncoder / TextDecoder (UTF-8 only, as on the web).
  class TextEncoder {
    get encoding() { return "utf-8"; }
    encode(s = "") { return natives.encode(String(s)); }
    encodeInto(s, dest) {
      const bytes = natives.encode(String(s));
      let n = Math.min(bytes.length, dest.length);
      // Never split a character.
      while (n > 0 && n < bytes.length && (bytes[n] & 0xc0) === 0x80) n--;
      dest.set(bytes.subarray(0, n));
      let read = 0;
      for (const ch of natives.decode(bytes.subarray(0, n), false)) read += ch.length;
      return { read, written: n };
    }
  }
  class TextDecoder {
    #fatal; #ignoreBOM;
    constructor(label = "utf-8", options = {}) {
      const l = String(label).trim().toLowerCase();
      if (l !== "utf-8" && l !== "utf8" && l !== "unicode-1-1-utf-8")
        throw new RangeError(`TextDecoder: the encoding "${label}" is not supported (only utf-8)`);
      this.#fatal = !!options.fatal;
      this.#ignoreBOM = !!options.ignoreBOM;
    }
    get encoding() { return "utf-8"; }
    get fatal() { return this.#fatal; }
    get ignoreBOM() { return this.#ignoreBOM; }
    decode(input = new Uint8Array(0)) {
      let bytes;
      if (input instanceof Uint8Array) bytes = input;
      else if (input instanceof ArrayBuffer) bytes = new Uint8Array(input);
      else if (ArrayBuffer.isView(input)) bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
      else throw new TypeError("TextDecoder.decode: expected an ArrayBuffer or a view of one");
      if (!this.#ignoreBOM && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3);
      return natives.decode(bytes, this.#fatal);
    }
  }
  define(globalThis, "TextEncoder", TextEncoder);
  define(globalThis, "TextDecoder", TextDecoder);

  // ---- crypto.getRandomValues / randomUUID, from wasi:random.
  const integerArrays = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array,
                         Int32Array, Uint32Array, BigInt64Array, BigUint64Array];
  const crypto = {
    getRandomValues(array) {
      if (!integerArrays.some((T) => array instanceof T))
        throw new TypeError("crypto.getRandomValues: expected an integer typed array");
      if (array.byteLength > 65536)
        throw new RangeError("crypto.getRandomValues: at most 65536 bytes per call");
      return natives.fillRandom(array);
    },
    randomUUID() {
      const b = natives.fillRandom(new Uint8Array(16));
      b[6] = (b[6] & 0x0f) | 0x40;
      b[8] = (b[8] & 0x3f) | 0x80;
      const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    },
  };
  define(globalThis, "crypto", crypto);
  if (typeof globalThis.queueMicrotask !== "function")
    define(globalThis, "queueMicrotask", (f) => { Promise.resolve().then(f); });
})
