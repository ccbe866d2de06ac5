// The worker entry of a plug-in that runs in a worker (timeoutMs, or async host functions and
// fetch on an engine without JSPI; see remote.ts for the protocol). It loads the plug-in with
// stand-ins for the host functions that ask the main thread and wait.
import { PlinthError } from './errors.js';
import { HostFunction, type CurrentPlugin, type HostValue } from './hostfn.js';
import type { Manifest } from './manifest.js';
import { Plugin } from './plugin.js';
import { useNullDeviceFd, useShimUrl } from './wasi.js';
import { markPluginWorker, useSyncFetch } from './host.js';
import { PENDING_BASE, readAnswer, serialError, type HostSignature } from './remote.js';

interface Port {
  post(message: unknown): void;
  listen(handler: (m: Record<string, unknown>) => void): void;
}

async function port(): Promise<Port> {
  if (typeof process !== 'undefined' && typeof process.versions?.node === 'string') {
    const spec = 'node:worker_threads';
    const { parentPort } = await import(spec);
    return { post: (m) => parentPort.postMessage(m), listen: (h) => parentPort.on('message', h) };
  }
  const scope = globalThis as unknown as { postMessage(m: unknown): void; onmessage: ((ev: MessageEvent) => void) | null };
  return { post: (m) => scope.postMessage(m), listen: (h) => void (scope.onmessage = (ev) => h(ev.data as Record<string, unknown>)) };
}

function stand_in(p: Port, sab: SharedArrayBuffer, sig: HostSignature, index: number): HostFunction {
  return new HostFunction(
    sig.name,
    sig.params,
    sig.results,
    (current: CurrentPlugin, inputs: HostValue[]) => {
      // The blocks the arguments name go along, so that the host function can read them.
      const blocks: [string, Uint8Array][] = [];
      inputs.forEach((v, i) => {
        if (sig.params[i] !== 'i64' || v === 0n) return;
        let n = 0;
        try {
          n = current.length(v);
        } catch {
          n = 0;
        }
        if (n > 0) blocks.push([String(v), current.readBytes(v)]);
      });
      const head = new Int32Array(sab, 0, 4);
      Atomics.store(head, 0, 0);
      p.post({ type: 'host', fn: index, args: inputs.map(String), blocks });
      Atomics.wait(head, 0, 0);
      const { answer, data } = readAnswer(sab);
      if (answer.error !== undefined) throw new PlinthError(answer.error.kind, answer.error.message, { code: answer.error.code });
      for (const h of answer.freed ?? []) current.free(BigInt(h));
      // New blocks get real places; a result naming one gets its real handle.
      const placed = new Map<number, number>();
      let at = 0;
      (answer.pending ?? []).forEach((len, i) => {
        placed.set(PENDING_BASE + i, current.writeBytes(data.subarray(at, at + len)));
        at += len;
      });
      const results = (answer.results ?? []).map((r, i) => {
        if (sig.results[i] !== 'i64') return Number(r);
        const real = placed.get(Number(r));
        return real !== undefined ? BigInt(real) : BigInt(r);
      });
      return results;
    },
    { namespace: sig.namespace },
  );
}

async function main(): Promise<void> {
  const p = await port();
  let plugin: Plugin | undefined;
  let varsSent = 0;
  /** The vars, when the call changed them (the main thread keeps them for a fresh worker). */
  const changedVars = () => {
    if (plugin === undefined || plugin.varsVersion === varsSent) return undefined;
    varsSent = plugin.varsVersion;
    return plugin.exportVars();
  };
  p.listen(async (m) => {
    if (m.type === 'init') {
      try {
        const sab = m.sab as SharedArrayBuffer | undefined;
        const functions = (m.functions as HostSignature[]).map((sig, i) => stand_in(p, sab!, sig, i));
        const options = { ...(m.options as Record<string, unknown>) };
        for (const k of Object.keys(options)) if (options[k] === undefined) delete options[k];
        if (typeof options.kernel === 'string') options.kernel = new URL(options.kernel);
        const out = m.wasiOut as { stdout: boolean; stderr: boolean } | undefined;
        if (out !== undefined && typeof options.wasi === 'object') {
          const wasi = { ...(options.wasi as Record<string, unknown>) };
          delete wasi.stdout;
          delete wasi.stderr;
          if (out.stdout) wasi.stdout = (bytes: Uint8Array) => p.post({ type: 'stdout', bytes: bytes.slice() });
          if (out.stderr) wasi.stderr = (bytes: Uint8Array) => p.post({ type: 'stderr', bytes: bytes.slice() });
          options.wasi = wasi;
        }
        if (m.logger) options.logger = (level: string, message: string) => p.post({ type: 'log', level, message });
        markPluginWorker();
        useNullDeviceFd(m.nullFd as number | undefined);
        useShimUrl(m.shimUrl as string | undefined);
        if (sab !== undefined) {
          useSyncFetch((request, url, body) => {
            const head = new Int32Array(sab, 0, 4);
            Atomics.store(head, 0, 0);
            p.post({ type: 'http', request, url: url.href, body });
            Atomics.wait(head, 0, 0);
            const { answer, data } = readAnswer(sab);
            if (answer.error !== undefined) throw new PlinthError(answer.error.kind, answer.error.message, { code: answer.error.code });
            return { status: answer.status ?? 0, headers: answer.headers ?? {}, body: data };
          });
        }
        plugin = await Plugin.load(m.manifest as Manifest, { ...options, functions });
        plugin.restoreVars(m.vars as [string, Uint8Array][]);
        if (m.config !== undefined) plugin.replaceConfig(m.config as [string, string][]);
        varsSent = plugin.varsVersion;
        p.post({ type: 'ready' });
      } catch (e) {
        p.post({ type: 'error', error: serialError(e) });
      }
      return;
    }
    if (m.type === 'reset') {
      // Between calls (the main thread refuses reset() during one); before init ends, nothing holds memory.
      try {
        plugin?.reset();
      } catch {
        // A closed or busy instance holds nothing to free here.
      }
      return;
    }
    if (m.type === 'call') {
      try {
        // The host's changes since the last call (updateConfig, varSet).
        if (m.config !== undefined) plugin!.replaceConfig(m.config as [string, string][]);
        if (m.vars !== undefined) {
          plugin!.restoreVars(m.vars as [string, Uint8Array][]);
          varsSent = plugin!.varsVersion;
        }
        // The stand-ins are synchronous; call() uses JSPI only for http_request where it exists.
        const output = await plugin!.call(m.name as string, m.input as Uint8Array);
        p.post({ type: 'result', output, vars: changedVars() });
      } catch (e) {
        p.post({ type: 'error', error: serialError(e), vars: changedVars() });
      }
    }
  });
}

void main();
