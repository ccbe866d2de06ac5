// Several modules in one manifest, linked as the native runtime links them
// (crates/manifest/src/resolve.rs, crates/plinth/src/compile/link.rs): the main module is the
// one named "main", else the last; the others are instantiated first, each after the modules
// it imports from, and each module imports the others' exports by their manifest `name`.
// Modules that import each other's functions in a cycle are linked through late-bound
// forwarding functions, as the native runtime's trampolines do.
import { PlinthError } from './errors.js';
import { funcTypes, type FuncType, type FuncTypes } from './functypes.js';
import type { Manifest } from './manifest.js';

export const MAIN_MODULE = 'main';

/** A compiled module that is not the main one, by its manifest name. */
export interface LibraryModule {
  name: string;
  module: WebAssembly.Module;
  /** Its function imports' and exports' types; undefined when they could not be read. */
  types?: FuncTypes;
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
    if (notFunction === undefined) {
      checkLateTypes(pending[m], pending);
      return m;
    }
    blocked.push(`\`${name}\` imports ${notFunction.kind} \`${notFunction.module}::${notFunction.name}\``);
  }
  throw new PlinthError('link', `the modules ${cycle.map((n) => `\`${pending[n].name}\``).join(', ')} import each other in a cycle that Plinth cannot link: it closes a cycle by binding one module's imports from the others late, which only works for functions, but ${blocked.join(' and ')}; move the shared memory, global or table into a module outside the cycle`);
}

/**
 * Refuses a late-bound import whose function type differs from its export's: a forwarder takes
 * the import's type, so the engine's link-time check does not see the export's (as native).
 */
function checkLateTypes(importer: LibraryModule, pending: LibraryModule[]): void {
  for (const [key, want] of importer.types?.imports ?? []) {
    const [from, name] = key.split('::', 2);
    const got = pending.find((p) => p.name === from && p.name !== importer.name)?.types?.exports.get(name);
    if (got === undefined || sameBytes(got.bytes, want.bytes)) continue; // checkModuleImports reports a missing export
    throw new PlinthError('link', `module \`${importer.name}\` imports \`${from}::${name}\` as a function ${want.text}, but module \`${from}\` exports it as ${got.text}`);
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
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
export async function compileLibrary(bytes: Uint8Array, name: string): Promise<LibraryModule> {
  return { name, module: await compileModule(bytes, name), types: funcTypes(bytes) };
}

async function compileModule(bytes: Uint8Array, name: string): Promise<WebAssembly.Module> {
  try {
    return await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
  } catch (e) {
    throw new PlinthError('compile', `cannot compile the module \`${name}\`: ${e instanceof Error ? e.message : String(e)} (is it a valid WebAssembly module?)`, { cause: e });
  }
}

/** A function import bound late: which export it waits for, its type, what an early call says. */
interface LateImport {
  module: string;
  name: string;
  type: FuncType | undefined;
  early: string;
}

/**
 * The imports of `importer` from the modules in `later` (instantiated after it: a cycle, whose
 * imports instantiationOrder made sure are functions).
 */
function lateImports(importer: LibraryModule, later: Set<string>): LateImport[] {
  return WebAssembly.Module.imports(importer.module)
    .filter((imp) => later.has(imp.module) && imp.kind === 'function')
    .map((imp) => ({
      module: imp.module,
      name: imp.name,
      type: importer.types?.imports.get(`${imp.module}::${imp.name}`),
      early: `module \`${importer.name}\` called \`${imp.module}::${imp.name}\` before module \`${imp.module}\` was instantiated: modules that import each other are instantiated one at a time, so a start function cannot call into one instantiated later; list \`${imp.module}\` before \`${importer.name}\` in the manifest, or make the call later`,
    }));
}

/** Unsigned and (non-negative) signed LEB128. */
const leb = (n: number): number[] => (n < 0x80 ? [n] : [(n & 0x7f) | 0x80, ...leb(Math.floor(n / 0x80))]);
const sleb = (n: number): number[] => (n < 0x40 ? [n] : [(n & 0x7f) | 0x80, ...sleb(Math.floor(n / 0x80))]);
const section = (id: number, items: number[][]): number[] => {
  const body = [...leb(items.length), ...items.flat()];
  return [id, ...leb(body.length), ...body];
};
const utf8 = (s: string): number[] => {
  const b = new TextEncoder().encode(s);
  return [...leb(b.length), ...b];
};

/**
 * A module of forwarders for `types`: export `f<i>` has type `types[i]` and calls slot i of the
 * imported funcref table, or, while that slot is empty, the imported `early(i)` (which throws).
 * They are wasm, not JS, so that JSPI can suspend a call that goes through one.
 */
function forwarderModule(types: FuncType[]): WebAssembly.Module {
  const early = [0x60, 1, 0x7f, 0]; // (i32) -> ()
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...section(1, [early, ...types.map((t) => [...t.bytes])]),
    ...section(2, [
      [...utf8('plinth'), ...utf8('early'), 0x00, 0],
      [...utf8('plinth'), ...utf8('slots'), 0x01, 0x70, 0x00, ...leb(types.length)],
    ]),
    ...section(3, types.map((_, i) => leb(i + 1))),
    ...section(7, types.map((_, i) => [...utf8(`f${i}`), 0x00, ...leb(i + 1)])),
    ...section(10, types.map((t, i) => {
      const slot = [0x41, ...sleb(i)];
      const code = [
        0, // no locals
        ...slot, 0x25, 0, 0xd1, 0x04, 0x40, ...slot, 0x10, 0, 0x0b, // if the slot is null: early(i)
        ...Array.from({ length: t.params }, (_, p) => [0x20, ...leb(p)]).flat(),
        ...slot, 0x11, ...leb(i + 1), 0, // call_indirect (type i + 1) slot i
        0x0b,
      ];
      return [...leb(code.length), ...code];
    })),
  ];
  return new WebAssembly.Module(new Uint8Array(bytes));
}

// Compiled once per library module and set of late imports: its forwarders, or null when some
// type is unknown.
const forwarderModules = new WeakMap<WebAssembly.Module, Map<string, WebAssembly.Module | null>>();

/**
 * Forwarding functions for `late`, as import namespaces, and how to point those that wait for
 * a module at its exports once it is instantiated.
 */
function forwarders(importer: LibraryModule, late: LateImport[]): { imports: Record<string, Record<string, unknown>>; bind: (module: string, exports: WebAssembly.Exports) => void } {
  const imports: Record<string, Record<string, unknown>> = {};
  let cached = forwarderModules.get(importer.module);
  if (cached === undefined) forwarderModules.set(importer.module, (cached = new Map()));
  const key = late.map((l) => `${l.module}::${l.name}`).join('\n');
  let compiled = cached.get(key);
  if (compiled === undefined) {
    const types = late.map((l) => l.type);
    compiled = types.every((t) => t !== undefined) ? forwarderModule(types as FuncType[]) : null;
    cached.set(key, compiled);
  }
  if (compiled !== null) {
    const slots = new WebAssembly.Table({ element: 'anyfunc', initial: late.length });
    const instance = new WebAssembly.Instance(compiled, {
      plinth: {
        early: (i: number) => {
          throw new PlinthError('link', late[i].early);
        },
        slots,
      },
    });
    late.forEach((l, i) => ((imports[l.module] ??= {})[l.name] = instance.exports[`f${i}`]));
    return {
      imports,
      bind: (module, exports) => late.forEach((l, i) => l.module === module && slots.set(i, exports[l.name] as () => unknown)),
    };
  }
  // Types this SDK cannot read: JS forwarders (which JSPI cannot suspend through).
  const targets: (((...args: unknown[]) => unknown) | undefined)[] = late.map(() => undefined);
  late.forEach((l, i) => {
    (imports[l.module] ??= {})[l.name] = (...args: unknown[]) => {
      const target = targets[i];
      if (target === undefined) throw new PlinthError('link', l.early);
      return target(...args);
    };
  });
  return {
    imports,
    bind: (module, exports) => late.forEach((l, i) => l.module === module && (targets[i] = exports[l.name] as (...args: unknown[]) => unknown)),
  };
}

/**
 * The instances of the library modules, in order, each linked to `imports` (the host's) and to
 * the exports of those before it. Imports from modules after it (a cycle) are forwarding
 * functions bound once their module is instantiated, which before that fail with a `link`
 * error, as the native runtime's trampolines do. A failure names the module.
 */
export function instantiateLibraries(order: LibraryModule[], imports: Record<string, Record<string, unknown>>): Record<string, WebAssembly.Exports> {
  const instances: Record<string, WebAssembly.Exports> = {};
  const binders: ((module: string, exports: WebAssembly.Exports) => void)[] = [];
  for (const [i, library] of order.entries()) {
    const { name, module } = library;
    const late = lateImports(library, new Set(order.slice(i + 1).map((l) => l.name)));
    const forwarding = late.length === 0 ? undefined : forwarders(library, late);
    if (forwarding !== undefined) binders.push(forwarding.bind);
    let instance: WebAssembly.Instance;
    try {
      instance = new WebAssembly.Instance(module, { ...imports, ...instances, ...forwarding?.imports } as WebAssembly.Imports);
    } catch (e) {
      if (e instanceof PlinthError) throw e;
      const why = e instanceof Error ? e.message : String(e);
      if (e instanceof WebAssembly.LinkError) throw new PlinthError('link', `cannot link module \`${name}\`: ${why}`, { cause: e });
      throw new PlinthError('trap', `module \`${name}\` trapped while starting: ${why}`, { cause: e });
    }
    instances[name] = instance.exports;
    for (const bind of binders) bind(name, instance.exports);
  }
  return instances;
}
