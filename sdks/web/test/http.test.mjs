import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HttpPolicy, PlinthError } from '../dist/index.js';

const allows = (hosts, url) => {
  try {
    new HttpPolicy(hosts).check(new URL(url));
    return true;
  } catch (e) {
    assert.ok(e instanceof PlinthError && e.kind === 'http_denied', String(e));
    return false;
  }
};

test('host globs match whole host names, case-insensitively', () => {
  assert.equal(allows(['*.example.com'], 'https://api.example.com/x'), true);
  assert.equal(allows(['*.example.com'], 'https://API.Example.COM/x'), true);
  assert.equal(allows(['*.example.com'], 'https://example.com/'), false);
  assert.equal(allows(['*.example.com'], 'https://example.com.evil.org/'), false);
  assert.equal(allows(['example.com'], 'https://example.com/'), true);
  assert.equal(allows(['example.com'], 'https://examplexcom/'), false, 'a dot is literal');
  assert.equal(allows(['api?.test'], 'http://api1.test/'), true);
  assert.equal(allows(['{a,b}.test'], 'http://b.test/'), true);
  assert.equal(allows(['{a,b}.test'], 'http://c.test/'), false);
  assert.equal(allows([], 'https://example.com/'), false, 'no entries, no HTTP');
  assert.equal(allows(undefined, 'https://example.com/'), false);
});

test('a port limits the entry to that port; a plain entry allows any', () => {
  assert.equal(allows(['localhost:8080'], 'http://localhost:8080/'), true);
  assert.equal(allows(['localhost:8080'], 'http://localhost:9090/'), false);
  assert.equal(allows(['example.com:443'], 'https://example.com/'), true, 'the scheme default port counts');
  assert.equal(allows(['localhost'], 'http://localhost:9090/'), true);
  assert.throws(() => new HttpPolicy(['localhost:8080']).check(new URL('http://localhost:1/')), /localhost:1 denied/);
});

test('bracketed IPv6 addresses match exactly', () => {
  assert.equal(allows(['[::1]'], 'http://[::1]:8000/'), true);
  assert.equal(allows(['[0:0:0:0:0:0:0:1]:8000'], 'http://[::1]:8000/'), true);
  assert.equal(allows(['[::1]:8000'], 'http://[::1]:8001/'), false);
  assert.equal(allows(['[::2]'], 'http://[::1]/'), false);
});

test('malformed entries are manifest errors that say what to write', () => {
  const bad = (entry, pattern) => assert.throws(() => new HttpPolicy([entry]), (e) => e.kind === 'manifest' && pattern.test(e.message));
  bad('https://example.com', /is not a host: write the host name alone/);
  bad('example.com:0', /bad port/);
  bad('example.com:http', /bad port/);
  bad('::1', /bare IPv6 address: write it in brackets/);
  bad('[::1]x', /text after the IPv6 address/);
  bad('{a,b.test', /not a valid glob/);
});
