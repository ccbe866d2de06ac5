// Compiled by `npm run typecheck` (tsc --noEmit): the published types accept the documented
// uses and reject a misspelt option.
import {
  CompiledPlugin,
  HostFunction,
  PlinthError,
  Plugin,
  ValType,
  type CallOptions,
  type CurrentPlugin,
  type Manifest,
  type PlinthErrorKind,
  type StreamStats,
} from '..'
import { PassThrough, Readable } from 'node:stream'

const greet = new HostFunction(
  'greet',
  [ValType.I64],
  ['i64'],
  (plugin: CurrentPlugin, inputs, prefix: string) => plugin.writeString(prefix + plugin.readString(inputs[0])),
  { userData: 'Hi, ', namespace: 'extism:host/user' },
)
const pair = new HostFunction('pair', [], [ValType.I64, 'i32'], () => [1n, 2])
const firstResult: boolean = pair.results[0] === 'i64' && greet.params[0] === ValType.I64
const none = new HostFunction('log', ['i64'], [], (plugin, [h]) => {
  console.log(plugin.readBytes(h).toString('hex'), plugin.hostContext, plugin.valid, plugin.id)
})

const fetchName = new HostFunction('greet', ['i64'], ['i64'], async (plugin, [h]) => {
  const name = plugin.readString(h)
  await new Promise((resolve) => setTimeout(resolve, 1))
  return plugin.writeString(name)
})
const declared = new HostFunction('greet', ['i64'], ['i64'], (_plugin, [h]) => Promise.resolve(h), { async: true })
const asyncFlags: boolean = fetchName.isAsync && declared.isAsync

const manifest: Manifest = {
  wasm: [{ path: 'a.wasm', name: 'lib' }, { data: Buffer.alloc(0) }, { url: 'https://example.com/p.wasm', hash: '00' }],
  config: { vowels: 'aeiou' },
  memory: { max_pages: 16 },
  timeout_ms: 100,
  allowed_hosts: ['*.example.com'],
  allowed_paths: { 'ro:./data': '/data' },
}

export async function main(): Promise<void> {
  const plugin = new Plugin(manifest, { wasi: true, functions: [greet, pair, none], fuelLimit: 10_000n })
  const options: CallOptions = { hostContext: { user: 'ada' }, signal: new AbortController().signal }
  const bytes: Buffer = await plugin.call('f', 'input', options)
  const sync: Buffer = plugin.callSync('f', new Uint8Array([1]))
  const text: string = await plugin.callString('f')
  const json: { discount_percent: number } = plugin.callJsonSync('f', { cart_total: 1 })
  const loaded: Plugin = await Plugin.load(Buffer.from('(module)'))
  const compiled: CompiledPlugin = await CompiledPlugin.load('plugin.wasm')
  const instance: Plugin = compiled.instance()
  const artifact: Buffer = CompiledPlugin.compileArtifact('plugin.wasm', Buffer.alloc(32), { wasi: true })
  const precompiled: boolean = CompiledPlugin.fromArtifact(new Uint8Array(artifact), Buffer.alloc(32)).isPrecompiled
  const fresh: Buffer = await compiled.callFresh('f', 'input', { hostContext: 1 })
  console.log(precompiled, fresh, asyncFlags)
  const cancelled: boolean = plugin.cancelHandle().cancel() && plugin.cancel()
  plugin.updateConfig({ vowels: null, n: 1 })
  console.log(bytes, sync, text, json, loaded.id, instance.functions(), cancelled, plugin.closed, firstResult)
  try {
    plugin.callSync('missing')
  } catch (e) {
    if (e instanceof PlinthError) {
      const kind: PlinthErrorKind = e.kind
      const kindCode: number = e.kindCode
      const code: number = e.code
      console.log(kind, kindCode, code, e.message, e.cause, kind === 'function_not_found')
    }
  }
  const streamed: StreamStats = await plugin.callStream('grep', Readable.from(['a\n']), new PassThrough(), { end: false, signal: new AbortController().signal })
  const fromBytes = await plugin.callStream('grep', Buffer.from('x'), async (chunk: Buffer) => { console.log(chunk.length) })
  console.log(streamed.inputBytes + fromBytes.outputBytes, new Plugin(manifest, { outputLimit: 1n << 20n }).id)
  // @ts-expect-error a stream's output is a Writable or a function
  await plugin.callStream('grep', 'x', 42)
  // @ts-expect-error options are checked
  new Plugin(manifest, { fuel_limit: 1 })
  // @ts-expect-error a signal is an AbortSignal
  await plugin.call('f', 'x', { signal: true })
  // @ts-expect-error `async` is a boolean
  new HostFunction('x', [], [], () => 0, { async: 'yes' })
  // @ts-expect-error value types are checked
  new HostFunction('x', ['v128'], [], () => 0)
  // @ts-expect-error kinds are the runtime's snake_case names
  const oldKind: PlinthErrorKind = 'FunctionNotFound'
  console.log(oldKind)
  plugin.close()
}
