// One instance runs one call at a time: later calls wait their turn, in the order they were
// made. A call may be cancelled (AbortSignal) while it waits, and close() fails the waiting ones.
import { PlinthError } from './errors.js';

/** The error for a call whose signal aborted; `when` says at which point. */
export function cancelled(name: string, signal: AbortSignal, when: string): PlinthError {
  const reason = signal.reason instanceof Error ? `: ${signal.reason.message}` : '';
  return new PlinthError('cancelled', `the call of \`${name}\` was cancelled ${when} (its AbortSignal aborted${reason})`, { cause: signal.reason });
}

/** Throws `cancelled` for a signal that aborted before the call was made. */
export function checkSignal(name: string, signal: AbortSignal | undefined): void {
  if (signal === undefined) return;
  if (typeof signal.aborted !== 'boolean' || typeof signal.addEventListener !== 'function') {
    throw new TypeError(`the \`signal\` of a call of \`${name}\` must be an AbortSignal (from an AbortController or AbortSignal.timeout)`);
  }
  if (signal.aborted) throw cancelled(name, signal, 'before it was made');
}

interface Waiting {
  start(): void;
  fail(e: unknown): void;
}

export class CallQueue {
  private busy = false;
  private readonly waiting: Waiting[] = [];

  /** Runs `work` after the calls queued before it; a failure of theirs does not stop it. */
  async run<T>(name: string, signal: AbortSignal | undefined, work: () => Promise<T>): Promise<T> {
    await this.turn(name, signal);
    try {
      return await work();
    } finally {
      this.next();
    }
  }

  /** Whether a call runs or waits its turn. */
  get active(): boolean {
    return this.busy;
  }

  /** Fails every call still waiting (close()). */
  failWaiting(error: () => unknown): void {
    for (const w of this.waiting.splice(0)) w.fail(error());
  }

  private turn(name: string, signal: AbortSignal | undefined): Promise<void> | void {
    // Claimed synchronously, so that calls made one after another run in that order.
    if (!this.busy) {
      this.busy = true;
      return;
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiting.indexOf(entry);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(cancelled(name, signal!, 'while it waited for the calls before it, so it never ran'));
      };
      const entry: Waiting = {
        start: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        fail: (e) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      this.waiting.push(entry);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private next(): void {
    const w = this.waiting.shift();
    if (w === undefined) this.busy = false;
    else w.start();
  }
}
