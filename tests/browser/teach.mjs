// The page teaches what it trains: the training panel's equation is the loss of the model in
// the worker — its target (ε, v or x₀), its min-SNR weight and its schedule's ᾱ_t — for every
// objective the address can ask for, and it follows an imported model's own scheduler config;
// the loss chart's axis names that loss. Every equation fits its panel at 1280 px, and on a
// 390 px phone the page never scrolls sideways. Nothing trains: the worker's model card, sent
// before the page is ready, is all it needs.
//
//   node tests/browser/teach.mjs   (after `trunk build --release`)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { log, root, run } from './harness.mjs';

const out = path.join(root, 'tests/browser/out');
fs.mkdirSync(out, { recursive: true });

const ready = (page) => page.waitForFunction(() => document.querySelector('[data-testid=train]')?.disabled === false, null, { timeout: 300_000, polling: 250 });
const text = (page, id) => page.locator(`[data-testid=${id}]`).innerText();
const objective = (page) => page.locator('[data-testid=training-equation]').getAttribute('data-objective');

/** The training equation's text, as its MathML reads without markup ("∇θwt‖vt−vθ(…"; a square root's sign is drawn, not written). */
const equation = (page) => page.locator('[data-testid=training-equation]').evaluate((e) => e.textContent.replace(/\s+/g, ''));

/** The loss's name as src/diffusion/objective.rs (Objective::loss_name) writes it. */
const lossName = (prediction, minSnr) => `${minSnr ? `min-SNR-${minSnr}-weighted ` : ''}${{ epsilon: 'ε', v: 'v', sample: 'x₀' }[prediction]}-loss`;

/** What the equation must hold for an objective: its target against the network's output, the weight in its target's form, ᾱ_t's definition. */
function checkEquation(eq, { prediction, minSnr, schedule, zeroSnr = 0 }) {
  const key = `${prediction}, min-SNR ${minSnr}, ${schedule}`;
  const regression = { epsilon: '‖ε−εθ(', v: '‖vt−vθ(', sample: '‖x0−xθ(' }[prediction];
  assert.ok(eq.includes(regression), `${key}: the target ${regression} in ${eq}`);
  assert.equal(eq.includes('vt=ᾱtε−1−ᾱtx0'), prediction === 'v', `${key}: v is defined where it is the target: ${eq}`);
  assert.equal(eq.startsWith('∇θwt'), minSnr > 0, `${key}: the weight w_t in the loss: ${eq}`);
  if (minSnr) {
    // src/diffusion/forward.rs min_snr_weights: min(SNR, γ)/SNR for ε, /(SNR + 1) for v, itself for x₀.
    const clipped = `min(SNR(t),${minSnr})`;
    const weight = { epsilon: `wt=${clipped}SNR(t),`, v: `wt=${clipped}SNR(t)+1,`, sample: `wt=${clipped},` }[prediction];
    assert.ok(eq.includes(weight), `${key}: the weight ${weight} in ${eq}`);
  } else {
    assert.ok(!eq.includes('min('), `${key}: no weight: ${eq}`);
  }
  if (schedule === 'cosine') assert.ok(eq.includes('ᾱt=f(t)f(0)') && eq.includes('cos2') && eq.includes('0.008'), `${key}: the cosine ᾱ_t: ${eq}`);
  else assert.ok(eq.includes('ᾱt=∏') && eq.includes('0.0001') && eq.includes('0.02'), `${key}: the linear β product: ${eq}`);
  assert.equal(eq.includes('←'), zeroSnr === 1, `${key}: the zero terminal SNR rescaling`);
}

/** Elements (tag, test id or class, right edge) that stick out past `limit` px. */
const overflowing = (page) => page.evaluate(() => [...document.querySelectorAll('body *')]
  .filter((e) => { const r = e.getBoundingClientRect(); return r.width > 0 && r.right > window.innerWidth + 0.5; })
  .slice(0, 8).map((e) => `${e.tagName.toLowerCase()}${e.dataset.testid ? `[${e.dataset.testid}]` : e.className ? `.${e.className}` : ''} to ${Math.round(e.getBoundingClientRect().right)}`));

/** Every shown `math` whose right edge passes its panel's (a section, the settings, the page). */
const mathOutsidePanels = (page) => page.evaluate(() => [...document.querySelectorAll('math')]
  .map((m) => {
    const r = m.getBoundingClientRect();
    const panel = m.closest('section, details, main').getBoundingClientRect();
    return { text: m.textContent.slice(0, 40), right: Math.round(r.right), panel: Math.round(panel.right), width: r.width };
  })
  .filter((m) => m.width > 0 && m.right > m.panel + 0.5));

await run(async ({ browser, base }) => {
  const started = Date.now();
  // (a) Every objective the address sets; a new context each, so that no saved run is resumed.
  // The default (v, min-SNR-5, cosine) is kept open for the layout checks.
  let defaultPage;
  for (const prediction of ['epsilon', 'v', 'sample']) {
    for (const minSnr of [0, 5]) {
      for (const schedule of ['linear', 'cosine']) {
        const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
        const page = await context.newPage();
        page.on('pageerror', (e) => log(`page error: ${e.message}`));
        await page.goto(`${base}/?model=tiny&tiles=1&prediction=${prediction}&min_snr=${minSnr}&schedule=${schedule}`);
        await ready(page);
        const want = { prediction, minSnr, schedule };
        assert.equal(await objective(page), `prediction=${prediction} min_snr=${minSnr} schedule=${schedule} zero_snr=0`);
        checkEquation(await equation(page), want);
        const name = lossName(prediction, minSnr);
        assert.match(await page.locator('[data-testid=loss-axis]').textContent(), new RegExp(`^\\s*${name} `), 'the loss chart names the loss');
        assert.ok((await text(page, 'model-card')).includes(`trains the ${name} on the ${schedule === 'cosine' ? 'cosine ᾱ' : 'linear β'}`), `the model card says the same: ${await text(page, 'model-card')}`);
        const note = await text(page, 'training-note');
        if (prediction === 'epsilon' && !minSnr && schedule === 'linear') assert.match(note, /^This is Algorithm 1 of Ho et al\. 2020/);
        else assert.match(note, /^Algorithm 1 of Ho et al\. 2020 regresses ε with weight 1 on the linear β schedule .*; this run /);
        // (c) At 1280 px each equation ends inside its panel.
        assert.deepEqual(await mathOutsidePanels(page), [], `${name}, ${schedule}: equations past their panel's edge at 1280 px`);
        log(`${prediction}, min-SNR ${minSnr}, ${schedule}: "${name}"; ${note.slice(Math.max(0, note.indexOf('this run')), Math.max(0, note.indexOf('this run')) + 100)}…`);
        if (prediction === 'v' && minSnr === 5 && schedule === 'cosine') defaultPage = page;
        else await context.close();
      }
    }
  }

  // Zero terminal SNR (?zero_snr=1): the rescaling of ᾱ_t is written too.
  {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await page.goto(`${base}/?model=tiny&tiles=1&prediction=sample&min_snr=0&schedule=linear&zero_snr=1`);
    await ready(page);
    assert.equal(await objective(page), 'prediction=sample min_snr=0 schedule=linear zero_snr=1');
    checkEquation(await equation(page), { prediction: 'sample', minSnr: 0, schedule: 'linear', zeroSnr: 1 });
    assert.match(await text(page, 'training-note'), /zero terminal SNR, Lin et al\. 2024\)\.$/);

    // The equation is the worker's model's, not the address's: an imported diffusers folder with
    // its own scheduler config (x₀ on the cosine schedule) changes it.
    const folder = path.join(root, 'tests/fixtures/diffusers/unet_a');
    await page.setInputFiles('[data-testid=import]', [
      { name: 'config.json', mimeType: 'application/json', buffer: fs.readFileSync(path.join(folder, 'config.json')) },
      { name: 'scheduler_config.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify({ prediction_type: 'v_prediction', beta_schedule: 'squaredcos_cap_v2' })) },
    ]);
    await page.waitForFunction(() => document.querySelector('[data-testid=training-equation]')?.dataset.objective.startsWith('prediction=v '), null, { timeout: 120_000 });
    assert.equal(await objective(page), 'prediction=v min_snr=0 schedule=cosine zero_snr=0', 'the imported model\'s target and schedule, the run\'s weighting');
    checkEquation(await equation(page), { prediction: 'v', minSnr: 0, schedule: 'cosine' });
    log(`imported a diffusers config (v, cosine) over ?prediction=sample&schedule=linear: ${await objective(page)}`);
    await context.close();
  }

  // (b) A phone: the default objective (the longest equations), 390 × 844; the page never
  // scrolls sideways, before and after the sampling panel shows DPM-Solver++.
  const page = defaultPage;
  await page.screenshot({ path: path.join(out, 'teach-1280.png'), fullPage: true });
  await page.locator('section.panel').nth(1).screenshot({ path: path.join(out, 'teach-training-1280.png') });
  await page.setViewportSize({ width: 390, height: 844 });
  const sideways = () => page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth }));
  let width = await sideways();
  assert.ok(width.scroll <= width.inner, `at 390 px the page is ${width.scroll} px wide: ${(await overflowing(page)).join(', ')}`);
  await page.selectOption('[data-testid=sampler]', 'dpm-solver');
  await page.locator('[data-testid=sampler]').scrollIntoViewIfNeeded();
  width = await sideways();
  assert.ok(width.scroll <= width.inner, `at 390 px with DPM-Solver++ the page is ${width.scroll} px wide: ${(await overflowing(page)).join(', ')}`);
  assert.deepEqual(await mathOutsidePanels(page), [], 'equations past their panel\'s edge at 390 px');
  await page.screenshot({ path: path.join(out, 'teach-390.png'), fullPage: true });
  await page.locator('section.panel').nth(1).screenshot({ path: path.join(out, 'teach-training-390.png') });
  log(`390 px: the page is ${width.scroll} px wide, the window ${width.inner}`);
  log(`teach test passed in ${((Date.now() - started) / 1000).toFixed(0)} s`);
});
