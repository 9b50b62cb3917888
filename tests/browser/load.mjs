// Opening the page, as a first-time visitor does, from a sub-path of a static host: the wasm
// is within its size budget; a light page shell with a progress bar shows before any wasm runs,
// and the download's progress in bytes; a failed download says what failed and offers a retry;
// the page trains; then, with the network off, a reload still opens the app, resumes the saved
// run at the step it was paused at, and trains (the service worker's offline copy).
//
//   node tests/browser/load.mjs   (after `trunk build --release`)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { expectErrors, log, root, run } from './harness.mjs';

const out = path.join(root, 'tests/browser/out');
fs.mkdirSync(out, { recursive: true });

// 1. The deployed module against the budget (tests/browser/wasm-budget.json, README "Size").
const budget = JSON.parse(fs.readFileSync(path.join(root, 'tests/browser/wasm-budget.json'), 'utf8'));
const wasm = fs.readFileSync(path.join(root, 'dist/tabdiffusion_bg.wasm'));
const gzipped = zlib.gzipSync(wasm, { level: 9 }).length;
log(`wasm: ${wasm.length} bytes, ${gzipped} gzipped (gzip -9); budget ${budget.raw_bytes} and ${budget.gzip_bytes}`);
assert.ok(wasm.length <= budget.raw_bytes, `the wasm grew past its budget: ${wasm.length} > ${budget.raw_bytes} bytes`);
assert.ok(gzipped <= budget.gzip_bytes, `the gzipped wasm grew past its budget: ${gzipped} > ${budget.gzip_bytes} bytes`);

const ready = (page) => page.waitForFunction(() => document.querySelector('[data-testid=train]')?.disabled === false, null, { timeout: 300_000, polling: 250 });
const text = (page, id) => page.locator(`[data-testid=${id}]`).innerText();
const untilStep = (page, n) => page.waitForFunction((n) => Number(document.querySelector('[data-testid=step]')?.innerText) >= n || document.querySelector('[data-testid=error]')?.innerText, n, { timeout: 600_000, polling: 250 });

await run(async ({ browser, base }) => {
  // 2. A failed download: the shell says what failed and offers a retry.
  {
    const context = await browser.newContext();
    const page = await context.newPage();
    expectErrors(page, [[/tabdiffusion_bg\.wasm.*ERR_INTERNET_DISCONNECTED|ERR_INTERNET_DISCONNECTED.*tabdiffusion_bg\.wasm/, 'the test cuts the wasm download off']]);
    await page.route('**/tabdiffusion_bg.wasm', (route) => route.abort('internetdisconnected'));
    await page.goto(`${base}/`);
    await page.locator('[data-testid=load-retry]').waitFor({ state: 'visible', timeout: 60_000 });
    log(`failed download: ${await text(page, 'load-status')}`);
    assert.match(await text(page, 'load-status'), /Could not load the app/);
    await page.screenshot({ path: path.join(out, 'load-failed.png') });
    await context.close();
  }

  // 3. The first visit: the shell paints before the wasm arrives, then shows bytes arriving.
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  await page.addInitScript(() => {
    window.loadTexts = [];
    document.addEventListener('DOMContentLoaded', () => {
      const status = document.getElementById('load-status');
      if (status) new MutationObserver(() => window.loadTexts.push(status.textContent)).observe(status, { childList: true, characterData: true, subtree: true });
    });
  });
  let release;
  const held = new Promise((r) => { release = r; });
  await page.route('**/tabdiffusion_bg.wasm', async (route) => { await held; await route.continue(); });
  await page.goto(`${base}/?model=tiny&batch=4&tiles=1&preview_every=1000`, { waitUntil: 'domcontentloaded' });
  await page.locator('[data-testid=load-progress]').waitFor({ state: 'visible' });
  await page.screenshot({ path: path.join(out, 'load-shell.png') });
  const shell = await text(page, 'load-status');
  log(`before the wasm: "${shell}"`);
  assert.match(shell, /Starting|Downloading the app/);
  assert.equal(await page.locator('h1').innerText(), 'Diffusion in a tab');
  release();
  await ready(page);
  await page.unroute('**/tabdiffusion_bg.wasm');
  const texts = await page.evaluate(() => window.loadTexts);
  log(`progress: ${texts.filter((t) => /of/.test(t)).slice(-2).join(' | ')}`);
  assert.ok(texts.some((t) => /Downloading the app: [\d.]+ of [\d.]+ MB/.test(t)), `byte progress shown: ${texts.join(' | ')}`);
  const mb = (wasm.length / 1e6).toFixed(1);
  assert.ok(texts.every((t) => !/ of [\d.]+ MB/.test(t) || t.includes(` of ${mb} MB`)), `the progress counts to the wasm's size, ${mb} MB: ${texts.join(' | ')}`);
  assert.equal(await page.locator('#shell').count(), 0, 'the shell is gone once the app runs');
  assert.ok(await page.evaluate(() => navigator.serviceWorker.controller !== null), 'the offline copy controls the page');
  // The worker, served by the offline copy, still trains with the address's settings.
  assert.match(await text(page, 'model-card'), /batch 4,/, 'the worker uses the address\'s batch size');
  await page.click('[data-testid=train]');
  await untilStep(page, 2);
  assert.equal(await text(page, 'error'), '');
  await page.click('[data-testid=pause]');
  await page.waitForFunction(() => /Paused/.test(document.querySelector('[data-testid=status]').innerText), null, { timeout: 300_000 });
  const step = Number(await text(page, 'step'));
  log(`online: trained to step ${step}`);

  // 4. The second visit, offline: the app and the data come from the offline copy.
  await context.setOffline(true);
  await page.reload();
  await ready(page);
  // The saved run (saved on Pause) resumed, at the step it was paused at.
  await page.waitForFunction((step) => document.querySelector('[data-testid=status]').innerText.startsWith(`Resumed your saved run at step ${step}.`), step, { timeout: 60_000, polling: 250 })
    .catch(async () => assert.fail(`offline, the saved run must resume at step ${step}; the status says: ${await text(page, 'status')}`));
  assert.equal(Number(await text(page, 'step')), step, 'the step counter shows the resumed step');
  log(`offline reload: ${await text(page, 'status')}; ${await text(page, 'images-loaded')} images`);
  assert.match(await text(page, 'model-card'), /batch 4,/);
  await page.click('[data-testid=train]');
  await untilStep(page, step + 2);
  assert.equal(await text(page, 'error'), '', 'trains offline');
  log(`offline: trained to step ${await text(page, 'step')}`);
  await page.screenshot({ path: path.join(out, 'load-offline.png') });
  await context.close();
  log('load test passed');
}, { prefix: '/some/sub/path' });
