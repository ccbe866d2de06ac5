// Several modules in one manifest, linked as the native runtime links them
// (crates/manifest/src/resolve.rs, crates/plinth/src/compile/link.rs): the main module is the
// one named "main", else the last; the others are instantiated first, each after the modules
// it imports from, and each module imports the others' exports by their manifest `name`.
// Modules that import each other's functions in a cycle are linked through late-bound
// forwarding functions, as the native runtime's trampolines do.
import { PlinthError } from './errors.js';
import type { Manifest } from './manifest.js';

export const MAIN_MODULE = 'main';

/** A compiled module that is not the main one, by its manifest name. */
export interface LibraryModule {
  name: string;
  module: WebAssembly.Module;
}

/**
 * The name of each `wasm` entry, in manifest order (the core's `module_names`): a named entry
 * keeps its name, an unnamed one is "main", and without a "main" the last entry becomes it.
 */
export function moduleNames(manifest: Manifest): string[] {
  // validateManifest refused empty and repeated names (an unnamed entry counting as "main").
  const names = manifest.wasm.map((w) => w.name ?? MAIN_MODULE);
  if (!names.includes(MAIN_MODULE)) names[names.length - 1] = MAIN_MODULE;
  return names;
}

/** The modules `module` imports from, among `names`. */
function importedModules(module: WebAssembly.Module, names: Set<string>): Set<string> {
  return new Set(WebAssembly.Module.imports(module).map((i) => i.module).filter((m) => names.has(m)));
}

/**
 * The library modules in an order where each comes after those it imports from, as the native
 * runtime orders them (`order_dependencies`): while some module waits on none of the others,
 * the first such in manifest order goes next. Modules that import each other in a cycle cannot
 * all wait, so one goes first and its imports from the others are bound late (see
 * instantiateLibraries), which only functions allow. An import from the main module
 * (instantiated last) is a `link` error.
 */
export function instantiationOrder(libraries: LibraryModule[], main: WebAssembly.Module): LibraryModule[] {
  const names = new Set([...libraries.map((l) => l.name), MAIN_MODULE]);
  for (const l of libraries) {
    if (importedModules(l.module, names).has(MAIN_MODULE)) {
      const cycle = importedModules(main, names).has(l.name) ? `, and the main module imports from \`${l.name}\`: a cycle` : '';
      throw new PlinthError('link', `module \`${l.name}\` imports from the main module${cycle}; the main module is instantiated last, so only it may import from the others (the native runtime refuses this too): move what \`${l.name}\` needs into a module of its own`);
    }
  }
  const pending = [...libraries];
  const order: LibraryModule[] = [];
  while (pending.length > 0) {
    // For each pending module, the other pending modules it imports from (by index).
    const waits = pending.map((l) => {
      const from = importedModules(l.module, new Set(pending.map((p) => p.name)));
      from.delete(l.name); // an import of its own name is checkModuleImports's to report
      return pending.flatMap((p, i) => (from.has(p.name) ? [i] : []));
    });
    const free = waits.findIndex((w) => w.length === 0);
    const next = free >= 0 ? free : breakCycle(pending, waits);
    order.push(...pending.splice(next, 1));
  }
  return order;
}

/**
 * Which module goes first when every pending module imports from another pending one: one of
 * a cycle that imports from no pending module outside it (one always exists), so that all its
 * late-bound imports point into the cycle; the first in manifest order whose imports from the
 * cycle are all functions. None such is a `link` error naming the imports that are not.
 */
function breakCycle(pending: LibraryModule[], waits: number[][]): number {
  const reach = (from: number): boolean[] => {
    const seen = pending.map(() => false);
    const stack = [from];
    while (stack.length > 0) {
      for (const n of waits[stack.pop()!]) {
        if (!seen[n]) {
          seen[n] = true;
          stack.push(n);
        }
      }
    }
    return seen;
  };
  const reaches = pending.map((_, i) => reach(i));
  // A module of such a cycle is reached back from everything it reaches.
  const first = pending.findIndex((_, m) => pending.every((_, n) => !reaches[m][n] || reaches[n][m]));
  const cycle = pending.flatMap((_, n) => (reaches[first][n] ? [n] : []));
  const cycleNames = new Set(cycle.map((n) => pending[n].name));
  const blocked: string[] = [];
  for (const m of cycle) {
    const { name, module } = pending[m];
    const notFunction = WebAssembly.Module.imports(module).find((i) => i.module !== name && cycleNames.has(i.module) && i.kind !== 'function');
    if (notFunction === undefined) return m;
    blocked.push(`\`${name}\` imports ${notFunction.kind} \`${notFunction.module}::${notFunction.name}\``);
  }
  throw new PlinthError('link', `the modules ${cycle.map((n) => `\`${pending[n].name}\``).join(', ')} import each other in a cycle that Plinth cannot link: it closes a cycle by binding one module's imports from the others late, which only works for functions, but ${blocked.join(' and ')}; move the shared memory, global or table into a module outside the cycle`);
}

/**
 * Names the first import of any module that nothing provides: not another module of the
 * manifest (or not one of its exports), not a host function (`provided`, as "ns::name").
 * `otherwise` explains an import that is neither, for the main module's usual messages.
 */
export function checkModuleImports(
  modules: { name: string; module: WebAssembly.Module }[],
  provided: Set<string>,
  otherwise: (name: string, imp: WebAssembly.ModuleImportDescriptor) => PlinthError,
): void {
  const exports = new Map(modules.map((m) => [m.name, WebAssembly.Module.exports(m.module)]));
  for (const { name, module } of modules) {
    for (const imp of WebAssembly.Module.imports(module)) {
      const target = exports.get(imp.module);
      if (target !== undefined && imp.module === name) {
        throw new PlinthError('link', `module \`${name}\` imports ${imp.kind} \`${imp.name}\` from \`${name}\`, its own name; a module cannot import from itself`);
      }
      if (target !== undefined) {
        const found = target.find((e) => e.name === imp.name);
        if (found === undefined || found.kind !== imp.kind) {
          const has = found === undefined ? 'exports nothing under that name' : `exports a ${found.kind} under that name`;
          throw new PlinthError('link', `module \`${name}\` imports ${imp.kind} \`${imp.name}\` from module \`${imp.module}\`, which ${has}; its exports are: ${target.map((e) => e.name).join(', ') || '(none)'}`);
        }
        continue;
      }
      if (imp.kind === 'function' && provided.has(`${imp.module}::${imp.name}`)) continue;
      throw otherwise(name, imp);
    }
  }
}

/** Validates and compiles a library module as it is (only the main module is fused). */
export async function compileLibrary(bytes: Uint8Array, name: string): Promise<WebAssembly.Module> {
  if (!(bytes[0] === 0 && bytes[1] === 0x61 && bytes[2] === 0x73 && bytes[3] === 0x6d)) {
    throw new PlinthError('compile', `cannot compile the module \`${name}\`: it is not a WebAssembly module (no \\0asm header; compile WAT to wasm first)`);
  }
  try {
    return await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
  } catch (e) {
    throw new PlinthError('compile', `cannot compile the module \`${name}\`: ${e instanceof Error ? e.message : String(e)} (is it a valid WebAssembly module?)`, { cause: e });
  }
}

/**
 * The instances of the library modules, in order, each linked to `imports` (the host's) and to
 * the exports of those before it. Imports from modules after it (a cycle: instantiationOrder
 * made sure they are functions) are JS functions that forward to the export once its module is
 * instantiated, and before that fail with a `link` error, as the native runtime's trampolines
 * do. A failure names the module.
 */
export function instantiateLibraries(order: LibraryModule[], imports: Record<string, Record<string, unknown>>): Record<string, WebAssembly.Exports> {
  const instances: Record<string, WebAssembly.Exports> = {};
  // The late-bound imports not bound yet: module name -> export name -> where to bind it.
  const late = new Map<string, Map<string, { target?: (...args: unknown[]) => unknown }>>();
  for (const [i, { name, module }] of order.entries()) {
    const later = new Set(order.slice(i + 1).map((l) => l.name));
    const trampolines: Record<string, Record<string, unknown>> = {};
    for (const imp of WebAssembly.Module.imports(module)) {
      if (!later.has(imp.module) || imp.kind !== 'function') continue;
      let waiting = late.get(imp.module);
      if (waiting === undefined) late.set(imp.module, (waiting = new Map()));
      let slot = waiting.get(imp.name);
      if (slot === undefined) waiting.set(imp.name, (slot = {}));
      const bound = slot;
      const early = `module \`${name}\` called \`${imp.module}::${imp.name}\` before module \`${imp.module}\` was instantiated: modules that import each other are instantiated one at a time, so a start function cannot call into one instantiated later; list \`${imp.module}\` before \`${name}\` in the manifest, or make the call later`;
      (trampolines[imp.module] ??= {})[imp.name] = (...args: unknown[]) => {
        if (bound.target === undefined) throw new PlinthError('link', early);
        return bound.target(...args);
      };
    }
    let instance: WebAssembly.Instance;
    try {
      instance = new WebAssembly.Instance(module, { ...imports, ...instances, ...trampolines } as WebAssembly.Imports);
    } catch (e) {
      if (e instanceof PlinthError) throw e;
      const why = e instanceof Error ? e.message : String(e);
      if (e instanceof WebAssembly.LinkError) throw new PlinthError('link', `cannot link module \`${name}\`: ${why}`, { cause: e });
      throw new PlinthError('trap', `module \`${name}\` trapped while starting: ${why}`, { cause: e });
    }
    instances[name] = instance.exports;
    for (const [exportName, slot] of late.get(name) ?? []) {
      // checkModuleImports made sure the export exists and is a function.
      slot.target = instance.exports[exportName] as (...args: unknown[]) => unknown;
    }
    late.delete(name);
  }
  return instances;
}
