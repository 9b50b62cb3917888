// The trained example in headless Chromium: one click loads it, it samples, and its samples are
// digits. It runs on the page's CPU backend (no WebGPU adapter), as a visitor without WebGPU
// has it, and because mnist-small samples faster there than on software WebGPU. The judge is
// the tab's own quality measurement (MNIST's LeNet-5 features, as `eval`): the samples must lie
// among the test digits (precision), where an untrained model's noise does not.
//
//   node tests/browser/example.mjs   (after `trunk build --release`)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { launch, log, root, serve } from './harness.mjs';

const out = path.join(root, 'tests/browser/out');
fs.mkdirSync(out, { recursive: true });

const { server, base } = await serve();
const browser = await launch({ webgpu: false });
let failed = false;
const id = (name) => `[data-testid=${name}]`;

try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => log(`page error: ${e.message}`));
  const text = (name) => page.locator(id(name)).innerText();
  const QUALITY = 32, STEPS = 10;
  await page.goto(`${base}/?tiles=1&steps=${STEPS}&count=16&quality_every=0&quality_count=${QUALITY}&quality_steps=${STEPS}`);
  await page.waitForFunction((sel) => document.querySelector(sel)?.disabled === false, id('load-example'), { timeout: 300_000, polling: 250 });
  log(`ready: backend ${await text('backend')}`);

  // 1. One click: the model card says what was loaded.
  await page.click(id('load-example'));
  await page.waitForFunction((sel) => /^Loaded mnist-small\.safetensors\./.test(document.querySelector(sel).innerText), id('status'), { timeout: 120_000, polling: 250 });
  const card = await text('model-card');
  log(`model card: ${card}`);
  assert.match(card, /^mnist-small\.safetensors · 1\d{6} parameters/, 'the card names the example and its size');
  assert.match(card, /trained \d+ steps/);

  // 2. It samples: DDIM with STEPS steps, a grid of 16.
  const started = Date.now();
  await page.click(id('sample'));
  await page.waitForFunction((n) => new RegExp(`Sampling: ${n} DDIM steps in`).test(document.querySelector('[data-testid=status]').innerText), STEPS, { timeout: 300_000, polling: 250 });
  log(`${await text('status')} (${((Date.now() - started) / 1000).toFixed(0)} s with the page)`);
  const panel = page.locator('section.panel').filter({ has: page.locator(id('sample')) });
  await panel.screenshot({ path: path.join(out, 'example-samples.png') });

  // 3. Its samples are digits: in MNIST's classifier features they lie among the test digits.
  await page.click(id('measure-quality'));
  await page.waitForFunction((sel) => document.querySelector(sel).dataset.quality, id('quality'), { timeout: 600_000, polling: 500 });
  const q = JSON.parse(await page.locator(id('quality')).getAttribute('data-quality'));
  log(`quality: ${await text('quality')}`);
  // Natively (`tabdiffusion eval --count 32 --steps 10` on the same file, seed 0): see the
  // README's trained-example paragraph. An untrained mnist-small gives precision 0 and an FID
  // in the hundreds above the floor's.
  assert.ok(q.model.precision >= 0.5, `precision ${q.model.precision}`);
  assert.ok(q.model.fid < 3 * q.floor.fid, `FID ${q.model.fid} against the floor's ${q.floor.fid}`);
  log('trained example: all checks passed');
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  await browser.close();
  server.close();
}
process.exit(failed ? 1 : 0);
