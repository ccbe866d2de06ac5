// The static server of the cases in test/browser/cases.mjs, shared by browser.test.mjs (which
// points Chromium at it) and cases.test.mjs (which runs the same cases on Node.js against it):
// it serves the compiled SDK, the kernel, the example plug-ins and two pages at their
// repository paths, the /api/ endpoints the HTTP cases call, and the cross-origin-isolation
// headers a page needs for SharedArrayBuffer.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import path from 'node:path';
import { pluginDir, root } from './helpers.mjs';

/** The example plug-ins the cases load. */
export const PLUGINS = ['checkout', 'cli_testkit', 'count_vowels', 'extism_count_vowels', 'fail_with_code', 'host_greet', 'http_fetch', 'wasi_files'];

// URL prefix -> folder. Only these are served; the pages and the SDK find each other by the
// repository's layout, so the checkout page works the same from any static server at the root.
const ROUTES = [
  ['/sdks/web/dist/', path.join(root, 'sdks/web/dist')],
  ['/sdks/web/kernel/dist/', path.join(root, 'sdks/web/kernel/dist')],
  ['/sdks/web/test/browser/', path.join(root, 'sdks/web/test/browser')],
  ['/examples/checkout/web/', path.join(root, 'examples/checkout/web')],
  ['/target/wasm-plugins/', pluginDir],
  // The SDK's one runtime dependency, which the pages map with an import map.
  ['/sdks/web/node_modules/@bjorn3/browser_wasi_shim/', path.join(root, 'sdks/web/node_modules/@bjorn3/browser_wasi_shim')],
];
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm', '.map': 'application/json', '.json': 'application/json' };

/** Fails, saying how to build them, when the example plug-ins or the kernel are missing. */
export function assertBuilt() {
  for (const name of PLUGINS) {
    const file = path.join(pluginDir, `${name}.wasm`);
    assert.ok(existsSync(file), `missing ${file}; build the example plug-ins first: bash scripts/build-plugins.sh`);
  }
  assert.ok(existsSync(path.join(root, 'sdks/web/kernel/dist/plinth_web_kernel.wasm')), 'missing the kernel; build it: bash sdks/web/kernel/build.sh');
}

/**
 * Starts the server on 127.0.0.1 at a free port. `hits.denied` counts requests to
 * /api/denied, which allowed_hosts must stop before they are sent.
 */
export function startServer() {
  const hits = { denied: 0 };
  const server = createServer(async (req, res) => {
    const { pathname } = new URL(req.url, 'http://x');
    if (pathname === '/api/allowed') return res.end('hello from the allowed endpoint');
    if (pathname === '/api/denied') {
      hits.denied++;
      return res.end('the allow-list should have stopped this request');
    }
    // Cross-origin isolated, so the page has SharedArrayBuffer (timeoutMs with host functions).
    res.setHeader('cross-origin-opener-policy', 'same-origin');
    res.setHeader('cross-origin-embedder-policy', 'require-corp');
    const route = ROUTES.find(([prefix]) => pathname.startsWith(prefix));
    const file = route && path.join(route[1], decodeURIComponent(pathname.slice(route[0].length)) || 'index.html');
    if (!route || !file.startsWith(route[1] + path.sep)) {
      res.statusCode = 404;
      return res.end('not found');
    }
    try {
      const body = await readFile(file);
      res.setHeader('content-type', TYPES[path.extname(file)] ?? 'application/octet-stream');
      res.setHeader('cache-control', 'no-store');
      res.end(body);
    } catch {
      res.statusCode = 404;
      res.end(`not found: ${pathname}`);
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, hits, base: `http://127.0.0.1:${server.address().port}` })));
}

/** A loopback port nothing listens on (bound, then closed). */
export async function closedPort() {
  const s = createServer();
  await new Promise((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address();
  await new Promise((resolve) => s.close(resolve));
  return port;
}
