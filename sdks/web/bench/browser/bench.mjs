// The browser half of sdks/web/bench: the same measurements as in Node.js (../measure.mjs),
// on @plinth/web's dist/ and @extism/extism's browser build, as a page would import them.
// Progress lines go to the console ("bench: ..."); the result to window.__bench.
import * as plinth from '../../dist/index.js';
import * as extism from '../node_modules/@extism/extism/dist/browser/mod.js';
import { adapters, measureAll } from '../measure.mjs';

const log = (line) => {
  console.log(`bench: ${line}`);
  document.querySelector('#log').textContent += `${line}\n`;
};

async function wasm(name) {
  const response = await fetch(`/target/wasm-plugins/${name}.wasm`);
  if (!response.ok) throw new Error(`GET /target/wasm-plugins/${name}.wasm: ${response.status}; build the plug-ins: bash scripts/build-plugins.sh`);
  return new Uint8Array(await response.arrayBuffer());
}

try {
  const budget = JSON.parse(new URLSearchParams(location.search).get('budget') ?? '{"warmMs":30,"sampleMs":5,"samples":5}');
  const figures = await measureAll({ sdks: adapters({ plinth, extism }), wasm, now: () => performance.now(), budget, log });
  window.__bench = {
    done: true,
    result: { multi_memory: plinth.MULTI_MEMORY, jspi: plinth.JSPI, cross_origin_isolated: self.crossOriginIsolated, user_agent: navigator.userAgent, figures },
  };
} catch (e) {
  window.__bench = { error: String(e?.stack ?? e) };
}
