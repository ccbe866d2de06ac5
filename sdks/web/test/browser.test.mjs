// @plinth/web in headless Chromium: the static server of test/server.mjs serves the compiled
// SDK, the kernel, the example plug-ins and two pages (test/browser/ and examples/checkout/web/)
// at their repository paths; puppeteer-core drives the browser installed on the system (it never
// downloads one). Each case of test/browser/cases.mjs, which the page test/browser/page.mjs
// runs, becomes a subtest (test/cases.test.mjs runs the same cases on Node.js).
// The browser: $PLINTH_CHROMIUM, or /usr/bin/chromium (Debian/Ubuntu: apt-get install chromium).
// Without one the test skips, unless PLINTH_REQUIRE_BROWSER=1.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { root } from './helpers.mjs';
import { assertBuilt, closedPort, startServer } from './server.mjs';

const chromium = process.env.PLINTH_CHROMIUM || '/usr/bin/chromium';
const required = process.env.PLINTH_REQUIRE_BROWSER === '1';
const missing = existsSync(chromium) ? null : `no Chromium at ${chromium}: install it (Debian/Ubuntu: apt-get install chromium) or set PLINTH_CHROMIUM to a Chromium or Chrome binary`;

/** Polls `f` in the page until it returns something other than undefined; stops early on an uncaught error. */
async function waitFor(page, seen, f, arg, what) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const value = await page.evaluate(f, arg);
    if (value !== undefined) return value;
    if (seen.errors.length > 0 || Date.now() > deadline) {
      assert.fail(`${what}: ${seen.errors.length > 0 ? 'the page threw' : 'gave up after 30 s'}\n${[...seen.errors, ...seen.console].join('\n')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Collects what the page throws (a failure) and logs (to explain a failure). */
function watch(page, label) {
  const errors = [];
  const console = [];
  page.on('pageerror', (e) => errors.push(`${label}: uncaught ${e?.stack ?? e}`));
  page.on('console', (m) => console.push(`${label} console.${m.type()}: ${m.text()}`));
  return { errors, console };
}

/** The rule the checkout plug-in implements (plugins/rust/checkout): 20% for a new customer from 100.00. */
const rule = (cents, isNew) => (isNew && cents >= 10000 ? 20 : 0);

test('@plinth/web in headless Chromium', { skip: missing && !required ? missing : false, timeout: 120_000 }, async (t) => {
  if (missing) assert.fail(`PLINTH_REQUIRE_BROWSER=1 but ${missing}`);
  assertBuilt();
  const { default: puppeteer } = await import('puppeteer-core');
  const { server, hits, base } = await startServer();
  t.after(() => server.close());
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    // Root in a container has no user namespaces for the sandbox; /dev/shm is often tiny.
    args: ['--no-sandbox', '--headless=new', '--disable-dev-shm-usage', '--disable-gpu'],
    protocolTimeout: 60_000,
  });
  t.after(() => browser.close());

  await t.test('the SDK cases (test/browser/cases.mjs)', async (t) => {
    const page = await browser.newPage();
    const seen = watch(page, 'cases page');
    // expectChromium: the cases also check that Chromium has multi-memory, JSPI and isolation.
    await page.goto(`${base}/sdks/web/test/browser/index.html?closedPort=${await closedPort()}&expectChromium=1`);
    const results = await waitFor(page, seen, () => window.__results, undefined, 'the cases page did not finish');
    assert.ok(results.length >= 15, `expected the page's cases, got ${JSON.stringify(results)}`);
    for (const { name, ok, skipped, detail } of results) {
      await t.test(name, { skip: skipped ?? false }, () => assert.ok(ok, `${name} failed in Chromium:\n${detail}\n${seen.console.join('\n')}`));
    }
    await t.test('the denied endpoint was never requested', () => assert.equal(hits.denied, 0, 'allowed_hosts let a request to localhost through'));
    await t.test('no uncaught errors on the page', () => assert.deepEqual(seen.errors, []));
    await page.close();
  });

  await t.test('the checkout page (examples/checkout/web) follows the cart as it is edited', async () => {
    const page = await browser.newPage();
    await page.setViewport({ width: 900, height: 760 });
    const seen = watch(page, 'checkout page');
    await page.goto(`${base}/examples/checkout/web/index.html`);
    // The page marks the result with the cart it was computed for (#result[data-cart]).
    const shown = async (cents, isNew) => {
      const key = `${cents}:${isNew}`;
      await waitFor(page, seen, (k) => (document.querySelector('#result')?.dataset.cart === k ? true : undefined), key, `the checkout page did not show the discount for cart ${key}`);
      const text = await page.$eval('#discount-percent', (e) => e.textContent);
      assert.equal(text, `${rule(cents, isNew)}%`, `discount for ${cents} cents, new customer ${isNew}`);
      const total = await page.$eval('#total', (e) => e.textContent);
      assert.equal(total, `$${((cents * (100 - rule(cents, isNew))) / 10000).toFixed(2)}`, `total for ${cents} cents, new customer ${isNew}`);
    };
    const setQuantity = (row, n) => page.$eval(`#items tr:nth-child(${row}) input.qty`, (input, value) => {
      input.value = String(value);
      input.dispatchEvent(new Event('input', { bubbles: true }));
    }, n);

    // The starting cart: 45.00 + 25.00 + 2 × 9.50 = 89.00, a returning customer.
    await shown(8900, false);
    await page.click('#new-customer');
    await shown(8900, true);
    await setQuantity(1, 2); // 134.00: over 100.00, so the new customer gets 20%
    await shown(13400, true);
    await page.click('#provided-email'); // the rule does not read it: still 20%
    await shown(13400, true);
    mkdirSync(path.join(root, 'target'), { recursive: true });
    await page.screenshot({ path: path.join(root, 'target/web-checkout.png'), fullPage: true });
    await page.click('#new-customer');
    await shown(13400, false);
    await setQuantity(3, 0); // 115.00
    await page.click('#new-customer');
    await shown(11500, true);
    await page.click('#items tr:nth-child(2) button.remove'); // the mouse: 90.00, under 100.00
    await shown(9000, true);
    await page.click('#add-item'); // a new item at 10.00: exactly 100.00, which qualifies
    await shown(10000, true);
    assert.equal(await page.$$eval('#items tr', (rows) => rows.length), 3, 'rows after one removal and one addition');
    assert.deepEqual(seen.errors, [], 'uncaught errors on the checkout page');
    await page.close();
  });
});
