// The app in headless Chromium with real WebGPU (SwiftShader), one section per panel, each
// keeping a screenshot in tests/browser/out: without WebGPU the CPU fallback trains a step; the
// forward slider changes x_t; a tiny model trains the default objective on MNIST tiles in the
// worker while the page's longest task stays under 100 ms, and its loss on a fixed batch falls;
// each sampler draws its grid and trajectory; the exported weights sample natively
// to the same image; bad weights get a message and change nothing; a diffusers model folder
// imports, samples with DPM-Solver++ as the CLI does, and refuses to train on data of another
// shape. Fashion-MNIST, CIFAR-10 and the user's own images load.
//
//   node tests/browser/e2e.mjs   (after `trunk build --release`; TABDIFFUSION_BIN = native CLI)
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { launch, log, readNpy, root, run } from './harness.mjs';

const out = path.join(root, 'tests/browser/out');
const bin = process.env.TABDIFFUSION_BIN;
assert.ok(bin && fs.existsSync(bin), 'set TABDIFFUSION_BIN to the native tabdiffusion binary');
fs.mkdirSync(out, { recursive: true });

// The site is served from a sub-path, as a static host serves a project's pages
// (https://user.github.io/tabdiffusion/): nothing may be requested from the host's root.
await run(async ({ browser, base: origin }) => {
  // 0. Without a WebGPU adapter the page says so, falls back to the CPU backend and trains there.
  {
    const cpu = await launch({ webgpu: false });
    try {
      const page = await cpu.newPage();
      page.setDefaultTimeout(180_000);
      await page.goto(`${origin}/?model=tiny&tiles=1&batch=2&preview_every=1000`);
      await page.waitForFunction(() => document.querySelector('[data-testid=train]')?.disabled === false, null, { polling: 250 });
      const banner = await page.locator('[data-testid=banner]').innerText();
      log(`no WebGPU: backend ${await page.locator('[data-testid=backend]').innerText()}; banner: ${banner}`);
      assert.equal(await page.locator('[data-testid=backend]').innerText(), 'CPU');
      assert.match(await page.locator('[data-testid=kernels]').innerText(), /^plain .*: no WebGPU adapter/);
      assert.match(banner, /CPU/);
      // One training step on the CPU fallback, with a finite loss.
      await page.click('[data-testid=train]');
      await page.waitForFunction(() => Number(document.querySelector('[data-testid=step]').innerText) >= 1
        || document.querySelector('[data-testid=error]').innerText !== '', null, { polling: 250 });
      assert.equal(await page.locator('[data-testid=error]').innerText(), '', 'the CPU fallback trains without an error');
      const loss = Number(await page.locator('[data-testid=loss]').innerText());
      log(`no WebGPU: step ${await page.locator('[data-testid=step]').innerText()}, loss ${loss}`);
      assert.ok(Number.isFinite(loss) && loss > 0, `the CPU fallback's first step has a finite loss: ${loss}`);
    } finally {
      await cpu.close();
    }
  }

  const page = await browser.newPage({ acceptDownloads: true, viewport: { width: 1100, height: 900 } });
  // Software WebGPU keeps the page busy for long stretches; every action may wait that long.
  page.setDefaultTimeout(600_000);
  const foreign = [];
  page.on('request', (r) => { if (!r.url().startsWith(origin) && !r.url().startsWith('blob:') && !r.url().startsWith('data:')) foreign.push(r.url()); });
  // Uncaught exceptions and console errors of the page and its workers fail the test (harness.mjs).
  // Every main-thread task over 50 ms (the Long Tasks API); training runs in a worker.
  await page.addInitScript(() => {
    window.longTasks = [];
    new PerformanceObserver((list) => { for (const e of list.getEntries()) window.longTasks.push(e.duration); })
      .observe({ type: 'longtask', buffered: true });
  });
  const text = (id) => page.locator(`[data-testid=${id}]`).innerText();
  const number = async (id) => Number(await text(id));
  const panel = (n) => page.locator('section.panel').nth(n);
  // A canvas's pixels, as a string to compare.
  const pixels = (id) => page.locator(`[data-testid=${id}]`).evaluate((c) => c.width ? c.toDataURL() : '');
  const waitFor = (fn, arg, timeout) => page.waitForFunction(fn, arg, { timeout, polling: 250 });
  // Waits for the step counter, logging progress (software WebGPU is slow; this shows how slow).
  const untilStep = async (n, timeout) => {
    const end = Date.now() + timeout;
    let lastLog = 0;
    for (;;) {
      const step = await number('step');
      if (step >= n) return;
      const error = await text('error');
      if (error) throw new Error(`training stopped: ${error}`);
      if (Date.now() > end) throw new Error(`step ${step} after ${timeout / 1000} s, waiting for ${n}`);
      if (Date.now() - lastLog > 20_000) {
        lastLog = Date.now();
        log(`step ${step}, loss ${await text('loss')}, ${await text('images-per-s')} images/s, ${await text('status')}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  };

  // The tuned build (dist/tuned/) trains, tunes once and falls back in tests/browser/tuned.mjs.

  // A tiny model, small batches, one data tile: software WebGPU is slow.
  const SEED = 7, STEPS = 10, COUNT = 4, QUALITY = 32;

  // 0. The forward process, on a model of DDPM's linear β (the default is cosine), whose ᾱ_t
  //    this check knows: x_t at t = 0 is the image itself; moving the slider changes it.
  await page.goto(`${origin}/?model=tiny&schedule=linear&seed=${SEED}&tiles=1`);
  await waitFor(() => document.querySelector('[data-testid=train]')?.disabled === false, null, 180_000);
  // The schedule chart: ᾱ_t of the linear and the cosine schedule (the `schedule` command's values).
  const curves = await page.locator('[data-testid=schedule-chart] polyline').evaluateAll((ls) => ls.map((l) => l.getAttribute('points').split(' ').length));
  assert.deepEqual(curves.length, 2);
  assert.deepEqual(curves, [1000, 1000], 'a point per timestep');
  const forwardAt = async (t) => {
    await page.locator('[data-testid=forward-t]').fill(`${t}`);
    await waitFor((t) => document.querySelector('[data-testid=forward-numbers]').innerText.startsWith(`t = ${t}:`), t, 120_000);
    return pixels('forward');
  };
  const clean = await forwardAt(0);
  assert.match(await text('forward-numbers'), /ᾱ_t = 0\.9999/, 'ᾱ_0 = 1 − β_1 = 0.9999 (DDPM linear schedule)');
  const noisy = await forwardAt(999);
  // ᾱ_999 of the linear schedule is 4.04e-5 (diffusers DDPMScheduler.alphas_cumprod[-1]).
  assert.match(await text('forward-numbers'), /ᾱ_t = 0\.0000/);
  assert.notEqual(clean, noisy, 'x_t changes with t');
  await panel(0).screenshot({ path: path.join(out, 'panel-forward.png') });

  // 1. Train the default objective (v-prediction, min-SNR-5, the cosine schedule: no
  //    `prediction=`, `min_snr=` or `schedule=`), without warm-up (the default warms up over 80
  //    steps, and a step takes 10 to 20 s here): images/s shows, a preview appears at step 10,
  //    and the loss on the fixed batch falls.
  await page.goto(`${origin}/?model=tiny&batch=4&lr=0.003&warmup=0&preview_every=10&preview_steps=2&steps=${STEPS}&count=${COUNT}&seed=${SEED}&tiles=1&quality_count=${QUALITY}&quality_steps=${STEPS}`);
  await waitFor(() => document.querySelector('[data-testid=train]')?.disabled === false, null, 180_000);
  log(`ready: backend ${await text('backend')}, ${await text('images-loaded')} images`);
  assert.equal(await text('backend'), 'WebGPU', 'the page must train on WebGPU here');
  // SwiftShader is a software adapter: the worker runs the plain build's kernels (src/web/kernels.rs),
  // not the tuned build, whose autotuning would time every candidate kernel on the CPU.
  log(`kernels: ${await text('kernels')}`);
  assert.match(await text('kernels'), /^plain \(one kernel per operation\): a software adapter/, 'SwiftShader takes the software path');
  // The worker trains with the address's settings (a service worker's copy of worker.js once
  // dropped them, and the tab quietly trained with batch 32 and lr 0.001).
  assert.match(await text('model-card'), /batch 4, lr 0\.003/, 'the worker uses the page address\'s settings');
  const beforeTraining = await page.evaluate(() => window.longTasks.length);
  await page.click('[data-testid=train]');
  // The step counter and the loss (mean of the last 10 steps) together, from one look at the page.
  const stepAndLoss = () => page.evaluate(() => ['step', 'loss'].map((id) => Number(document.querySelector(`[data-testid=${id}]`).innerText)));
  // The first steps compile every kernel on the software adapter (a minute or more a step on
  // 2 busy cores), so they get a generous budget; the assertions below are what counts.
  await untilStep(4, 600_000);
  const [earlyStep, early] = await stepAndLoss();
  log(`step ${earlyStep}: loss (mean of steps 1-${earlyStep}) ${early}, ${await text('images-per-s')} images/s`);
  // The late window, the last 10 steps, must not overlap the early one.
  await untilStep(earlyStep + 10, 1_500_000);
  await page.click('[data-testid=pause]');
  await waitFor(() => /Paused/.test(document.querySelector('[data-testid=status]').innerText), null, 300_000);
  const [pausedAt, late] = await stepAndLoss();
  log(`paused at step ${pausedAt}: loss (mean of steps ${pausedAt - 9}-${pausedAt}) ${late}, ${await text('images-per-s')} images/s`);
  assert.ok(pausedAt - 9 > earlyStep, 'the two windows do not overlap');
  // The step's loss is logged, not asserted: each step has new images and new t, and with the
  // default objective it jitters more than it falls in 14 steps. Measured natively with this
  // trainer (tests/fixed_batch.rs's, seeds 0 to 9), the mean of steps 5-14 lay above that of
  // steps 1-4 for seeds 4 and 7; in this test's first run 0.172 over steps 1-4, 0.177 over
  // 6-15. What training does shows on the fixed batch, below.
  assert.ok(Number.isFinite(early) && Number.isFinite(late), 'the losses are numbers');
  // The loss on the fixed batch (the same x_0, t and ε each time; the online weights),
  // measured when Train started (step 0), at the preview of step 10 and on Pause.
  const fixed = JSON.parse(await page.locator('[data-testid=fixed-loss]').getAttribute('data-points'));
  log(`loss on the fixed batch: ${await text('fixed-loss')} (${JSON.stringify(fixed)})`);
  assert.deepEqual(fixed.map(([step]) => step), [0, 10, pausedAt], 'measured at step 0, at the preview and on Pause');
  // Natively (tests/fixed_batch.rs, this trainer, seeds 0 to 9) the loss at step 10 is 0.48 to
  // 0.71 of its value at step 0, at step 14 0.47 to 0.63: here both must be below 0.8 of it.
  const [[, before], [, atPreview], [, after]] = fixed;
  assert.ok(atPreview < 0.8 * before && after < 0.8 * before, `the loss on the fixed batch must fall: ${before} at step 0, ${atPreview} at step 10, ${after} at step ${pausedAt}`);
  assert.ok(Number(await text('images-per-s')) > 0);
  assert.ok(await page.locator('[data-testid=samples]').evaluate((c) => c.width > 0), 'a preview grid was drawn');
  const longest = Math.max(0, ...(await page.evaluate((n) => window.longTasks.slice(n), beforeTraining)));
  log(`longest main-thread task while training: ${longest.toFixed(0)} ms`);
  assert.ok(longest < 100, `the page must stay responsive while training (a ${longest} ms task)`);
  await panel(1).screenshot({ path: path.join(out, 'panel-training.png') });

  // Reloading the page resumes the run saved on Pause: same step, same loss history. (The
  // weights' exactness shows below: the tab's samples must equal the CLI's from the export.)
  // The URL asks for another learning rate: the resumed run keeps its own, and the Settings
  // panel shows the run's.
  const [pausedStep, pausedLoss, pausedChart, pausedFixed] = [await text('step'), await text('loss'),
    await page.locator('[data-testid=loss-chart] polyline').getAttribute('points'), await text('fixed-loss')];
  await page.goto(page.url().replace('lr=0.003', 'lr=0.5'));
  await waitFor(() => document.querySelector('[data-testid=train]')?.disabled === false, null, 180_000);
  await waitFor(() => /Resumed your saved run at step/.test(document.querySelector('[data-testid=status]').innerText), null, 60_000);
  log(`after reload: ${await text('status')}`);
  assert.equal(await page.locator('[data-testid=lr]').inputValue(), '0.003', 'the Settings panel shows the run\'s learning rate');
  assert.match(await text('model-card'), /lr 0\.003/);
  assert.equal(await text('step'), pausedStep, 'reload resumes at the same step');
  assert.equal(await text('loss'), pausedLoss, 'and with the same loss history');
  assert.equal(await page.locator('[data-testid=loss-chart] polyline').getAttribute('points'), pausedChart);
  assert.equal(await text('fixed-loss'), pausedFixed, 'and the fixed batch\'s');

  // 2. Sample from the fixed seed.
  await page.click('[data-testid=sample]');
  await waitFor((n) => new RegExp(`Sampling: ${n} DDIM steps in`).test(document.querySelector('[data-testid=status]').innerText), STEPS, 300_000);
  const sameValues = (a, b, what) => {
    const x = readNpy(a), y = readNpy(b);
    assert.equal(x.length, y.length);
    let maxDiff = 0;
    for (let i = 0; i < x.length; i++) maxDiff = Math.max(maxDiff, Math.abs(x[i] - y[i]));
    log(`${what}, ${x.length} values: max |difference| ${maxDiff.toExponential(2)}`);
    assert.ok(maxDiff < 1e-3, `${what}: the tab and the CLI must give the same image (max difference ${maxDiff})`);
  };
  log(await text('status'));
  assert.ok(await page.locator('[data-testid=trajectory]').evaluate((c) => c.width > 0), 'the x_t / x̂_0 strip was drawn');
  await panel(2).screenshot({ path: path.join(out, 'panel-sampling.png') });
  await page.screenshot({ path: path.join(out, 'app.png'), fullPage: true });
  const [samples] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=download-samples]')]);
  await samples.saveAs(path.join(out, 'browser-samples.npy'));

  // 3. Export the weights.
  const [weights] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=export]')]);
  const exported = path.join(out, 'exported.safetensors');
  await weights.saveAs(exported);
  log(`exported ${weights.suggestedFilename()} (${fs.statSync(exported).size} bytes)`);

  // 4. The exported file samples natively (CPU) to the same image.
  execFileSync(bin, ['sample', '--model', exported, '--sampler', 'ddim', '--steps', `${STEPS}`, '--eta', '0',
    '--seed', `${SEED}`, '--count', `${COUNT}`, '--out', path.join(out, 'native.png'),
    '--out-npy', path.join(out, 'native.npy')], { stdio: 'inherit' });
  sameValues(path.join(out, 'browser-samples.npy'), path.join(out, 'native.npy'), 'tab vs native, DDIM');

  // 4a. The whole run exported (weights, EMA, Adam, step, random stream, run spec) continues
  //     natively: `train --resume` takes it at the tab's step and trains two more.
  const [run] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=export-run]')]);
  const runFile = path.join(out, 'exported-run.safetensors');
  await run.saveAs(runFile);
  const runStep = Number(/-step(\d+)-run\.safetensors$/.exec(run.suggestedFilename())[1]);
  log(`exported ${run.suggestedFilename()} (${fs.statSync(runFile).size} bytes)`);
  const resumed = execFileSync(bin, ['train', '--resume', runFile, '--data', path.join(root, 'www/data/mnist'), '--limit', '256',
    '--steps', `${runStep + 2}`, '--log-every', '1', '--state', path.join(out, 'resumed.state'),
    '--out', path.join(out, 'resumed.safetensors'), '--grid', path.join(out, 'resumed.png')]).toString();
  assert.match(resumed, new RegExp(`resuming at step ${runStep}\\b`), resumed);
  assert.match(resumed, new RegExp(`"step": ${runStep + 2}, "loss": \\d`), 'two more steps, with finite losses');

  // 4b. Sample quality in the tab equals `eval`'s for the same weights, seed, sampler and count:
  //     FID to 1e-3 relative, precision and recall within 1/count (a sample or image more or
  //     less in a k-NN ball, from float rounding on another backend).
  await page.click('[data-testid=measure-quality]');
  await waitFor(() => document.querySelector('[data-testid=quality]').dataset.quality, null, 600_000);
  const tab = JSON.parse(await page.locator('[data-testid=quality]').getAttribute('data-quality'));
  log(`tab quality: ${await text('quality')}`);
  const cli = JSON.parse(execFileSync(bin, ['eval', '--model', exported, '--data', path.join(root, 'www/data/mnist'),
    '--classifier', path.join(root, 'www/classifiers/mnist.safetensors'), '--count', `${QUALITY}`, '--sampler', 'ddim',
    '--steps', `${STEPS}`, '--seed', `${SEED}`, '--json']).toString());
  log(`eval: FID ${cli.fid}, precision ${cli.precision}, recall ${cli.recall}; floor FID ${cli.floor_fid}`);
  assert.ok(Math.abs(tab.model.fid - cli.fid) <= 1e-3 * cli.fid, `FID: tab ${tab.model.fid}, eval ${cli.fid}`);
  assert.ok(Math.abs(tab.floor.fid - cli.floor_fid) <= 1e-3 * cli.floor_fid, `floor FID: tab ${tab.floor.fid}, eval ${cli.floor_fid}`);
  for (const [a, b] of [[tab.model.precision, cli.precision], [tab.model.recall, cli.recall], [tab.floor.precision, cli.floor_precision], [tab.floor.recall, cli.floor_recall]]) {
    assert.ok(Math.abs(a - b) <= 1 / QUALITY + 1e-9, `precision/recall: tab ${a}, eval ${b}`);
  }
  assert.match(await text('model-card'), /FID \d+\.\d\d, precision/, 'the model card records the last measurement');
  assert.equal(await page.locator('[data-testid=quality-chart] polyline').getAttribute('points'), '300.0,5.0', 'one point on the chart');
  assert.equal(await page.locator('[data-testid=quality-chart] circle').count(), 1, 'and its marker');
  await panel(1).screenshot({ path: path.join(out, 'panel-training-quality.png') });

  // 5. Bad weights: a message, and the model in use is untouched.
  const card = await text('model-card');
  const bytes = fs.readFileSync(exported);
  await page.setInputFiles('[data-testid=import]', { name: 'truncated.safetensors', mimeType: 'application/octet-stream', buffer: bytes.subarray(0, bytes.length >> 1) });
  await waitFor(() => document.querySelector('[data-testid=error]').innerText.length > 0, null, 60_000);
  log(`truncated file: ${await text('error')}`);
  assert.match(await text('error'), /truncated/);
  await page.setInputFiles('[data-testid=import]', { name: 'notes.safetensors', mimeType: 'text/plain', buffer: Buffer.from('not weights at all') });
  await waitFor(() => /notes.safetensors/.test(document.querySelector('[data-testid=error]').innerText), null, 60_000);
  assert.equal(await text('model-card'), card, 'a bad file leaves the model unchanged');
  // ... and the good file loads back.
  await page.setInputFiles('[data-testid=import]', exported);
  await waitFor(() => /Loaded/.test(document.querySelector('[data-testid=status]').innerText), null, 60_000);
  log(await text('status'));
  // ... and the exported whole run comes back whole: the tab continues it at its step.
  await page.setInputFiles('[data-testid=import]', runFile);
  await waitFor(() => /Loaded the whole run/.test(document.querySelector('[data-testid=status]').innerText), null, 60_000);
  log(await text('status'));
  assert.equal(Number(await text('step')), runStep, 'the imported run is at the step it was exported at');
  await panel(3).screenshot({ path: path.join(out, 'panel-weights.png') });

  // 6. Export for diffusers: a zip holding the model folder (its contents are checked natively,
  //    and diffusers loading such a folder is recorded in tests/fixtures/diffusers/export_check.json).
  const [zip] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=export-diffusers]')]);
  const zipPath = path.join(out, 'exported.zip');
  await zip.saveAs(zipPath);
  const zipBytes = fs.readFileSync(zipPath);
  log(`exported ${zip.suggestedFilename()} (${zipBytes.length} bytes)`);
  assert.equal(zipBytes.subarray(0, 4).toString('binary'), 'PK\x03\x04');
  for (const name of ['/config.json', '/scheduler_config.json', '/diffusion_pytorch_model.safetensors']) {
    assert.ok(zipBytes.includes(Buffer.from(name)), `the zip holds ${name}`);
  }

  // 7. A diffusers folder (8×8 RGB, so it samples but cannot train on MNIST) imported by its
  //    files, sampled with DPM-Solver++: the same values as the CLI from the same folder.
  const folder = path.join(root, 'tests/fixtures/diffusers/unet_a');
  await page.setInputFiles('[data-testid=import]', ['config.json', 'diffusion_pytorch_model.safetensors'].map((f) => path.join(folder, f)));
  await waitFor(() => /Loaded config.json/.test(document.querySelector('[data-testid=status]').innerText), null, 60_000);
  log(`${await text('status')} ${await text('model-card')}`);
  await page.selectOption('[data-testid=sampler]', 'dpm-solver');
  await page.fill('[data-testid=sample-steps]', '10');
  await page.locator('[data-testid=sample-steps]').dispatchEvent('change');
  await page.click('[data-testid=sample]');
  await waitFor(() => /Sampling: 10 DPM-Solver\+\+ steps in/.test(document.querySelector('[data-testid=status]').innerText), null, 300_000);
  const [folderSamples] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=download-samples]')]);
  await folderSamples.saveAs(path.join(out, 'browser-unet_a.npy'));
  execFileSync(bin, ['sample', '--model', folder, '--sampler', 'dpm-solver', '--steps', '10', '--seed', `${SEED}`,
    '--count', `${COUNT}`, '--out', path.join(out, 'native-unet_a.png'), '--out-npy', path.join(out, 'native-unet_a.npy')], { stdio: 'inherit' });
  sameValues(path.join(out, 'browser-unet_a.npy'), path.join(out, 'native-unet_a.npy'), 'diffusers folder, tab vs native, DPM-Solver++');
  await page.click('[data-testid=train]');
  await waitFor(() => /cannot train here/.test(document.querySelector('[data-testid=error]').innerText), null, 60_000);
  log(`train on an 8×8 RGB model: ${await text('error')}`);
  await page.screenshot({ path: path.join(out, 'diffusers-folder.png'), fullPage: true });

  // 7b. A class-conditional model (trained for two steps by the CLI) guided to class 3 with
  //     w = 2: the tab's samples equal the CLI's.
  const cond = path.join(out, 'conditional.safetensors');
  execFileSync(bin, ['train', '--preset', 'tiny', '--class-conditional', '--data', path.join(root, 'www/data/mnist'), '--limit', '256',
    '--steps', '2', '--batch', '4', '--checkpoint-every', '0', '--out', cond, '--grid', path.join(out, 'conditional-train.png')], { stdio: 'inherit' });
  await page.setInputFiles('[data-testid=import]', cond);
  await waitFor(() => /Loaded conditional.safetensors/.test(document.querySelector('[data-testid=status]').innerText), null, 60_000);
  await waitFor(() => document.querySelectorAll('[data-testid=class] option').length === 11, null, 60_000);
  await page.selectOption('[data-testid=sampler]', 'ddim');
  await page.fill('[data-testid=sample-steps]', `${STEPS}`);
  await page.locator('[data-testid=sample-steps]').dispatchEvent('change');
  await page.selectOption('[data-testid=class]', '3');
  await page.locator('[data-testid=guidance]').fill('2');
  await page.click('[data-testid=sample]');
  await waitFor((n) => new RegExp(`Sampling: ${n} DDIM steps in`).test(document.querySelector('[data-testid=status]').innerText), STEPS, 300_000);
  const [condSamples] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=download-samples]')]);
  await condSamples.saveAs(path.join(out, 'browser-class3.npy'));
  execFileSync(bin, ['sample', '--model', cond, '--sampler', 'ddim', '--steps', `${STEPS}`, '--eta', '0', '--seed', `${SEED}`,
    '--count', `${COUNT}`, '--class', '3', '--guidance', '2', '--out', path.join(out, 'native-class3.png'),
    '--out-npy', path.join(out, 'native-class3.npy')], { stdio: 'inherit' });
  sameValues(path.join(out, 'browser-class3.npy'), path.join(out, 'native-class3.npy'), 'class-conditional, class 3, w = 2, tab vs native');
  await panel(2).screenshot({ path: path.join(out, 'panel-sampling-guided.png') });

  // 8. The other datasets: each loads, shows its forward picture, and takes a model of its shape.
  // A clone without ../shared has no CIFAR-10 tiles (scripts/setup prepares them only from
  // there; users run `tabdiffusion data cifar10`): then the page must say how to get them.
  const datasets = [['fashion-mnist', '28×28×1'], ['cifar10', '32×32×3']];
  if (!fs.existsSync(path.join(root, 'www/data/cifar10/manifest.json'))) {
    datasets.pop();
    await page.goto(`${origin}/?data=cifar10&model=tiny&tiles=1`);
    await waitFor(() => /dataset is missing/.test(document.querySelector('[data-testid=error]')?.innerText ?? ''), null, 120_000);
    assert.match(await text('error'), /tabdiffusion data cifar10/);
    log(`www/data/cifar10 is not here (no ../shared): CIFAR-10 is not loaded; the page says: ${await text('error')}`);
  }
  for (const [data, shape] of datasets) {
    await page.goto(`${origin}/?data=${data}&model=tiny&tiles=1`);
    await waitFor(() => document.querySelector('[data-testid=train]')?.disabled === false, null, 180_000);
    await waitFor(() => document.querySelector('[data-testid=forward-numbers]').innerText !== '', null, 120_000);
    assert.equal(await text('dataset'), data);
    assert.ok((await text('model-card')).includes(shape), `${data}: a ${shape} model`);
    log(`${data}: ${await text('images-loaded')} images, ${await text('model-card')}`);
    await panel(0).screenshot({ path: path.join(out, `forward-${data}.png`) });
  }

  // 9. The user's own images (two PNGs in class folders), and an upload with no image in it.
  const upload = (files) => page.setInputFiles('[data-testid=upload-images]', files);
  await upload([{ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not an image') }]);
  await waitFor(() => /no PNG or JPEG images/.test(document.querySelector('[data-testid=error]').innerText), null, 60_000);
  log(`an upload without images: ${await text('error')}`);
  await upload(['docs/browser-test.png', 'docs/mnist-small-samples.png'].map((f) => path.join(root, f)));
  await waitFor(() => /Training on your 2 images/.test(document.querySelector('[data-testid=status]').innerText), null, 60_000);
  log(await text('status'));
  assert.equal(await text('dataset'), 'your images');
  // ... which are kept with the run: a step, Pause, reload, and the run goes on on them.
  await page.click('[data-testid=train]');
  await untilStep(1, 600_000);
  await page.click('[data-testid=pause]');
  await waitFor(() => /Paused/.test(document.querySelector('[data-testid=status]').innerText), null, 600_000);
  const ownStep = await text('step');
  await page.reload();
  await waitFor(() => document.querySelector('[data-testid=train]')?.disabled === false, null, 180_000);
  assert.match(await text('status'), /Resumed your saved run/);
  assert.equal(await text('dataset'), 'your images', 'the images came back from browser storage');
  assert.equal(await text('images-loaded'), '2');
  assert.equal(await text('step'), ownStep);

  // 10. Reset forgets the saved run (and the images): the page starts over at step 0.
  await page.goto(`${origin}/?model=tiny&tiles=1`);
  await waitFor(() => document.querySelector('[data-testid=train]')?.disabled === false, null, 180_000);
  assert.match(await text('status'), /Resumed/, 'the run on your images is still saved');
  // Reset reloads the page once the worker has removed the run. (Once, in one CI run of many,
  // it did not within 10 minutes, with nothing logged; what the page said is logged if it recurs.)
  const nav = page.waitForNavigation({ timeout: 180_000 });
  await page.click('[data-testid=reset]');
  try { await nav; } catch (e) { log(`Reset did not reload the page: status "${await text('status')}", error "${await text('error')}"`); throw e; }
  await waitFor(() => /Ready. Press Train/.test(document.querySelector('[data-testid=status]')?.innerText ?? ''), null, 180_000);
  assert.equal(await text('step'), '0', 'after Reset the run starts over');
  assert.equal(await text('dataset'), 'mnist', 'on the URL\'s dataset');

  // 11. A diverging run (learning rate 1e30: the second step's loss overflows) stops at the
  //     last saved state (saved every step here) and says so.
  await page.goto(`${origin}/?model=tiny&tiles=1&batch=2&lr=1e30&warmup=0&autosave=1&preview_every=1000`);
  await waitFor(() => document.querySelector('[data-testid=train]')?.disabled === false, null, 180_000);
  await page.click('[data-testid=train]');
  await waitFor(() => /The loss became/.test(document.querySelector('[data-testid=error]').innerText), null, 600_000);
  log(`diverged: ${await text('error')} (step shown: ${await text('step')})`);
  assert.match(await text('error'), /back at the last saved state, step \d+/);
  const kept = Number((await text('error')).match(/last saved state, step (\d+)/)[1]);
  assert.equal(await number('step'), kept, 'the page shows the step it went back to');
  assert.equal(await text('pause'), 'Pause');
  assert.ok(await page.locator('[data-testid=train]').isEnabled(), 'training can start again');

  assert.deepEqual(foreign, [], 'the page requests nothing outside its own folder of its origin (served from a sub-path)');
  log('browser test passed');
}, { prefix: '/some/sub/path' });
