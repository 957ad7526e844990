// Runs the wasm32-wasip1 build of bench/inwasm in node's V8 (WASI preview1).
// Usage: node bench/inwasm.js path/to/llm-ab-inwasm.wasm [iterations [configuration]]
const fs = require("node:fs");
const { WASI } = require("node:wasi");
const [wasmPath, ...rest] = process.argv.slice(2);
const wasi = new WASI({ version: "preview1", args: ["llm-ab-inwasm", ...rest], env: {} });
// The library's proxy-wasm imports are linked but never called here.
const env = new Proxy({}, { get: () => () => 0 });
WebAssembly.instantiate(fs.readFileSync(wasmPath), { ...wasi.getImportObject(), env })
  // The library also exports proxy-wasm's `_initialize`; start the binary only.
  .then(({ instance }) => wasi.start({ exports: { memory: instance.exports.memory, _start: instance.exports._start } }))
  .catch((e) => { console.error(e); process.exit(1); });
