// The live camera of the inspection page: the tablet's or phone's camera (the rear one when there
// is one) shows in the page; a frame at most LIVE_LONG_SIDE px on its long side goes as a JPEG to
// POST /v1/segment with the prompts ticked above, and the masks of the answer are drawn tinted over
// the video, with the verdict and the key figures beside it. One request at a time: the next frame
// is grabbed when the answer is back, so a slow server slows the preview but never builds a queue.
// On this device (the page's switch, ondevice.js) the frame's pixels go to the model in the browser
// instead, with no JPEG and no network.
// Uses $, chosenPrompts, formatNumber, cell, maskInside, runsOnDevice and FIGURE_SET_COLOURS of app.js
// (loaded first) and onDevice of ondevice.js.
"use strict";

const LIVE_LONG_SIDE = 640;    // px on the long side of the frames sent
const LIVE_JPEG_QUALITY = 0.85;
const LIVE_OPACITY = 0.45;     // of the tint; the outline is twice as opaque, as in the detail view
const LIVE_FPS_WINDOW = 10;    // answers the frame rate is measured over

// session counts starts and stops: a loop or an answer of an earlier session ends quietly.
const live = { stream: null, session: 0, answers: 0, times: [] };
const liveSleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function liveStatus(text, isError = false) {
  $("live-status").textContent = text;
  $("live-status").classList.toggle("error", isError);
}

function cameraError(error) {
  switch (error && error.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Camera access was denied: allow the camera for this page in the browser's site settings, then press Start camera.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No camera found on this device.";
    case "NotReadableError":
    case "AbortError":
      return "The camera could not be opened: another app may be using it.";
    default:
      return `The camera could not start: ${(error && error.message) || error}`;
  }
}

function showRunning(running) {
  $("live-start").hidden = running;
  $("live-start").disabled = false;
  $("live-stop").hidden = !running;
  $("live-view").hidden = !running;
}

async function startLive() {
  if (live.stream) return;
  $("live").hidden = false;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    // Browsers offer the camera only to secure pages: https, or http on localhost / 127.0.0.1.
    liveStatus(window.isSecureContext ? "This browser offers no camera to web pages."
      : `The camera needs a secure page: open it over https or on localhost (this page is ${location.origin}).`, true);
    return;
  }
  if (!chosenPrompts().length) { liveStatus("Tick cracks or taping areas, or type a prompt.", true); return; }
  const unknown = runsOnDevice() ? onDevice.unknownPromptsMessage(chosenPrompts()) : "";
  if (unknown) { liveStatus(unknown, true); return; }
  $("live-start").disabled = true;
  liveStatus("Asking for the camera…");
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } }, audio: false,
    });
  } catch (error) {
    $("live-start").disabled = false;
    liveStatus(cameraError(error), true);
    return;
  }
  const session = ++live.session;
  Object.assign(live, { stream, answers: 0, times: [] });
  $("live-count").textContent = "0";
  $("live-fps").textContent = "–";
  const video = $("live-video");
  video.srcObject = stream;
  showRunning(true);
  try {
    await video.play();
  } catch (error) {
    if (live.session === session) stopLive(`The camera could not be shown: ${error.message}`, true);
    return;
  }
  if (live.session !== session) return;  // stopped while the video was starting
  liveStatus("Live: waiting for the first answer…");
  $("live").scrollIntoView({ block: "nearest" });
  liveLoop(session);
}

function stopLive(message = "Camera stopped.", isError = false) {
  live.session++;
  if (live.stream) for (const track of live.stream.getTracks()) track.stop();
  live.stream = null;
  $("live-video").srcObject = null;
  showRunning(false);
  liveStatus(message, isError);
}

async function liveLoop(session) {
  const video = $("live-video");
  const grab = document.createElement("canvas");
  while (live.session === session) {
    const prompts = chosenPrompts();
    if (!prompts.length) {
      liveStatus("Tick cracks or taping areas, or type a prompt.", true);
      await liveSleep(500);
      continue;
    }
    if (!video.videoWidth) { await liveSleep(100); continue; }
    const scale = Math.min(1, LIVE_LONG_SIDE / Math.max(video.videoWidth, video.videoHeight));
    grab.width = Math.max(1, Math.round(video.videoWidth * scale));
    grab.height = Math.max(1, Math.round(video.videoHeight * scale));
    const context = grab.getContext("2d", { willReadFrequently: true });
    context.drawImage(video, 0, 0, grab.width, grab.height);
    // The scale is per pixel of the camera's full frame; the frame used is `scale` times smaller.
    const mm = Number($("mm").value.trim());
    if (runsOnDevice()) {
      const unknown = onDevice.unknownPromptsMessage(prompts);
      if (unknown) { stopLive(`Camera stopped: ${unknown}`, true); return; }
      const started = performance.now();
      try {
        const body = await onDevice.inspectPixels({ rgba: context.getImageData(0, 0, grab.width, grab.height).data,
                                                    width: grab.width, height: grab.height }, prompts, mm > 0 ? mm / scale : null);
        if (live.session !== session) return;
        await showLiveAnswer(body, session, mm > 0);
      } catch (error) {
        if (live.session === session) stopLive(`Camera stopped: the model failed on this device (${error.message}).`, true);
        return;
      }
      if (live.session === session) {
        liveStatus(`Live on this device (${onDevice.backend}): ${grab.width}×${grab.height} px frames, ` +
                   `last answer in ${Math.round(performance.now() - started)} ms.`);
      }
      await liveSleep(0);  // let the page draw between frames
      continue;
    }
    const blob = await new Promise((resolve) => grab.toBlob(resolve, "image/jpeg", LIVE_JPEG_QUALITY));
    if (live.session !== session) return;
    if (!blob) { stopLive("A camera frame could not be encoded as JPEG.", true); return; }
    const data = new FormData();
    data.append("image", blob, "camera.jpg");
    for (const prompt of prompts) data.append("prompt", prompt);
    data.append("mask_format", "png");
    if (mm > 0) data.append("mm_per_px", String(mm / scale));
    const sent = performance.now();
    let response, body;
    try {
      response = await fetch("/v1/segment", { method: "POST", body: data });
      body = await response.json().catch(() => ({}));
    } catch (error) {
      if (live.session === session) stopLive(`Camera stopped: the server could not be reached (${error.message}).`, true);
      return;
    }
    if (live.session !== session) return;
    if (response.status === 503 && /busy/.test((body.error && body.error.message) || "")) {
      const seconds = Number(response.headers.get("Retry-After")) || 1;
      liveStatus(`The server is busy: next frame in ${seconds} s.`, true);
      await liveSleep(1000 * seconds);
      continue;
    }
    if (!response.ok) {
      stopLive(`Camera stopped: the server answered error ${response.status}: ` +
               `${body.error ? body.error.message : response.statusText}`, true);
      return;
    }
    try {
      await showLiveAnswer(body, session, mm > 0);
    } catch (error) {
      if (live.session === session) stopLive(`Camera stopped: the answer could not be shown (${error.message}).`, true);
      return;
    }
    if (live.session === session) {
      liveStatus(`Live: ${grab.width}×${grab.height} px frames, last answer in ${Math.round(performance.now() - sent)} ms.`);
    }
  }
}

// The masks of an answer as one transparent canvas: each prompt's mask tinted in its figure set's colour.
async function drawLiveMasks(results) {
  const [height, width] = results[0].mask.size;
  const masks = await Promise.all(results.map(maskInside));
  const out = new ImageData(width, height);
  const target = out.data;
  masks.forEach((mask, k) => {
    const colour = FIGURE_SET_COLOURS[results[k].figure_set] || FIGURE_SET_COLOURS.area;
    const inside = (x, y) => x >= 0 && y >= 0 && x < width && y < height && mask[y * width + x] === 1;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        if (!inside(x, y)) continue;
        const edge = !inside(x - 1, y) || !inside(x + 1, y) || !inside(x, y - 1) || !inside(x, y + 1);
        const p = 4 * (y * width + x);
        target[p] = colour[0]; target[p + 1] = colour[1]; target[p + 2] = colour[2];
        target[p + 3] = Math.round(255 * (edge ? Math.min(1, 2 * LIVE_OPACITY) : LIVE_OPACITY));
      }
    }
  });
  return out;
}

async function showLiveAnswer(body, session, inMm) {
  const results = body.results || [];
  const overlay = results.length ? await drawLiveMasks(results) : null;
  if (live.session !== session) return;
  const canvas = $("live-overlay");
  if (overlay) {
    canvas.width = overlay.width;
    canvas.height = overlay.height;
    canvas.getContext("2d").putImageData(overlay, 0, 0);
  }
  const verdict = body.photo_verdict;  // the frame's prompts combined by the server, as for a photo
  $("live-verdict").textContent = verdict;
  $("live-verdict").className = `badge ${verdictClass(verdict)}`;
  const unit = inMm ? "mm" : "px";
  $("live-longest-head").textContent = `longest (${unit})`;
  $("live-width-head").textContent = `max width (${unit})`;
  $("live-table").tBodies[0].replaceChildren(...results.map((result) => {
    const figures = result.figures;
    const tr = document.createElement("tr");
    const verdictCell = cell("");
    verdictCell.append(badge(result.verdict));
    tr.append(cell(result.prompt), verdictCell,
              ...[figures.area_percent, figures[`longest_${unit}`], figures[`width_max_${unit}`], figures.confidence]
                .map((value) => cell(formatNumber(value ?? null), "num")));
    return tr;
  }));
  $("live-reasons").replaceChildren(...results.flatMap((result) => result.reasons.map((text) =>
    Object.assign(document.createElement("li"), { textContent: `${result.prompt}: ${text}` }))));
  $("live-caption").textContent = (body.warnings || []).join(" ");
  $("live-details").hidden = false;
  live.answers += 1;
  live.times.push(performance.now());
  if (live.times.length > LIVE_FPS_WINDOW) live.times.shift();
  $("live-count").textContent = String(live.answers);
  if (live.times.length > 1) {
    const seconds = (live.times[live.times.length - 1] - live.times[0]) / 1000;
    $("live-fps").textContent = ((live.times.length - 1) / seconds).toFixed(1);
  }
}

$("live-open").addEventListener("click", () => {
  $("live").hidden = false;
  $("live").scrollIntoView({ block: "nearest" });
  startLive();
});
$("live-start").addEventListener("click", startLive);
$("live-stop").addEventListener("click", () => stopLive());
// A phone locks or switches apps: the camera is released, not left running unseen.
document.addEventListener("visibilitychange", () => {
  if (document.hidden && live.stream) stopLive("Camera stopped: the page went to the background. Press Start camera to go on.");
});
window.addEventListener("pagehide", () => { if (live.stream) stopLive(); });
