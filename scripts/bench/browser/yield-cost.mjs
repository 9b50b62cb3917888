// What a turn of the event loop costs the worker, the two ways it can yield (src/web/browser.rs
// `yield_now`): a zero timeout, which HTML clamps to 4 ms once five are nested (a sampling loop
// that yields after each step), and a message to itself, which the worker now uses.
//   node scripts/bench/browser/yield-cost.mjs      prints one JSON line: milliseconds per yield
// The browser tests' harness (it brings playwright-core from tests/browser/node_modules).
import { launch } from '../../../tests/browser/harness.mjs';

const browser = await launch({ webgpu: false });
try {
  const page = await browser.newPage();
  await page.goto('about:blank');
  const ms = await page.evaluate(async () => {
    const source = `
      const timeout = () => new Promise((r) => setTimeout(r, 0));
      const message = () => new Promise((r) => { const c = new MessageChannel(); c.port1.onmessage = r; c.port2.postMessage(null); });
      (async () => {
        const out = {};
        for (const [name, turn] of [['timeout', timeout], ['message', message]]) {
          const n = 500, t0 = performance.now();
          for (let i = 0; i < n; i++) await turn();
          out[name] = Number(((performance.now() - t0) / n).toFixed(4));
        }
        postMessage(out);
      })();`;
    const worker = new Worker(URL.createObjectURL(new Blob([source])));
    return await new Promise((resolve) => { worker.onmessage = (e) => resolve(e.data); });
  });
  console.log(JSON.stringify({ ms_per_yield_in_a_worker: ms }));
} finally {
  await browser.close();
}
