'use strict'
// The cross-SDK fixtures of tests/conformance (its README.md says what each SDK must do):
// every SDK runs the same cases and must give the same answers. The Rust reference is
// crates/plinth/tests/all/conformance.rs. Here each case runs through both ways Node loads a
// plug-in (`new Plugin` on this thread, `Plugin.load` on a worker) and both ways it calls one
// (`callSync` on this thread, `call` on a worker).
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { Plugin, PlinthError } = require('..')
const { ROOT, pluginPath } = require('./helper')

const FIXTURES = path.join(ROOT, 'tests/conformance')

const load = {
  'new Plugin': async (source, options) => new Plugin(source, options),
  'Plugin.load': (source, options) => Plugin.load(source, options),
}
const call = {
  callSync: async (plugin, name, input) => plugin.callSync(name, input),
  call: (plugin, name, input) => plugin.call(name, input),
}

// Runs `f` with the working directory set to a fresh empty folder, so that nothing can be
// found relative to it.
async function inEmptyDir(f) {
  const before = process.cwd()
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'plinth-node-cwd-'))
  process.chdir(empty)
  try {
    return await f()
  } finally {
    process.chdir(before)
    fs.rmSync(empty, { recursive: true, force: true })
  }
}

test('every error case has its kind, kind number and return code', async () => {
  const dir = path.join(FIXTURES, 'errors')
  const { cases } = JSON.parse(fs.readFileSync(path.join(dir, 'cases.json'), 'utf8'))
  assert.ok(cases.length >= 8, `only ${cases.length} cases`)
  await inEmptyDir(async () => {
    for (const c of cases) {
      const file = path.join(dir, c.file)
      for (const [loader, loadWith] of Object.entries(load)) {
        for (const [caller, callWith] of Object.entries(call)) {
          const what = `${c.file} \`${c.function}\` (${loader}, ${caller})`
          let failure
          let plugin
          try {
            plugin = await loadWith(file, { wasi: false })
          } catch (e) {
            failure = e
          }
          if (c.stage === 'load') {
            assert.ok(failure, `${what} loaded, but the case expects a load failure`)
          } else {
            assert.ifError(failure)
            try {
              await callWith(plugin, c.function, '')
            } catch (e) {
              failure = e
            } finally {
              plugin.close()
            }
            assert.ok(failure, `${what} did not fail`)
          }
          assert.ok(failure instanceof PlinthError, `${what}: ${failure}`)
          assert.equal(failure.kind, c.kind, `${what}: ${failure.message}`)
          assert.equal(failure.kindCode, c.kind_code, what)
          assert.equal(failure.code, c.code, `${what}: ${failure.message}`)
          // A load failure is the same on every caller; one pass is enough.
          if (c.stage === 'load') break
        }
      }
    }
  })
})

test("a manifest file's relative paths are relative to its folder, not to the working directory", async () => {
  const wasm = pluginPath('wasi_files')
  assert.ok(fs.existsSync(wasm), `${wasm} is missing; run scripts/build-plugins.sh`)
  const src = path.join(FIXTURES, 'paths')
  for (const [loader, loadWith] of Object.entries(load)) {
    for (const [caller, callWith] of Object.entries(call)) {
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'plinth-node-paths-'))
      try {
        fs.mkdirSync(path.join(tmp, 'data'))
        fs.copyFileSync(path.join(src, 'manifest.json'), path.join(tmp, 'manifest.json'))
        fs.copyFileSync(path.join(src, 'data/hello.txt'), path.join(tmp, 'data/hello.txt'))
        fs.copyFileSync(wasm, path.join(tmp, 'wasi_files.wasm'))
        // The working directory has neither wasi_files.wasm nor data/.
        const out = await inEmptyDir(async () => {
          const plugin = await loadWith(path.join(tmp, 'manifest.json'), { wasi: true })
          try {
            return Buffer.from(await callWith(plugin, 'copy_file', '/data/hello.txt')).toString()
          } finally {
            plugin.close()
          }
        })
        assert.equal(out, '/data/hello.txt.out', `${loader}, ${caller}`)
        assert.deepEqual(fs.readFileSync(path.join(tmp, 'data/hello.txt.out')), fs.readFileSync(path.join(src, 'data/hello.txt')))
      } finally {
        fs.rmSync(tmp, { recursive: true, force: true })
      }
    }
  }
})
