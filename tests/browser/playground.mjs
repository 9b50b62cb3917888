// The 2-D playground in headless Chromium: it trains on eight Gaussians in seconds on the page's
// CPU, shows the score at time t as arrows, DDIM and DDPM paths from the same x_T and samples
// close to the data; points drawn with the mouse train too; too few drawn points get a clear
// message. Screenshots go to tests/browser/out.
//
//   node tests/browser/playground.mjs   (after `trunk build --release`)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { log, root, run } from './harness.mjs';

const out = path.join(root, 'tests/browser/out');
fs.mkdirSync(out, { recursive: true });

const id = (name) => `[data-testid=${name}]`;

/** Pixels of a canvas whose colour `test(r, g, b)` accepts. */
const countPixels = (page, name, test) => page.evaluate(([sel, src]) => {
  const canvas = document.querySelector(sel);
  const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  const accept = new Function('r', 'g', 'b', `return ${src};`);
  let n = 0;
  for (let i = 0; i < data.length; i += 4) if (accept(data[i], data[i + 1], data[i + 2])) n += 1;
  return n;
}, [id(name), test]);

const BLUE = 'b > 150 && r < 120';
const ORANGE = 'r > 200 && b < r - 30 && g < r - 10';
const RED = 'r > 150 && g < 110 && b < 110';

await run(async ({ browser, base }) => {
  const page = await browser.newPage();
  await page.goto(`${base}/?dataset=mnist&model=tiny`);
  const panel = page.locator('section.panel').filter({ has: page.locator(id('pg-train')) });
  await page.locator(id('pg-train')).waitFor({ timeout: 300_000 });

  // 1. Too few drawn points: a message, nothing trains.
  await page.selectOption(id('pg-shape'), 'draw');
  const canvasBox = async () => {
    await page.locator(id('pg-data')).scrollIntoViewIfNeeded();
    return page.locator(id('pg-data')).boundingBox();
  };
  let box = await canvasBox();
  await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
  await page.locator(id('pg-train')).click();
  await page.locator(id('pg-error')).waitFor({ state: 'visible' });
  const refusal = await page.locator(id('pg-error')).innerText();
  log(`one drawn point: ${refusal}`);
  assert.match(refusal, /^1 drawn point: draw two or more/);
  assert.equal(await page.locator(id('pg-step')).innerText(), 'step 0');

  // 2. Eight Gaussians: train until step 1500, pause.
  await page.selectOption(id('pg-shape'), 'eight-gaussians');
  const started = Date.now();
  await page.locator(id('pg-train')).click();
  await page.waitForFunction((sel) => Number(document.querySelector(sel).innerText.replace('step ', '')) >= 1500, id('pg-step'), { timeout: 300_000, polling: 200 });
  await page.locator(id('pg-train')).click(); // pause
  const seconds = (Date.now() - started) / 1000;
  const loss = Number((await page.locator(id('pg-loss')).innerText()).replace('loss ', ''));
  log(`eight Gaussians: ${await page.locator(id('pg-step')).innerText()} in ${seconds.toFixed(1)} s, ${await page.locator(id('pg-loss')).innerText()}`);
  // At t ~ U{0..999} ε-prediction's loss of a good 2-D model is far below 1 (an untrained
  // network's is about 1 or more: ε has unit variance per coordinate).
  assert.ok(loss < 0.6, `loss ${loss}`);

  // 3. The score at t = 300: arrows (red) over the noised cloud.
  await page.locator(id('pg-t')).fill('300');
  await page.waitForTimeout(500);
  const arrows = await countPixels(page, 'pg-data', RED);
  log(`score arrows: ${arrows} red pixels`);
  assert.ok(arrows > 500, 'the score view shows arrows');

  // 4. Sampling: DDIM-10 and DDPM-1000 paths from the same x_T, and a cloud near the data.
  await page.locator(id('pg-sample')).click();
  await page.waitForFunction((sel) => document.querySelector(sel).innerText.includes('samples by'), id('pg-quality'), { timeout: 300_000, polling: 250 });
  const quality = await page.locator(id('pg-quality')).innerText();
  log(quality);
  const [distance, floor, noise] = [...quality.matchAll(/(\d+\.\d+)/g)].map((m) => Number(m[1]));
  // x_T ~ N(0, I) lies ~0.37 from eight Gaussians of σ = 0.1, fresh points of them ~0.011; the
  // trained model's DDIM-50 samples (natively after 6,000 steps: ~0.025, tests/playground.rs)
  // lie far closer to the data than their noise, after these 1,500 steps too. Measured in five
  // runs of this test: 0.029 to 0.030 against fresh points' 0.011 (2.6 to 2.7 times; the page
  // shows three decimals, so at most 2.9), within the 4 times the README states.
  assert.ok(noise > 0.3 && distance < noise / 4 && distance < 4 * floor, `samples ${distance} from the data (fresh points ${floor}, noise ${noise})`);
  const [blue, orange] = [await countPixels(page, 'pg-paths', BLUE), await countPixels(page, 'pg-paths', ORANGE)];
  log(`paths: ${blue} blue (DDIM) and ${orange} orange (DDPM) pixels`);
  assert.ok(blue > 300 && orange > 300, 'both samplers drew their paths');
  assert.ok(await countPixels(page, 'pg-samples', BLUE) > 300, 'the samples are drawn');
  await panel.screenshot({ path: path.join(out, 'panel-playground.png') });

  // 5. Points drawn with the mouse: a ring, trained and sampled.
  await page.selectOption(id('pg-shape'), 'draw');
  box = await canvasBox();
  const c = { x: box.x + box.width / 2, y: box.y + box.height / 2, r: box.width / 5 };
  await page.mouse.move(c.x + c.r, c.y);
  await page.mouse.down();
  for (let a = 0; a <= 2 * Math.PI + 0.01; a += 0.05) await page.mouse.move(c.x + c.r * Math.cos(a), c.y + c.r * Math.sin(a));
  await page.mouse.up();
  assert.ok(await countPixels(page, 'pg-data', 'r < 80 && g < 110 && b > 80') > 100, 'the drawn points show');
  await page.locator(id('pg-train')).click();
  await page.waitForFunction((sel) => Number(document.querySelector(sel).innerText.replace('step ', '')) >= 800, id('pg-step'), { timeout: 300_000, polling: 200 });
  await page.locator(id('pg-train')).click();
  await page.locator(id('pg-sample')).click();
  await page.waitForFunction((sel) => document.querySelector(sel).innerText.includes('samples by'), id('pg-quality'), { timeout: 300_000, polling: 250 });
  const drawnQuality = await page.locator(id('pg-quality')).innerText();
  log(`drawn ring: ${drawnQuality}`);
  const [drawnDistance, drawnNoise] = [...drawnQuality.matchAll(/(\d+\.\d+)/g)].map((m) => Number(m[1]));
  assert.ok(drawnDistance < drawnNoise / 3, `samples ${drawnDistance} from the drawn ring (noise ${drawnNoise})`);
  await panel.screenshot({ path: path.join(out, 'panel-playground-drawn.png') });
  log('playground: all checks passed');
});
