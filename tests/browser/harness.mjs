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
 * `CHROMIUM_ARGS` adds flags, e.g. those that give it a hardware adapter (scripts/gpu-bench).
 */
export function launch({ webgpu = true } = {}) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [
      '--headless=new', '--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', ...(webgpu ? ['--enable-unsafe-webgpu'] : []),
      ...(process.env.CHROMIUM_ARGS ?? '').split(' ').filter(Boolean),
    ],
  });
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
 * the body threw (its error printed), else 0.
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
  process.exit(failed ? 1 : 0);
}
