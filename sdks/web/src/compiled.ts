// CompiledPlugin: a plug-in compiled once (compile.ts), instantiated many times (plugin.ts).
import { compilePlugin, type CompiledParts } from './compile.js';
import { PlinthError } from './errors.js';
import { MAIN_MODULE } from './link.js';
import type { PluginOptions, PluginSource } from './options.js';
import { Plugin } from './plugin.js';

/**
 * A plug-in compiled once, to instantiate many times: each instance is an independent Plugin
 * (its own memory, vars and WASI state) with the same config and options.
 */
export class CompiledPlugin {
  private constructor(private readonly parts: CompiledParts) {}

  /** Loads, checks, prepares and compiles a plug-in's modules, as Plugin.load does. */
  static async load(source: PluginSource, options: PluginOptions = {}): Promise<CompiledPlugin> {
    return new CompiledPlugin(await compilePlugin(source, options));
  }

  /** A new, independent instance (with `timeoutMs`, one with a worker of its own). */
  instantiate(): Promise<Plugin> {
    return Plugin.fromCompiled(this.parts);
  }

  /**
   * A new, independent instance, made synchronously: not for plug-ins with `timeoutMs` (their
   * instance starts a worker) or `wasi` (its set-up is asynchronous); use instantiate() there.
   */
  instantiateSync(): Plugin {
    const { timeoutMs, worker, options } = this.parts;
    if (worker !== undefined || options.wasi) {
      const why = worker === 'timeout' ? `has a timeout (${timeoutMs} ms), and its instance starts a worker` : worker === 'no_jspi' ? 'waits for JavaScript promises (async host functions or fetch) on an engine without JSPI, so its instance starts a worker' : 'uses WASI, whose set-up is asynchronous';
      throw new PlinthError('other', `instantiateSync cannot make an instance of this plug-in: it ${why}; use \`await compiled.instantiate()\``);
    }
    return Plugin.fromCompiledSync(this.parts, undefined);
  }

  /** Whether the hot ABI calls were fused into the main module (needs multi-memory). */
  get fused(): boolean {
    return this.parts.info.fused;
  }

  /** The manifest names of the modules, the main one ("main") last. */
  modules(): string[] {
    return [...this.parts.libraries.map((l) => l.name), MAIN_MODULE];
  }
}
