export { PlinthError, KINDS, TRAP_CODE, type ErrorKind } from './errors.js';
export { Plugin, type PluginOptions, type PluginSource, type CallInput } from './plugin.js';
export { HostFunction, CurrentPlugin, ValType, type HostCallback, type HostFunctionOptions, type HostValue } from './hostfn.js';
export { validateManifest, sha256Hex, type Manifest, type WasmSource, type MemoryOptions } from './manifest.js';
export { loadKernel, MULTI_MEMORY, KernelApi, Arena, type Kernel, type KernelSource, type PrepareInfo } from './kernel.js';
export { HttpPolicy } from './http.js';
export type { Logger, LogLevel } from './host.js';
export { JSPI } from './jspi.js';
export type { WasiOptions } from './wasi.js';
