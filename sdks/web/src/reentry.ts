// Tells a call made by one of the plug-in's own host functions (re-entrant: queued, it would
// wait for the call that waits for it) from an unrelated call made meanwhile (queued).
//
// While a host function runs synchronously, a call is re-entrant. After an async host
// function's first await, only Node.js can tell (AsyncLocalStorage follows the awaits); in a
// browser such a call is queued, and waits until the outer call ends: README, Calls.

interface Als<T> {
  run<R>(store: T, f: () => R): R;
  getStore(): T | undefined;
}

type Scopes = ReadonlySet<HostScope>;

const hooks = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule?.('node:async_hooks') as
  | { AsyncLocalStorage: new () => Als<Scopes> }
  | undefined;
const inside: Als<Scopes> | undefined = hooks === undefined ? undefined : new hooks.AsyncLocalStorage();

/** One plug-in's host functions. */
export class HostScope {
  private depth = 0;

  /**
   * Runs a host function inside the scope: its synchronous part, and for an async one (`awaits`)
   * on Node.js its awaits too. A sync host function needs no more: a call it schedules for
   * later does not wait for it.
   */
  enter<T>(awaits: boolean, f: () => T): T {
    this.depth++;
    try {
      if (!awaits || inside === undefined) return f();
      const outer = inside.getStore();
      return inside.run(outer === undefined ? new Set([this]) : new Set(outer).add(this), f);
    } finally {
      this.depth--;
    }
  }

  /** Whether the caller runs inside one of these host functions. */
  get active(): boolean {
    return this.depth > 0 || (inside?.getStore()?.has(this) ?? false);
  }
}
