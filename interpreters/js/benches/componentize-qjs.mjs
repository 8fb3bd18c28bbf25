// Builds one component with componentize-qjs (npm, a prebuilt native
// addon; QuickJS through rquickjs + wit-dylib + Wizer), for benches/build.rs:
//
//   COMPONENTIZE_QJS_DIR=<target>/bench-ref/componentize-qjs \
//     node componentize-qjs.mjs SOURCE.js WORLD.wit OUT.wasm
//
// `sync: true` embeds its non-async runtime: like ours, the output then
// needs no component-model async support in the host, so both run on the
// same wasmtime configuration.
//
// Prints one line of JSON on stdout: the time componentize() took inside
// Node and the output size.

import { readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';

const [sourcePath, witPath, outPath] = process.argv.slice(2);
if (!outPath) {
  console.error('usage: node componentize-qjs.mjs SOURCE.js WORLD.wit OUT.wasm');
  process.exit(2);
}
const prefix = process.env.COMPONENTIZE_QJS_DIR;
if (!prefix) {
  console.error('COMPONENTIZE_QJS_DIR is not set (run interpreters/js/benches/reference.sh)');
  process.exit(2);
}

// The package is CommonJS (a NAPI-RS loader): require it from the prefix.
const require = createRequire(join(resolve(prefix), 'package.json'));
let qjs, version;
try {
  qjs = require('componentize-qjs');
  version = require('componentize-qjs/package.json').version;
} catch (e) {
  console.error(`componentize-qjs is not usable under ${prefix}: ${e.message}`);
  process.exit(3);
}

const js = resolve(sourcePath);
const start = process.hrtime.bigint();
const { component } = await qjs.componentize({
  witPath: resolve(witPath),
  jsSource: await readFile(js, 'utf8'),
  jsPath: js,
  moduleRoot: dirname(js),
  sync: true,
});
const ms = Number(process.hrtime.bigint() - start) / 1e6;
await writeFile(outPath, component);
console.log(JSON.stringify({ version, componentize_ms: ms, bytes: component.length }));
