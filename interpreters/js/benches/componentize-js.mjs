// Builds one component with ComponentizeJS, for benches/build.rs:
//
//   COMPONENTIZE_JS_DIR=<target>/bench-ref/componentize-js \
//     node componentize-js.mjs SOURCE.js WORLD.wit OUT.wasm
//
// The package is found through the `COMPONENTIZE_JS_DIR` environment
// variable (the `--prefix` folder reference.sh installed it into), since
// this file lives in the repository, not next to its node_modules.
//
// ComponentizeJS starts Wizer with an environment of its own making, so
// HOME and XDG_CACHE_HOME (where Wizer's Wasmtime keeps its code cache) are
// passed on explicitly: the bench points them at a fresh folder for a cold
// build. Nothing else from the host environment reaches Wizer (it also
// hands its environment to the guest at init).
//
// Prints one line of JSON on stdout: the time componentize() took inside
// Node and the output size. AOT (weval) is not used: its binary is
// downloaded from GitHub on first use, which fails offline.

import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [sourcePath, witPath, outPath] = process.argv.slice(2);
if (!outPath) {
  console.error('usage: node componentize-js.mjs SOURCE.js WORLD.wit OUT.wasm');
  process.exit(2);
}
const prefix = process.env.COMPONENTIZE_JS_DIR;
if (!prefix) {
  console.error('COMPONENTIZE_JS_DIR is not set (run interpreters/js/benches/reference.sh)');
  process.exit(2);
}

// The package is ESM-only (its `exports` has just an `import` condition,
// which `require.resolve` does not match): take the entry from its
// package.json.
const pkgDir = join(resolve(prefix), 'node_modules', '@bytecodealliance', 'componentize-js');
let pkg;
try {
  pkg = JSON.parse(await readFile(join(pkgDir, 'package.json'), 'utf8'));
} catch (e) {
  console.error(`@bytecodealliance/componentize-js is not installed under ${prefix}: ${e.message}`);
  process.exit(3);
}
const exported = pkg.exports?.['.'] ?? pkg.exports;
const entry = join(pkgDir, exported?.import ?? pkg.main ?? 'index.js');
const { componentize, version } = await import(pathToFileURL(entry).href);

const env = {};
for (const name of ['HOME', 'XDG_CACHE_HOME', 'PATH']) {
  if (process.env[name] !== undefined) env[name] = process.env[name];
}

const start = process.hrtime.bigint();
const { component } = await componentize({
  sourcePath: resolve(sourcePath),
  witPath: resolve(witPath),
  env,
});
const ms = Number(process.hrtime.bigint() - start) / 1e6;
await writeFile(outPath, component);
console.log(JSON.stringify({ version, componentize_ms: ms, bytes: component.length }));
