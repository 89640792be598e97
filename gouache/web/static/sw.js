// Offline once loaded: the page and every file it fetched from its own site are kept, and served
// from the cache before the network. The export names the cache after the site's files, so a new
// export at the same address replaces the old copy (once the browser has fetched the new sw.js).
"use strict";

const CACHE = "gouache-web-SITE";  // SITE: the export's fingerprint

// The page itself, fetched before this worker took it over; the rest is kept as it is fetched.
const SHELL = ["./", "index.html", "history.js", "app.js", "sampler.js", "tokenizer.js", "style.css", "model.json", "vocab.txt"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});
self.addEventListener("activate", (event) => event.waitUntil((async () => {
  for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name);  // older exports
  await self.clients.claim();
})()));

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET" || new URL(request.url).origin !== self.location.origin) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    const kept = await cache.match(request, { ignoreSearch: true });
    if (kept) return kept;
    const response = await fetch(request);
    if (response.ok) await cache.put(request, response.clone());
    return response;
  })());
});
