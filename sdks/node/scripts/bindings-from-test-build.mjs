// Installs the addon that `cargo test --workspace` built (scripts/test-all.sh), instead of
// compiling it again with `napi build`: napi always passes `--target`, which puts its build in
// a directory of its own and so compiles wasmtime a second time (about 7 minutes on CI).
//
// The test build compiles the addon as a cdylib (the crate's `rlib` type and its integration
// test make cargo build the library), with NAPI_TYPE_DEF_TMP_FOLDER set so that napi-derive
// writes the TypeScript declarations as it expands the #[napi] items. This script renders
// them into binding.d.ts and binding.js through @napi-rs/cli's own functions, with the
// options `napi build --platform --js binding.js --dts binding.d.ts` uses, and copies the
// library to where binding.js loads it.
//
//   node scripts/bindings-from-test-build.mjs TARGET_DIR TYPEDEF_DIR
//
// Exits with code 2 when the test build's outputs are missing or older than the sources, so
// that test.sh falls back to `napi build`.
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generateTypeDef, writeJsBinding } from '@napi-rs/cli'

const here = join(dirname(fileURLToPath(import.meta.url)), '..')
const [targetDir, typeDefDir] = process.argv.slice(2)
if (!targetDir || !typeDefDir) {
  console.error('usage: node scripts/bindings-from-test-build.mjs TARGET_DIR TYPEDEF_DIR')
  process.exit(64)
}

if (process.platform !== 'linux' || process.arch !== 'x64') {
  console.error(`the test build's addon is only picked up on linux-x64, not ${process.platform}-${process.arch}`)
  process.exit(2)
}
const library = join(targetDir, 'debug', 'deps', 'libplinth_node.so')
const typeDefs = join(typeDefDir, 'plinth-node')
const newestSource = Math.max(
  ...readdirSync(join(here, 'src')).map((f) => statSync(join(here, 'src', f)).mtimeMs),
  statSync(join(here, 'Cargo.toml')).mtimeMs,
)
for (const [what, path] of [['addon', library], ['type definitions', typeDefs]]) {
  if (!existsSync(path) || statSync(path).mtimeMs < newestSource) {
    console.error(`the test build's ${what} (${path}) is missing or older than the sources`)
    process.exit(2)
  }
}

const pkg = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8'))
const { exports, dts } = await generateTypeDef({
  typeDefDir,
  configDtsHeaderFile: pkg.napi.dtsHeaderFile,
  constEnum: pkg.napi.constEnum,
  runtimeStringEnum: pkg.napi.runtimeStringEnum,
  cwd: here,
  // What `napi build --platform` declares for a loader without WASI fallbacks.
  declareBindingTarget: (idents) => idents.length > 0,
})
await writeFile(join(here, 'binding.d.ts'), dts, 'utf8')
await writeJsBinding({
  platform: true,
  idents: exports,
  jsBinding: 'binding.js',
  binaryName: pkg.napi.binaryName,
  packageName: pkg.name,
  version: pkg.version,
  outputDir: here,
  wasiFlavors: [],
})
copyFileSync(library, join(here, `${pkg.napi.binaryName}.linux-x64-gnu.node`))
console.log(`addon from ${library}; binding.js and binding.d.ts from ${typeDefs}`)
