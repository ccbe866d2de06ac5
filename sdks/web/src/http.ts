// `http_request` for plug-ins: the allow-list rules of crates/plinth/src/http.rs. Entries are
// `host-glob` (any port), `host-glob:port`, `[ipv6]` or `[ipv6]:port`; globs are matched
// case-insensitively against the whole host name (`*` any run of characters, `?` one,
// `[..]` a class, `{a,b}` alternatives).
import { PlinthError } from './errors.js';

interface HostRule {
  host: RegExp | string; // a string is an exact bracketed IPv6 address
  port?: number;
}

function globToRegExp(glob: string, entry: string): RegExp {
  let out = '';
  let inClass = false;
  let braces = 0;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (inClass) {
      if (c === ']') inClass = false;
      out += c === '\\' ? '\\\\' : c;
    } else if (c === '*') out += '.*';
    else if (c === '?') out += '.';
    else if (c === '[') {
      inClass = true;
      out += glob[i + 1] === '!' ? (i++, '[^') : '[';
    } else if (c === '{') {
      braces++;
      out += '(?:';
    } else if (c === '}' && braces > 0) {
      braces--;
      out += ')';
    } else if (c === ',' && braces > 0) out += '|';
    else out += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  if (inClass || braces > 0) {
    throw new PlinthError('manifest', `invalid manifest: allowed_hosts entry \`${entry}\` is not a valid glob: unclosed ${inClass ? '`[`' : '`{`'}`);
  }
  return new RegExp(`^${out}$`, 'i');
}

function parseRule(entry: string): HostRule {
  const bad = (why: string) => new PlinthError('manifest', `invalid manifest: allowed_hosts entry \`${entry}\` ${why}`);
  const port = (p: string): number => {
    const n = /^[0-9]+$/.test(p) ? Number(p) : NaN;
    if (!(n >= 1 && n <= 65535)) throw bad('has a bad port: write `host:port` with a port from 1 to 65535');
    return n;
  };
  if (entry.includes('://') || entry.includes('/')) {
    throw bad('is not a host: write the host name alone (`example.com`), optionally with a port (`example.com:8080`)');
  }
  const v6 = /^\[([0-9a-fA-F:.]+)\](.*)$/.exec(entry);
  if (v6 !== null && v6[1].includes(':')) {
    const rest = v6[2];
    if (rest !== '' && !rest.startsWith(':')) throw bad('has text after the IPv6 address: write `[addr]` or `[addr]:port`');
    // The URL parser writes IPv6 hosts in their canonical form, bracketed.
    const host = new URL(`http://[${v6[1]}]/`).hostname;
    return { host, port: rest === '' ? undefined : port(rest.slice(1)) };
  }
  const parts = entry.split(':');
  if (parts.length > 2) throw bad('looks like a bare IPv6 address: write it in brackets, `[::1]`');
  return { host: globToRegExp(parts[0], entry), port: parts.length === 2 ? port(parts[1]) : undefined };
}

const DEFAULT_PORTS: Record<string, number> = { 'http:': 80, 'https:': 443 };

/** What a plug-in may reach over HTTP. No entries: no HTTP at all. */
export class HttpPolicy {
  private readonly rules: HostRule[];

  constructor(allowedHosts: string[] | undefined) {
    this.rules = (allowedHosts ?? []).map(parseRule);
  }

  /** Throws `http_denied` unless `url` is allowed. */
  check(url: URL): void {
    const port = url.port === '' ? DEFAULT_PORTS[url.protocol] : Number(url.port);
    const isV6 = url.hostname.startsWith('[');
    let hostAllowed = false;
    for (const rule of this.rules) {
      const matches = typeof rule.host === 'string' ? isV6 && rule.host === url.hostname : rule.host.test(url.hostname);
      if (matches) {
        if (rule.port === undefined || rule.port === port) return;
        hostAllowed = true;
      }
    }
    const host = hostAllowed && port !== undefined ? `${url.hostname}:${port}` : url.hostname;
    throw new PlinthError('http_denied', `HTTP request to ${host} denied: the host is not in allowed_hosts; add it to the manifest's allowed_hosts (globs such as *.example.com work)`);
  }
}

/** The request a plug-in sends, as the Extism PDKs encode it. */
export interface GuestRequest {
  url: string;
  headers?: Record<string, string>;
  method?: string;
}

/** Parses the plug-in's request JSON and checks it against the policy. */
export function parseRequest(json: Uint8Array, policy: HttpPolicy): { request: GuestRequest; url: URL } {
  let request: GuestRequest;
  try {
    request = JSON.parse(new TextDecoder().decode(json)) as GuestRequest;
  } catch (e) {
    throw new PlinthError('http', `the plug-in's HTTP request is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof request !== 'object' || request === null || typeof request.url !== 'string') {
    throw new PlinthError('http', 'the plug-in\'s HTTP request has no `url` string');
  }
  let url: URL;
  try {
    url = new URL(request.url);
  } catch {
    throw new PlinthError('http', `the plug-in's HTTP request has an invalid URL ${JSON.stringify(request.url)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new PlinthError('http', `the plug-in's HTTP request uses the scheme ${url.protocol}; only http and https are allowed`);
  }
  policy.check(url);
  return { request, url };
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  body: Uint8Array;
}

const MAX_REDIRECTS = 10;
/** Request headers that carry credentials: never sent to an origin the plug-in did not name. */
const CREDENTIAL_HEADERS = ['authorization', 'cookie', 'proxy-authorization'];
/** Request headers that describe a body: dropped with the body. */
const BODY_HEADERS = ['content-type', 'content-length', 'content-encoding', 'content-language', 'content-location', 'transfer-encoding'];

/**
 * Sends a checked request with `fetch`, reading at most `maxBytes` of the body. Redirects are
 * followed here, each hop checked against the policy as in the native runtime, without
 * credentials across origins and without the body after a 303 (or a 301/302 of a POST).
 * Asynchronous: a plug-in waits for it through JSPI.
 */
export async function send(request: GuestRequest, first: URL, body: Uint8Array | undefined, policy: HttpPolicy, maxBytes: number, signal?: AbortSignal): Promise<HttpResponse> {
  let url = first;
  let method = (request.method ?? 'GET').toUpperCase();
  let headers: Record<string, string> = { ...request.headers };
  let payload = body;
  for (let hop = 0; ; hop++) {
    let response: Response;
    try {
      response = await fetch(url, { method, headers, body: payload as Uint8Array<ArrayBuffer> | undefined, redirect: 'manual', signal });
    } catch (e) {
      throw new PlinthError('http', `HTTP request to ${url.host} failed: ${(e as Error).message}`, { cause: e });
    }
    if (response.type === 'opaqueredirect') {
      throw new PlinthError('http', `HTTP request to ${url.host} was redirected, and a browser hides where to, so the new host cannot be checked against allowed_hosts; request the final URL directly`);
    }
    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && response.status !== 304 && location !== null) {
      if (hop + 1 >= MAX_REDIRECTS) throw new PlinthError('http', `HTTP request to ${first.host} was redirected more than ${MAX_REDIRECTS} times`);
      await response.body?.cancel();
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        throw new PlinthError('http', `HTTP request to ${url.host} was redirected to an invalid URL ${JSON.stringify(location)}`);
      }
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw new PlinthError('http', `HTTP request to ${url.host} was redirected to the scheme ${next.protocol}; only http and https are allowed`);
      }
      policy.check(next);
      if (response.status === 303 || ((response.status === 301 || response.status === 302) && method === 'POST')) {
        method = method === 'HEAD' ? 'HEAD' : 'GET';
        payload = undefined;
        headers = Object.fromEntries(Object.entries(headers).filter(([k]) => !BODY_HEADERS.includes(k.toLowerCase())));
      }
      if (next.origin !== url.origin) {
        headers = Object.fromEntries(Object.entries(headers).filter(([k]) => !CREDENTIAL_HEADERS.includes(k.toLowerCase())));
      }
      url = next;
      continue;
    }
    const bytes = await readCapped(response, maxBytes, url);
    const out: Record<string, string> = {};
    response.headers.forEach((v, k) => {
      out[k] = v;
    });
    return { status: response.status, headers: out, body: bytes };
  }
}

/** The body, read until it would pass `maxBytes` (then the rest is not downloaded). */
async function readCapped(response: Response, maxBytes: number, url: URL): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = response.body?.getReader();
  if (reader === undefined) return new Uint8Array(0);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > maxBytes) {
        await reader.cancel();
        throw new PlinthError('http', `the HTTP response from ${url.host} is larger than memory.max_http_response_bytes (${maxBytes} bytes); raise the limit if the response is expected`);
      }
      chunks.push(value);
    }
  } catch (e) {
    if (e instanceof PlinthError) throw e;
    throw new PlinthError('http', `reading the HTTP response from ${url.host} failed: ${(e as Error).message}`, { cause: e });
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
