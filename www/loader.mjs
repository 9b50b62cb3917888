// The page shell's progress (index.html): trunk calls these while it downloads and starts the
// wasm module. Plain JavaScript, so it works before any wasm has arrived.
const $ = (id) => document.getElementById(id);
const mb = (bytes) => (bytes / 1e6).toFixed(1);

export default function loader() {
  return {
    onStart() {
      $('load-status').textContent = 'Downloading the app…';
    },
    onProgress({ current, total }) {
      const bar = $('load-progress');
      if (!bar) return;
      if (total > 0) {
        bar.max = total;
        bar.value = Math.min(current, total);
      }
      $('load-status').textContent = current < total
        ? `Downloading the app: ${mb(current)} of ${mb(total)} MB`
        : `Downloaded ${mb(total)} MB; compiling…`;
    },
    onSuccess() {
      // The app has mounted its own page below the shell.
      $('shell')?.remove();
    },
    onFailure(reason) {
      window.tabdiffusionFailed(reason?.message ?? String(reason));
    },
  };
}
