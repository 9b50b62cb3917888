// The training worker: this same wasm module, started as a module worker. Its `main` sees a
// worker scope and runs the training session instead of mounting the page.
//
// The page names the kernels it wants in the worker's name (`kernels=tuned` on a hardware GPU,
// src/web/kernels.rs): then the worker runs the build with burn's autotuning and fusion, `tuned/`, which
// `trunk build --release` makes beside the plain one. Where that build is missing (a debug
// build) or fails to load, it runs the plain one, and the page says so.
const kernels = new URLSearchParams(self.name).get('kernels');
let init = null;
if (kernels === 'tuned') {
  try {
    const tuned = (await import('./tuned/tabdiffusion.js')).default;
    const response = await fetch(new URL('./tuned/tabdiffusion_bg.wasm', import.meta.url));
    if (!response.ok) throw new Error(`tuned/tabdiffusion_bg.wasm: HTTP ${response.status}`);
    init = () => tuned({ module_or_path: response });
  } catch (e) {
    console.warn(`the tuned kernels' build did not load, so the plain one runs: ${e}`);
  }
}
init ??= (await import('./tabdiffusion.js')).default;
await init();
