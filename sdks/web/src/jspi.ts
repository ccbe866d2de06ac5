// JavaScript Promise Integration: a wasm import that returns a Promise suspends the wasm
// stack until it settles (WebAssembly.Suspending), and an export called through
// WebAssembly.promising returns a Promise. Chrome 137 and Node.js 25 have it; Node.js 20 does not.

/** The part of the JSPI API this SDK uses. */
export interface Jspi {
  Suspending: new (f: (...args: never[]) => Promise<unknown>) => object;
  promising(f: (...args: never[]) => unknown): (...args: never[]) => Promise<unknown>;
}

/** Whether this engine has JSPI. */
export const JSPI: boolean =
  typeof (WebAssembly as unknown as Partial<Jspi>).Suspending === 'function' &&
  typeof (WebAssembly as unknown as Partial<Jspi>).promising === 'function';

/** `f` as an import that suspends the plug-in while its Promise is pending. */
export function suspending(f: (...args: never[]) => Promise<unknown>): object {
  return new (WebAssembly as unknown as Jspi).Suspending(f);
}
