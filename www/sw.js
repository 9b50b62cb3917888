// The offline copy of the site: a service worker that keeps the app (page, script, wasm) and
// the dataset files a visitor used, so that a second visit starts without the network and
// trains offline. Weights and runs live in the browser's private storage (OPFS) anyway.
//
// Each build has its own cache: `scripts/dev/finish-site` (a trunk hook) writes a hash of
// the built files into BUILD. A new deploy installs beside the old one and takes over only when
// no tab runs the old one (no skipWaiting), then deletes the old cache: never a page of one
// build with the wasm or the worker of another.
const BUILD = 'unstamped';
const CACHE = `tabdiffusion-${BUILD}`;
// The app itself, fetched at install; everything else is kept as it is first used.
const APP = ['./', './tabdiffusion.js', './tabdiffusion_bg.wasm', './loader.mjs', './worker.js', './style.css'];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(APP.map((url) => new Request(url, { cache: 'reload' })))));
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith('tabdiffusion-') && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin || request.headers.has('range')) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    // Every address of the page (its query holds the settings) is one copy of the page.
    const key = request.mode === 'navigate' ? new URL('./', self.registration.scope).href : request;
    const kept = await cache.match(key);
    if (kept) return kept;
    const response = await fetch(request);
    // A full quota only means this file is not kept: the page still gets it.
    if (response.ok && response.type === 'basic') event.waitUntil(cache.put(key, response.clone()).catch(() => {}));
    return response;
  })());
});
