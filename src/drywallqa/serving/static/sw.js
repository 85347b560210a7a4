// The service worker of an app built by `drywallqa app build`, which fills in BUILD: the build's
// version, the files stored on install (the page, the model, the WebAssembly runtime) and the
// files stored when first fetched (the WebGPU runtime, which only a browser with WebGPU loads).
// Those files are answered from the cache, so the app keeps working with the network off; any
// other request (the server's API under `drywallqa serve --app`) goes to the network as usual.
// A new build has a new version: the browser installs it and drops the old cache.
"use strict";

const BUILD = /*BUILD*/{ "version": "template", "precache": [], "lazy": [] }/*BUILD*/;
const CACHE = `drywallqa-app-${BUILD.version}`;
const inScope = (path) => new URL(path, self.registration.scope).href;
const KNOWN = new Set([...BUILD.precache, ...BUILD.lazy].map(inScope));

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    // cache: "reload": the files as the host has them now, never a stale copy of the HTTP cache.
    await cache.addAll(BUILD.precache.map((path) => new Request(inScope(path), { cache: "reload" })));
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) if (key.startsWith("drywallqa-app-") && key !== CACHE) await caches.delete(key);
    await self.clients.claim();
  })());
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  url.search = "";
  url.hash = "";
  const key = request.mode === "navigate" && url.href === inScope("index.html") ? inScope("./") : url.href;
  if (!KNOWN.has(key)) return;
  event.respondWith(answer(request, key));
});

async function answer(request, key) {
  const cache = await caches.open(CACHE);
  let response = await cache.match(key);
  if (!response) {
    response = await fetch(request);
    if (response.ok) await cache.put(key, response.clone());
  }
  return isolated(response);
}

// WebAssembly threads need SharedArrayBuffer, which needs a cross-origin isolated page (COOP and
// COEP headers). A static host may send neither, so the files served from here carry them: from the
// second load on, the page runs on several threads on any host.
function isolated(response) {
  if (response.type === "opaque" || response.status === 0) return response;
  const headers = new Headers(response.headers);
  headers.set("Cross-Origin-Opener-Policy", "same-origin");
  headers.set("Cross-Origin-Embedder-Policy", "require-corp");
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}
