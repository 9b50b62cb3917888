// The trained example in headless Chromium: one click loads it beside the run's own model, it
// samples in the Sampling panel, and its samples are digits. It runs on the page's CPU backend
// (no WebGPU adapter), as a visitor without WebGPU has it, and because mnist-small samples
// faster there than on software WebGPU.
//
// Digits, in two steps: the tab's samples are the native CLI's for the same file, seed and
// sampler (to float tolerance), and `tests/example.rs` shows that the native samples are
// digits to MNIST's classifier. Here, directly: most samples look like MNIST images (mostly
// black background with some bright strokes), which the untrained model's do not.
//
//   node tests/browser/example.mjs   (after `trunk build --release`; TABDIFFUSION_BIN = native CLI)
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { log, readNpy, root, run } from './harness.mjs';

const bin = process.env.TABDIFFUSION_BIN;
assert.ok(bin && fs.existsSync(bin), 'set TABDIFFUSION_BIN to the native tabdiffusion binary');
const out = path.join(root, 'tests/browser/out');
fs.mkdirSync(out, { recursive: true });

const id = (name) => `[data-testid=${name}]`;
const SEED = 3, STEPS = 10, COUNT = 16, SIZE = 28 * 28;

/**
 * How many of the images look like MNIST digits: at least 60% background (below −0.8, black)
 * and at least 3% strokes (above 0.5). MNIST's test digits have 82% background and 11% strokes
 * on average, and 99.3% of them pass (measured on www/data/mnist/test-0.png); Gaussian noise
 * clipped to [−1, 1] has 21% below −0.8, and none of 1,000 such images passes.
 */
function digitLike(values) {
  return shares(values).filter(([background, strokes]) => background >= 0.6 && strokes >= 0.03).length;
}

/** Each image's share of background (below −0.8) and of strokes (above 0.5). */
function shares(values) {
  const out = [];
  for (let i = 0; i < values.length / SIZE; i++) {
    const image = values.subarray(i * SIZE, (i + 1) * SIZE);
    const share = (test) => image.filter(test).length / SIZE;
    out.push([share((v) => v < -0.8), share((v) => v > 0.5)]);
  }
  return out;
}

await run(async ({ browser, base }) => {
  const page = await browser.newPage();
  const text = (name) => page.locator(id(name)).innerText();
  // The worker takes commands in order, so the download holds the samples just asked for.
  const sample = async (file, what) => {
    await page.click(id('sample'));
    await page.waitForFunction((sel) => !document.querySelector(sel).disabled, id('download-samples'), { timeout: 300_000, polling: 250 });
    const [download] = await Promise.all([page.waitForEvent('download', { timeout: 300_000 }), page.click(id('download-samples'))]);
    await download.saveAs(path.join(out, file));
    log(await text('status'));
    assert.match(await text('status'), new RegExp(`^${what}: ${STEPS} DDIM steps in`));
    return readNpy(path.join(out, file));
  };
  await page.goto(`${base}/?tiles=1&steps=${STEPS}&count=${COUNT}&seed=${SEED}`);
  await page.waitForFunction((sel) => document.querySelector(sel)?.disabled === false, id('load-example'), { timeout: 300_000, polling: 250 });
  log(`ready: backend ${await text('backend')}`);
  assert.equal(await page.locator(id('sample-from')).isVisible(), false, 'nothing to choose before the example is loaded');

  // 1. One click loads it beside the run's model, and the Sampling panel picks it.
  await page.click(id('load-example'));
  await page.waitForFunction((sel) => /^Loaded the trained example/.test(document.querySelector(sel).innerText), id('status'), { timeout: 120_000, polling: 250 });
  log(await text('status'));
  assert.equal(await page.locator(id('sample-from')).inputValue(), 'example');
  assert.match(await text('model-card'), /^mnist-small · /, 'the run\'s own model is still the fresh preset');

  // 2. It samples, as the CLI samples the same file.
  const tab = await sample('example-tab.npy', 'Sampling the trained example');
  assert.ok(await page.locator(id('sampled')).evaluate((c) => c.width > 0), 'the Sampling panel shows the grid');
  const panel = page.locator('section.panel').filter({ has: page.locator(id('sampled')) });
  await panel.screenshot({ path: path.join(out, 'example-samples.png') });
  execFileSync(bin, ['sample', '--model', path.join(root, 'www/examples/mnist-small.safetensors'), '--sampler', 'ddim', '--steps', `${STEPS}`,
    '--eta', '0', '--seed', `${SEED}`, '--count', `${COUNT}`, '--out', path.join(out, 'example-native.png'),
    '--out-npy', path.join(out, 'example-native.npy')], { stdio: 'inherit' });
  const native = readNpy(path.join(out, 'example-native.npy'));
  assert.equal(tab.length, COUNT * SIZE);
  let maxDiff = 0;
  for (let i = 0; i < tab.length; i++) maxDiff = Math.max(maxDiff, Math.abs(tab[i] - native[i]));
  log(`tab vs native, ${tab.length} values: max |difference| ${maxDiff.toExponential(2)}`);
  assert.ok(maxDiff < 1e-3, `the tab and the CLI must give the same samples (max difference ${maxDiff})`);

  // 3. They look like digits; the untrained run's samples, from the same noise, do not.
  const digits = digitLike(tab);
  await page.selectOption(id('sample-from'), 'run');
  const untrained = await sample('example-untrained.npy', 'Sampling');
  const fresh = digitLike(untrained);
  const backgrounds = shares(untrained).map(([b]) => b);
  log(`digit-like: ${digits} of ${COUNT} samples of the example, ${fresh} of the untrained model's; the untrained samples' background shares ${Math.min(...backgrounds).toFixed(3)} to ${Math.max(...backgrounds).toFixed(3)}, strokes ${shares(untrained).map(([, s]) => s.toFixed(3)).join(' ')}`);
  assert.ok(digits >= 0.75 * COUNT, `${digits} of ${COUNT} of the example's samples look like digits`);
  // None, as the README says: the untrained model (weights from seed 3, the same noise each run)
  // gives mid-grey noise, 15% to 20% of each sample's pixels dark enough for background where a
  // digit needs 60% (measured; the same numbers every run, since weights and noise are seeded).
  assert.equal(fresh, 0, `${fresh} of ${COUNT} of an untrained model's samples look like digits`);
  log('trained example: all checks passed');
}, { webgpu: false });
