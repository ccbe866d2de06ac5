// Runs the cases of cases.mjs in this page against the server that served it. When all have
// run, window.__results = [{ name, ok, skipped, detail }] for browser.test.mjs, and the page
// lists them. ?closedPort= is a loopback port nothing listens on; ?expectChromium=1 makes the
// cases check that the engine has multi-memory, JSPI and cross-origin isolation.
import { makeCases } from './cases.mjs';

async function run() {
  const params = new URLSearchParams(location.search);
  const cases = makeCases({ base: location.origin, closedPort: params.get('closedPort'), expectChromium: params.get('expectChromium') === '1' });
  const results = [];
  const list = document.getElementById('results');
  for (const [name, f] of Object.entries(cases)) {
    let result;
    if (f.skip) {
      result = { name, ok: true, skipped: f.skip, detail: '' };
    } else {
      try {
        await f();
        result = { name, ok: true, detail: '' };
      } catch (e) {
        result = { name, ok: false, detail: e?.stack ?? String(e) };
      }
    }
    results.push(result);
    const li = document.createElement('li');
    li.textContent = result.skipped ? `skipped: ${name}: ${result.skipped}` : `${result.ok ? 'ok' : 'FAILED'}: ${name}${result.ok ? '' : `: ${result.detail}`}`;
    list.append(li);
  }
  window.__results = results;
}

run();
