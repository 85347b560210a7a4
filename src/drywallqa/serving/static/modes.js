// Where the page runs the model: on the server (POST /v1/segment) or on this device (ondevice.js),
// whichever this page has, with a switch when it has both (`drywallqa serve --app`). In an app of
// `drywallqa app build` it also adds the web manifest and registers the service worker that keeps
// the app working offline. Uses $, modes and runsOnDevice of app.js (loaded first).
"use strict";

function showWhere() {
  const line = $("device-status");
  line.hidden = !runsOnDevice();
  line.classList.remove("error");
  if (!runsOnDevice()) return;
  line.textContent = onDevice.note || "On this device: loading the model…";
  onDevice.load().then(() => { line.textContent = onDevice.note; }, (error) => {
    line.textContent = `The model could not start on this device: ${error.message}`;
    line.classList.add("error");
  });
}

// An app of `drywallqa app build` is installable and works offline: its web manifest and service worker.
function installApp() {
  document.head.append(Object.assign(document.createElement("link"), { rel: "manifest", href: "manifest.webmanifest" }));
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("sw.js", { updateViaCache: "none" })
      .catch((error) => console.warn(`the app will not work offline: its service worker failed (${error.message})`));
  }
}

async function detectModes() {
  const [server, manifest] = await Promise.all([
    fetch("healthz").then((r) => (r.ok ? r.json() : null)).then((body) => Boolean(body && body.status === "ok"), () => false),
    onDevice.probe(),
  ]);
  Object.assign(modes, { server, device: Boolean(manifest) });
  $("where").hidden = !modes.device;
  $("where-server").disabled = !server;
  $("where-device").disabled = !modes.device;
  $(server || !modes.device ? "where-server" : "where-device").checked = true;
  $("api-links").hidden = !server;
  if (!server) $("download").title = "Download all needs the server (drywallqa serve); save masks one by one from a result";
  if (modes.device) installApp();
  showWhere();
}

for (const radio of document.querySelectorAll("input[name=where]")) radio.addEventListener("change", showWhere);
detectModes();
