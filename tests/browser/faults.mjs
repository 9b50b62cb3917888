// When things go wrong in the tab, in headless Chromium with real WebGPU (SwiftShader): each
// case shows a message in words and loses nothing that was saved.
//
//   1. Two tabs on one saved run: the first holds it (Web Locks); the second says so, samples
//      read-only, and takes the run over, and the first saves and lets go at the same step.
//   2. A lost GPU: the GPUDevice is destroyed for real (wgpu's `destroy`, by the test-only URL
//      flag `test_lose_gpu_at`); the page says the GPU was lost, and a reload resumes the save.
//   3. A panic in the worker (test-only `test_panic_at`): the page says what the worker was
//      doing and offers a reload, which resumes the save.
//   4. A full storage quota (Chromium's own quota, lowered through the DevTools protocol): the
//      save fails in words, the previous save stays whole, and a reload resumes it.
//   5. A batch larger than the adapter's largest storage buffer holds: the tab trains on the
//      largest batch that fits, and says so.
//
//   node tests/browser/faults.mjs [name]   (after `trunk build --release`)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { expectErrors, launch, log, root, serve, unexpectedErrors } from './harness.mjs';

const out = path.join(root, 'tests/browser/out');
fs.mkdirSync(out, { recursive: true });
const { server, origin } = await serve();
const browser = await launch();
let failed = false;

// A tiny model on one tile, batch 4, no previews, two-step sampling: software WebGPU is slow.
const url = (extra = '') => `${origin}/?model=tiny&tiles=1&batch=4&preview_every=1000&steps=2&count=4&${extra}`;

/** A tab with the helpers the cases use. */
async function tab(context, name) {
  const page = await context.newPage();
  page.setDefaultTimeout(600_000);
  const text = (id) => page.locator(`[data-testid=${id}]`).innerText();
  const waitFor = (fn, arg, timeout = 300_000) => page.waitForFunction(fn, arg, { timeout, polling: 250 });
  const ready = () => waitFor(() => document.querySelector('[data-testid=sample]')?.disabled === false, null, 300_000);
  const untilStep = (n) => waitFor((n) => Number(document.querySelector('[data-testid=step]').innerText) >= n
    || (document.querySelector('[data-testid=error]')?.innerText ?? '') !== '', n, 600_000)
    .then(async () => { const e = await text('error'); if (e) throw new Error(`${name}: training stopped: ${e}`); });
  const errorMatches = (re) => waitFor((source) => new RegExp(source).test((document.querySelector('[data-testid=error]')?.innerText ?? '')), re.source);
  return { page, text, waitFor, ready, untilStep, errorMatches };
}

// `node tests/browser/faults.mjs GPU` runs only the cases whose name contains "GPU".
const only = process.argv[2];

async function scenario(name, run) {
  if (only && !name.includes(only)) return;
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const errorsBefore = unexpectedErrors.length;
  try {
    await run(context);
    // Every page of the case was watched (harness.mjs): an error it did not expect fails it.
    const errors = unexpectedErrors.slice(errorsBefore);
    assert.deepEqual(errors, [], `${name}: errors on the pages that the case did not provoke`);
    log(`${name}: passed`);
  } catch (e) {
    failed = true;
    console.error(`${name}: FAILED`, e);
    for (const [i, page] of context.pages().entries()) {
      const read = (id) => page.locator(`[data-testid=${id}]`).textContent().catch(() => '?');
      log(`  tab ${i}: step ${await read('step')}; status: ${await read('status')}; error: ${await read('error')} [${await read('error-detail')}]`);
      await page.screenshot({ path: path.join(out, `faults-failed-${name.replace(/\W+/g, '-')}-${i}.png`) }).catch(() => {});
    }
  } finally {
    await context.close();
  }
}

try {
  await scenario('two tabs', async (context) => {
    const a = await tab(context, 'tab A');
    await a.page.goto(url());
    await a.ready();
    assert.equal(await a.page.locator('[data-testid=take-over]').isVisible(), false, 'the first tab holds the run');
    await a.page.click('[data-testid=train]');
    await a.untilStep(2);

    // The second tab: told, read-only (no Train, no Reset), and it can sample.
    const b = await tab(context, 'tab B');
    await b.page.goto(url());
    await b.ready();
    assert.match(await b.text('holder'), /open in another tab/);
    assert.ok(await b.page.locator('[data-testid=train]').isDisabled(), 'tab B cannot train the run tab A holds');
    assert.ok(await b.page.locator('[data-testid=reset]').isDisabled(), 'nor remove it');
    await b.page.click('[data-testid=sample]');
    await b.waitFor(() => /Sampling: \d+ DDIM steps in/.test(document.querySelector('[data-testid=status]').innerText));
    await b.page.screenshot({ path: path.join(out, 'faults-second-tab.png') });
    log(`tab B: ${await b.text('holder')}`);

    // Take over: tab A saves and lets go; tab B continues from that very step.
    assert.equal(await a.text('error'), '', 'tab A trained on meanwhile');
    await b.page.click('[data-testid=take-over]');
    await b.waitFor(() => /holds the run now/.test(document.querySelector('[data-testid=status]').innerText));
    await a.waitFor(() => /now open in another tab/.test(document.querySelector('[data-testid=holder]').innerText));
    const handedAt = Number(await a.text('step'));
    assert.ok(handedAt >= 2);
    assert.equal(await a.text('saved-step'), `saved at step ${handedAt}`, 'tab A saved as it let go');
    assert.equal(Number(await b.text('step')), handedAt, 'tab B continues where tab A stopped: nothing lost');
    assert.ok(await a.page.locator('[data-testid=train]').isDisabled(), 'tab A no longer trains');
    log(`tab A handed the run over at step ${handedAt}: ${await a.text('status')}`);
    await b.page.click('[data-testid=train]');
    await b.untilStep(handedAt + 1);
    await b.page.click('[data-testid=pause]');
    await b.waitFor(() => /Paused at step/.test(document.querySelector('[data-testid=status]').innerText));
  });

  await scenario('lost GPU, then a crashed worker', async (context) => {
    const t = await tab(context, 'lost GPU');
    await t.page.goto(url('autosave=1&test_lose_gpu_at=2'));
    await t.ready();
    await t.page.click('[data-testid=train]');
    await t.errorMatches(/GPU was lost/);
    await new Promise((r) => setTimeout(r, 3000));
    assert.match(await t.text('error'), /GPU was lost/, 'and it stays said (what fails after the loss fails because of it)');
    await t.page.screenshot({ path: path.join(out, 'faults-lost-gpu.png') });
    log(`lost GPU: ${await t.text('error')} [${await t.page.locator('[data-testid=error-detail]').textContent()}]`);
    assert.ok(await t.page.locator('[data-testid=error-reload]').isVisible(), 'a reload is offered');
    assert.equal(await t.text('saved-step'), 'saved at step 2');
    await t.page.goto(url('autosave=1'));
    await t.ready();
    await t.waitFor(() => /Resumed your saved run at step 2/.test(document.querySelector('[data-testid=status]').innerText));

    // A panic in step 3 ends the worker; the page says what it was doing.
    await t.page.goto(url('autosave=1&test_panic_at=3'));
    await t.ready();
    const panicked = expectErrors(t.page, [
      [/\?test_panic_at=3: a panic injected in training step 3/, 'the case injects this panic, and console_error_panic_hook logs it'],
      [/^page error: RuntimeError: unreachable/, 'the injected panic ends the worker\'s wasm with a trap'],
    ]);
    await t.page.click('[data-testid=train]');
    await t.errorMatches(/crashed while training step 3/);
    assert.match(await t.page.locator('[data-testid=error-detail]').textContent(), /test_panic_at=3/);
    assert.ok(await t.page.locator('[data-testid=error-reload]').isVisible(), 'a reload is offered');
    log(`panic: ${await t.text('error')}`);
    await t.page.click('[data-testid=error-reload]');
    await t.ready();
    // The reload keeps the URL (with its flag); the resumed run is at the last save, step 2.
    await t.waitFor(() => /Resumed your saved run at step 2/.test(document.querySelector('[data-testid=status]').innerText));
    panicked();
  });

  await scenario('full storage', async (context) => {
    const t = await tab(context, 'full storage');
    await t.page.goto(url());
    await t.ready();
    await t.page.click('[data-testid=train]');
    await t.untilStep(1);
    await t.page.click('[data-testid=pause]');
    await t.waitFor(() => /Paused at step \d+ \(saved/.test(document.querySelector('[data-testid=status]').innerText));
    const saved = Number(await t.text('step'));
    // Chromium's own quota for this origin, lowered below what is stored: the next write fails.
    const cdp = await context.newCDPSession(t.page);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: 1024 });
    await t.page.click('[data-testid=train]');
    await t.waitFor((n) => Number(document.querySelector('[data-testid=step]').innerText) > n, saved);
    await t.page.click('[data-testid=pause]');
    await t.errorMatches(/storage for this page is full/);
    log(`full storage: ${await t.text('error')} [${await t.page.locator('[data-testid=error-detail]').textContent()}]`);
    assert.match(await t.text('error'), new RegExp(`previous save, at step ${saved}, is kept whole`));
    await t.page.screenshot({ path: path.join(out, 'faults-full-storage.png') });
    await cdp.send('Storage.overrideQuotaForOrigin', { origin });
    await t.page.goto(url());
    await t.ready();
    await t.waitFor((n) => document.querySelector('[data-testid=status]').innerText.includes(`Resumed your saved run at step ${n}.`), saved);
  });

  await scenario('a batch larger than the GPU holds', async (context) => {
    // 20,000 tiny images pass our own check_batch (2^31 values at once), but their 14×14
    // attention's 196² scores (154 KB an image) need more than SwiftShader's largest storage
    // buffer (1 GiB: 6,987 images fit): the tab trains on the largest batch that fits, and says
    // so, before any kernel runs.
    const t = await tab(context, 'large batch');
    await t.page.goto(`${origin}/?model=tiny&tiles=1&batch=20000&preview_every=1000`);
    await t.ready();
    const banner = await t.text('banner');
    log(`large batch: ${banner}`);
    const fits = Number(/takes at most (\d+) images per step of tiny/.exec(banner)?.[1]);
    assert.ok(fits > 0 && fits < 20000, banner);
    assert.match(banner, new RegExp(`trains on batches of ${fits}, not 20000`));
    assert.equal(await t.page.locator('[data-testid=batch]').inputValue(), `${fits}`, 'the settings panel shows the batch the run trains with');
    assert.match(await t.text('model-card'), new RegExp(`batch ${fits},`), 'and so does the model card');
  });
} finally {
  await browser.close();
  server.close();
}
log(failed ? 'fault tests FAILED' : 'fault tests passed');
process.exit(failed ? 1 : 0);
