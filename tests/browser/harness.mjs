// Shared by the browser scripts: serve dist/ on 127.0.0.1 and launch the system Chromium with
// WebGPU (SwiftShader), with the flags this closed network needs.
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dist = path.join(root, 'dist');

const TYPES = {
  '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css',
  '.png': 'image/png', '.json': 'application/json', '.bin': 'application/octet-stream',
};

/**
 * Serves `dist/` (built by `trunk build --release`) under `prefix` (a sub-path such as
 * `/some/sub/path`, as on a static host like GitHub Pages; anything outside it is a 404);
 * resolves to `{ server, origin, base }`, `base` being the site's address (origin + prefix).
 */
export function serve(prefix = '') {
  if (!fs.existsSync(path.join(dist, 'index.html'))) throw new Error('dist/ is missing: run `trunk build --release`');
  const server = http.createServer((req, res) => {
    let p = decodeURIComponent(new URL(req.url, 'http://localhost').pathname);
    if (!p.startsWith(`${prefix}/`)) { res.writeHead(404).end(); return; }
    p = p.slice(prefix.length);
    if (p.endsWith('/')) p += 'index.html';
    const file = path.join(dist, path.normalize(p));
    if (!file.startsWith(dist)) { res.writeHead(403).end(); return; }
    fs.readFile(file, (err, data) => {
      if (err) { res.writeHead(404).end(); return; }
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' }).end(data);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    const origin = `http://127.0.0.1:${server.address().port}`;
    resolve({ server, origin, base: `${origin}${prefix}` });
  }));
}

/**
 * Headless Chromium with WebGPU on SwiftShader (or, with `webgpu: false`, with no adapter).
 * `CHROMIUM_ARGS` adds flags, e.g. those that give it a hardware adapter (scripts/bench/gpu).
 * Every page of it, in every context, is watched for errors ([`expectErrors`]).
 */
export async function launch({ webgpu = true } = {}) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [
      '--headless=new', '--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', ...(webgpu ? ['--enable-unsafe-webgpu'] : []),
      ...(process.env.CHROMIUM_ARGS ?? '').split(' ').filter(Boolean),
    ],
  });
  watchBrowser(browser);
  return browser;
}

// Errors: an uncaught exception on a page (`pageerror`), or an error the app logs to the console
// of a page, of its training worker or of the service worker. Each one fails the script, unless
// it is noise that is not the app's (NOISE) or a test caused it on purpose and said so
// (`expectErrors`).

/** Not the app's: each with why it is not. */
const NOISE = [
  [/favicon\.ico/, 'Chromium asks for /favicon.ico by itself; the site has no icon, and the 404 is the browser\'s request, not the app\'s'],
  [/status of 404 \(Not Found\) \[[^\]]*\/data\/[\w-]+\/manifest\.json\]$/,
    'the Settings panel asks for every dataset\'s manifest, and a 404 is its answer "not on this site" (CIFAR-10 in a clone without ../shared); Chromium logs the 404 all the same'],
];

/** Every error seen that nothing allowed, in order ("where: what"). */
export const unexpectedErrors = [];
/** Allowances of a page: [{ pattern, reason, hits }]. */
const allowances = new WeakMap();
/**
 * Allows errors matching `expected` (`[[/regex/, 'reason'], …]`: as narrow as the test can say
 * what it provokes, and why) on `page` and its workers, until the returned function is called
 * (it logs how often each one was seen). The service worker's errors count for every page of its
 * context.
 */
export function expectErrors(page, expected) {
  const list = expected.map(([pattern, reason]) => {
    assert.ok(pattern instanceof RegExp && typeof reason === 'string' && reason.length > 0, 'expectErrors takes [regex, reason] pairs');
    return { pattern, reason, hits: 0 };
  });
  allowances.set(page, [...(allowances.get(page) ?? []), ...list]);
  return () => {
    allowances.set(page, (allowances.get(page) ?? []).filter((a) => !list.includes(a)));
    for (const a of list) log(`expected errors ${a.pattern} (${a.reason}): seen ${a.hits} times`);
  };
}

function report(state, pages, where, text) {
  if (state.closing) return; // a browser being closed ends its pages' work midway
  const line = `${where}: ${text}`;
  const noise = NOISE.find(([pattern]) => pattern.test(line));
  if (noise) {
    log(`ignored, not the app's (${noise[1]}): ${line}`);
    return;
  }
  const allowed = pages.flatMap((p) => allowances.get(p) ?? []).find((a) => a.pattern.test(line));
  if (allowed) {
    allowed.hits += 1;
    log(`expected (${allowed.reason}): ${line}`);
    return;
  }
  unexpectedErrors.push(line);
  log(`UNEXPECTED ${line}`);
}

const located = (m) => (m.location()?.url ? `${m.text()} [${m.location().url}]` : m.text());
const watched = new WeakSet();

function watchContext(state, context) {
  if (watched.has(context)) return;
  watched.add(context);
  // The context's console has its pages' messages and their workers', the service worker's too
  // (ConsoleMessage.worker); a service worker's message counts for every page of the context.
  context.on('console', (m) => {
    if (m.type() !== 'error') return;
    report(state, m.page() ? [m.page()] : context.pages(), m.worker() ? `worker ${m.worker().url()}` : 'console', located(m));
  });
  // Uncaught exceptions, the page's and its dedicated workers'.
  const watchPage = (page) => page.on('pageerror', (e) => report(state, [page], 'page error', e.stack ?? e.message));
  context.pages().forEach(watchPage);
  context.on('page', watchPage);
}

/** Watches every context of `browser`: those it has and those `newContext`/`newPage` make. */
function watchBrowser(browser) {
  const state = { closing: false };
  browser.contexts().forEach((context) => watchContext(state, context));
  const newContext = browser.newContext.bind(browser);
  browser.newContext = async (...args) => {
    const context = await newContext(...args);
    watchContext(state, context);
    return context;
  };
  // newPage makes a context of its own (not through `browser.newContext`): watch its page.
  const newPage = browser.newPage.bind(browser);
  browser.newPage = async (...args) => {
    const page = await newPage(...args);
    watchContext(state, page.context());
    return page;
  };
  const close = browser.close.bind(browser);
  browser.close = async (...args) => {
    state.closing = true;
    return close(...args);
  };
}

const t0 = Date.now();
export const log = (msg) => console.error(`[${((Date.now() - t0) / 1000).toFixed(0)} s] ${msg}`);

/** The float32 values of a .npy file (the tab's "Download samples", the CLI's `--out-npy`). */
export function readNpy(file) {
  const bytes = fs.readFileSync(file);
  const headerLen = bytes.readUInt16LE(8);
  const header = bytes.subarray(10, 10 + headerLen).toString();
  assert.match(header, /'descr': '<f4'/);
  const data = bytes.subarray(10 + headerLen);
  return new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length));
}

/**
 * Runs one browser test script: serves dist/ under `prefix`, launches Chromium (`webgpu` as in
 * `launch`), runs `body({ browser, base })`, closes both whatever happens, and exits with 1 if
 * the body threw (its error printed) or any page of any browser it launched had an error that
 * nothing allowed (`expectErrors`), else 0.
 */
export async function run(body, { prefix = '', webgpu = true } = {}) {
  const { server, base } = await serve(prefix);
  const browser = await launch({ webgpu });
  let failed = false;
  try {
    await body({ browser, base });
  } catch (e) {
    failed = true;
    console.error(e);
  } finally {
    await browser.close();
    server.close();
  }
  if (unexpectedErrors.length > 0) {
    failed = true;
    console.error(`FAILED: ${unexpectedErrors.length} unexpected errors on the pages:\n${unexpectedErrors.map((e) => `  ${e}`).join('\n')}`);
  }
  process.exit(failed ? 1 : 0);
}
