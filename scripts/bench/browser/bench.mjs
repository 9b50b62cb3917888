// The same model in headless Chromium (WebGPU on SwiftShader), measured as `tabdiffusion bench`:
//   node scripts/bench/browser/bench.mjs --model tiny --batch 8 --steps 3 [--data mnist] [--cpu]
// (`--cpu`: Chromium without WebGPU, so the tab runs its CPU fallback, burn-flex in wasm;
// `--kernels plain|tuned`: that wasm build, src/web/kernels.rs, instead of the adapter's choice)
// prints one JSON line with train_images_per_s and ddim50_images_per_s, and the kernels it ran.
import { parseArgs } from 'node:util';
// The browser tests' harness (it brings playwright-core from tests/browser/node_modules).
import { launch, log, serve } from '../../../tests/browser/harness.mjs';

const { values: args } = parseArgs({
  options: { model: { type: 'string', default: 'tiny' }, data: { type: 'string', default: 'mnist' }, batch: { type: 'string', default: '8' }, steps: { type: 'string', default: '3' }, cpu: { type: 'boolean', default: false }, kernels: { type: 'string', default: '' } },
});
const { server, origin } = await serve();
const browser = await launch({ webgpu: !args.cpu });
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => log(`page error: ${e.message}`));
  await page.goto(`${origin}/?data=${args.data}&model=${args.model}&batch=${args.batch}&bench=${args.steps}&tiles=1${args.kernels ? `&kernels=${args.kernels}` : ''}`);
  const bench = page.locator('[data-testid=bench]');
  for (;;) {
    const [json, error, status] = await Promise.all(['bench', 'error', 'status'].map(
      (id) => page.locator(`[data-testid=${id}]`).innerText({ timeout: 1_800_000 })));
    if (error) throw new Error(error);
    if (json) {
      console.log(JSON.stringify({ ...JSON.parse(json), kernels: await page.locator('[data-testid=kernels]').innerText() }));
      break;
    }
    log(status);
    await new Promise((r) => setTimeout(r, 10_000));
  }
} finally {
  await browser.close();
  server.close();
}
