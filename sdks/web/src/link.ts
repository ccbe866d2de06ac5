// Several modules in one manifest, linked as the native runtime links them
// (crates/manifest/src/resolve.rs, crates/plinth/src/compile/link.rs): the main module is the
// one named "main", else the last; the others are instantiated first, each after the modules
// it imports from, and each module imports the others' exports by their manifest `name`.
// Cycles are refused: the native runtime's late-bound trampolines are not done here yet.
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
 * The library modules in an order where each comes after those it imports from; a cycle, or
 * an import from the main module (instantiated last), is a `link` error naming the modules.
 */
export function instantiationOrder(libraries: LibraryModule[], main: WebAssembly.Module): LibraryModule[] {
  const names = new Set([...libraries.map((l) => l.name), MAIN_MODULE]);
  // An import of a module's own name is reported by checkModuleImports, not as a cycle.
  const deps = new Map(libraries.map((l) => [l.name, new Set([...importedModules(l.module, names)].filter((n) => n !== l.name))]));
  for (const [name, from] of deps) {
    if (from.has(MAIN_MODULE)) {
      const imports = importedModules(main, names).has(name) ? `, and the main module imports from \`${name}\`: a cycle` : '';
      throw new PlinthError('link', `module \`${name}\` imports from the main module${imports}; the main module is instantiated last, so only it may import from the others (@plinth/web does not link cycles between modules yet; the native runtime does)`);
    }
  }
  const order: LibraryModule[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const byName = new Map(libraries.map((l) => [l.name, l]));
  // Depth first; `path` is the chain of modules being visited, so a cycle can be named.
  const visit = (name: string, path: string[]): void => {
    const s = state.get(name);
    if (s === 'done') return;
    if (s === 'visiting') {
      const cycle = [...path.slice(path.indexOf(name)), name];
      throw new PlinthError('link', `the modules ${cycle.slice(0, -1).map((n) => `\`${n}\``).join(', ')} import each other in a cycle (${cycle.join(' -> ')}); @plinth/web links modules only when their imports form no cycle (the native runtime links function cycles): move the shared functions into a module of their own, or use @plinth/node`);
    }
    state.set(name, 'visiting');
    for (const d of deps.get(name) ?? []) visit(d, [...path, name]);
    state.set(name, 'done');
    order.push(byName.get(name)!);
  };
  for (const l of libraries) visit(l.name, []);
  return order;
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

/** Validates and compiles a library module's binary (WAT was parsed before); only the main module is fused. */
export async function compileLibrary(bytes: Uint8Array, name: string): Promise<WebAssembly.Module> {
  try {
    return await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
  } catch (e) {
    throw new PlinthError('compile', `cannot compile the module \`${name}\`: ${e instanceof Error ? e.message : String(e)} (is it a valid WebAssembly module?)`, { cause: e });
  }
}

/**
 * The instances of the library modules, in order, each linked to `imports` (the host's) and to
 * the exports of those before it. A failure names the module.
 */
export function instantiateLibraries(order: LibraryModule[], imports: Record<string, Record<string, unknown>>): Record<string, WebAssembly.Exports> {
  const instances: Record<string, WebAssembly.Exports> = {};
  for (const { name, module } of order) {
    let instance: WebAssembly.Instance;
    try {
      instance = new WebAssembly.Instance(module, { ...imports, ...instances } as WebAssembly.Imports);
    } catch (e) {
      if (e instanceof PlinthError) throw e;
      const why = e instanceof Error ? e.message : String(e);
      if (e instanceof WebAssembly.LinkError) throw new PlinthError('link', `cannot link module \`${name}\`: ${why}`, { cause: e });
      throw new PlinthError('trap', `module \`${name}\` trapped while starting: ${why}`, { cause: e });
    }
    instances[name] = instance.exports;
  }
  return instances;
}
