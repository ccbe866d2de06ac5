// @plinth/web against @extism/extism, in this Node.js and in headless Chromium, in one run:
// the figures of measure.mjs, written to <criterion dir>/web.json.
//
//   node run.mjs [criterion dir]      (or PLINTH_BENCH_OUT; default <repo>/target/criterion)
//
// PLINTH_WEB_BENCH=smoke: a few hundred milliseconds per figure (to check that it runs; the
// numbers mean little). PLINTH_WEB_BENCH_ONLY=node or chromium: one environment only.
// PLINTH_WEB_EXTRA_NODE=/path/to/node: the Node.js figures on that Node.js as well (one with
// multi-memory, Node.js 22 or newer, runs @plinth/web fused). PLINTH_CHROMIUM: the browser (default /usr/bin/chromium). PLINTH_PLUGINS: the plug-ins
// (default <repo>/target/wasm-plugins). Needs sdks/web built (dist/ and the kernel): run.sh
// does everything.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { figures, adapters, measureAll } from './measure.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../..');
const web = path.join(root, 'sdks/web');
const pluginDir = process.env.PLINTH_PLUGINS || path.join(root, 'target/wasm-plugins');
const chromium = process.env.PLINTH_CHROMIUM || '/usr/bin/chromium';
const outDir = path.resolve(process.argv[2] || process.env.PLINTH_BENCH_OUT || path.join(root, 'target/criterion'));
const smoke = process.env.PLINTH_WEB_BENCH === 'smoke';
const only = process.env.PLINTH_WEB_BENCH_ONLY;
if (only && only !== 'node' && only !== 'chromium') fail(`PLINTH_WEB_BENCH_ONLY must be node or chromium, not ${only}`);
// Per figure and SDK: a warm-up, then `samples` batches of about `sampleMs` each.
const budget = smoke ? { warmMs: 30, sampleMs: 5, samples: 5 } : { warmMs: 500, sampleMs: 40, samples: 41 };

function fail(message) {
  console.error(`run.mjs: ${message}`);
  process.exit(1);
}

function checkInputs() {
  const names = [...new Set(figures().map((f) => f.plugin))];
  for (const name of names) {
    if (!existsSync(path.join(pluginDir, `${name}.wasm`))) fail(`missing ${path.join(pluginDir, `${name}.wasm`)}; build the example plug-ins first: bash scripts/build-plugins.sh`);
  }
  if (!existsSync(path.join(web, 'dist/index.js'))) fail('missing sdks/web/dist; build the SDK first: cd sdks/web && npm ci && npm run build (or run bench/run.sh)');
  if (!existsSync(path.join(web, 'kernel/dist/plinth_web_kernel.wasm'))) fail('missing the kernel; build it: bash sdks/web/kernel/build.sh');
  if (!existsSync(path.join(here, 'node_modules/@extism/extism'))) fail('missing @extism/extism; install the pinned versions: cd sdks/web/bench && npm ci');
}

const version = (dir) => JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')).version;

function commit() {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'sdks/web/src', 'sdks/web/kernel', 'crates/abi'], { cwd: root, encoding: 'utf8' }).trim();
    return dirty ? `${head} plus uncommitted changes to sdks/web or crates/abi` : head;
  } catch {
    return 'unknown';
  }
}

async function inNode() {
  const plinth = await import(pathToFileURL(path.join(web, 'dist/index.js')).href);
  const extism = await import('@extism/extism');
  const sdks = adapters({ plinth, extism });
  const rows = await measureAll({
    sdks,
    wasm: async (name) => new Uint8Array(await readFile(path.join(pluginDir, `${name}.wasm`))),
    now: () => performance.now(),
    budget,
    log: (line) => console.log(`  node ${process.version}: ${line}`),
  });
  return {
    name: `Node.js ${process.version}`,
    engine: 'node',
    version: process.version,
    v8: process.versions.v8,
    multi_memory: plinth.MULTI_MEMORY,
    jspi: plinth.JSPI,
    figures: rows,
  };
}

// URL prefix -> folder; the page imports the SDKs and fetches the plug-ins through these.
const ROUTES = [
  ['/sdks/web/bench/browser/', path.join(here, 'browser')],
  ['/sdks/web/bench/measure.mjs', path.join(here, 'measure.mjs')],
  ['/sdks/web/bench/node_modules/@extism/extism/', path.join(here, 'node_modules/@extism/extism')],
  ['/sdks/web/dist/', path.join(web, 'dist')],
  ['/sdks/web/kernel/dist/', path.join(web, 'kernel/dist')],
  ['/sdks/web/node_modules/@bjorn3/browser_wasi_shim/', path.join(web, 'node_modules/@bjorn3/browser_wasi_shim')],
  ['/target/wasm-plugins/', pluginDir],
];
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json', '.map': 'application/json' };

function serve() {
  const server = createServer(async (req, res) => {
    const { pathname } = new URL(req.url, 'http://x');
    // Cross-origin isolated: the page's clock then has 5 µs resolution instead of 100 µs.
    res.setHeader('cross-origin-opener-policy', 'same-origin');
    res.setHeader('cross-origin-embedder-policy', 'require-corp');
    const route = ROUTES.find(([prefix]) => pathname.startsWith(prefix));
    const rest = route && decodeURIComponent(pathname.slice(route[0].length));
    const file = route && (route[0].endsWith('/') ? path.join(route[1], rest || 'index.html') : rest === '' ? route[1] : null);
    if (!file || (route[0].endsWith('/') && !file.startsWith(route[1] + path.sep))) {
      res.statusCode = 404;
      return res.end('not found');
    }
    try {
      const body = await readFile(file);
      res.setHeader('content-type', TYPES[path.extname(file)] ?? 'application/octet-stream');
      res.end(body);
    } catch {
      res.statusCode = 404;
      res.end(`not found: ${pathname}`);
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, base: `http://127.0.0.1:${server.address().port}` })));
}

async function inChromium() {
  if (!existsSync(chromium)) fail(`no Chromium at ${chromium}: install it (Debian/Ubuntu: apt-get install chromium), set PLINTH_CHROMIUM, or run PLINTH_WEB_BENCH_ONLY=node`);
  const { default: puppeteer } = await import('puppeteer-core');
  const { server, base } = await serve();
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    // Root in a container has no user namespaces for the sandbox; /dev/shm is often tiny.
    args: ['--no-sandbox', '--headless=new', '--disable-dev-shm-usage', '--disable-gpu'],
    protocolTimeout: 600_000,
  });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(`uncaught: ${e?.stack ?? e}`));
    page.on('console', (m) => {
      const text = m.text();
      if (text.startsWith('bench: ')) console.log(`  chromium: ${text.slice(7)}`);
      else errors.push(`console.${m.type()}: ${text}`);
    });
    await page.goto(`${base}/sdks/web/bench/browser/index.html?budget=${encodeURIComponent(JSON.stringify(budget))}`);
    const deadline = Date.now() + 20 * 60_000;
    for (;;) {
      const state = await page.evaluate(() => window.__bench);
      if (state?.error) throw new Error(`the benchmark page failed: ${state.error}\n${errors.join('\n')}`);
      if (state?.done) {
        const ua = await browser.version();
        return { name: ua.replace(/^(Headless)?Chrome\//, 'Chromium '), engine: 'chromium', version: ua, ...state.result };
      }
      if (errors.some((e) => e.startsWith('uncaught'))) throw new Error(`the benchmark page threw:\n${errors.join('\n')}`);
      if (Date.now() > deadline) throw new Error(`the benchmark page did not finish in 20 minutes\n${errors.join('\n')}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } finally {
    await browser.close();
    server.close();
  }
}

checkInputs();
// Internal: another Node.js runs this file for its own figures and hands them back in a file.
if (process.env.PLINTH_WEB_BENCH_ENV_OUT) {
  writeFileSync(process.env.PLINTH_WEB_BENCH_ENV_OUT, JSON.stringify(await inNode()));
  process.exit(0);
}
const environments = [];
if (only !== 'chromium') {
  console.log(`Node.js ${process.version}:`);
  environments.push(await inNode());
  const extra = process.env.PLINTH_WEB_EXTRA_NODE;
  if (extra) {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'plinth-web-bench-')), 'node.json');
    console.log(`${extra}:`);
    const run = spawnSync(extra, [fileURLToPath(import.meta.url)], { stdio: 'inherit', env: { ...process.env, PLINTH_WEB_BENCH_ENV_OUT: file } });
    if (run.status !== 0) fail(`PLINTH_WEB_EXTRA_NODE=${extra} failed (${run.error?.message ?? `exit status ${run.status}`})`);
    environments.push(JSON.parse(readFileSync(file, 'utf8')));
  }
}
if (only !== 'node') {
  console.log(`Chromium (${chromium}):`);
  environments.push(await inChromium());
}
const result = {
  what: 'sdks/web/bench: @plinth/web against @extism/extism, same .wasm files and inputs; ratio = Extism time / Plinth time',
  command: 'bash sdks/web/bench/run.sh',
  mode: smoke ? 'smoke' : 'full',
  budget,
  date: new Date().toISOString(),
  commit: commit(),
  sdks: { plinth_web: version(web), extism: version(path.join(here, 'node_modules/@extism/extism')) },
  extism_options: { runInWorker: false, useWasi: false },
  environments,
};
mkdirSync(outDir, { recursive: true });
const out = path.join(outDir, 'web.json');
writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
console.log(`wrote ${out}`);
