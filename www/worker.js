// The training worker: this same wasm module, started as a module worker. Its `main` sees a
// worker scope and runs the training session instead of mounting the page.
import init from './tabdiffusion.js';

await init();
