// The inspection page: photos (files or a folder) go to POST /v1/segment a few at a time (the
// server batches them), results fill a sortable, filterable table; a row opens the photo, its mask
// or the overlay at any opacity; "Download all" asks POST /v1/export for the zip of masks,
// overlays and tables. Plain JS, no libraries, nothing from other hosts (the page's CSP forbids it).
// In an app built by `drywallqa app build` the model also runs on this device (ondevice.js, offline
// once loaded); a switch picks where when the page has both (`drywallqa serve --app`).
"use strict";

const $ = (id) => document.getElementById(id);
// The overlay colours of drywallqa.inference.render.FIGURE_SET_COLOURS (a test keeps them equal).
const FIGURE_SET_COLOURS = { crack: [235, 40, 40], joint: [30, 130, 255], area: [255, 176, 0] };
const IMAGE_NAME = /\.(jpe?g|png|bmp|tiff?|webp)$/i;
const IN_FLIGHT = 4;          // uploads at once: enough for the server to batch, few enough to show progress
const MAX_RETRIES = 20;       // 503 answers (server busy) waited out per photo
const FIGURE_LABELS = {
  area_percent: "covered area (%)", area_px: "covered area (px)", components: "components",
  confidence: "model confidence", length_px: "length (px)", length_mm: "length (mm)",
  longest_px: "longest (px)", longest_mm: "longest (mm)", width_max_px: "max width (px)",
  width_max_mm: "max width (mm)", width_mean_px: "mean width (px)", width_mean_mm: "mean width (mm)",
};
// The verdicts of drywallqa.qa.VERDICTS, worst first for sorting; then the states of a photo not yet answered.
const VERDICTS = ["fail", "pass", "not found", "unchecked"];
const VERDICT_ORDER = { fail: 0, "not found": 1, unchecked: 2, pass: 3, error: 4 };
const verdictClass = (verdict) => String(verdict).replace(/ /g, "-");  // "not found" -> class "not-found"

let chosen = [];              // [{file, name}] picked, not yet sent
let photos = [];              // the batch: {file, name, status, error, body, url, image}
let rows = [];                // one per photo and prompt: {photo, prompt, result}
let sort = { key: null, ascending: true };
let selected = null;          // the row shown in the detail panel
let scaleGiven = false;
let batchOnDevice = false;    // where the batch shown ran
const modes = { server: false, device: false };  // where this page can run the model
const runsOnDevice = () => $("where-device").checked;

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function formatNumber(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value !== "number") return String(value);  // e.g. width_source: "photo" or "mask"
  if (Number.isInteger(value)) return String(value);
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3);
}

// -- choosing photos ------------------------------------------------------------------------------
function choose(items) {
  chosen = items.filter((item) => IMAGE_NAME.test(item.name) || (item.file.type || "").startsWith("image/"));
  chosen.sort((a, b) => a.name.localeCompare(b.name));
  const skipped = items.length - chosen.length;
  $("submit").disabled = chosen.length === 0;
  $("drop-text").textContent = chosen.length
    ? `${chosen.length} photo(s) chosen${skipped ? ` (${skipped} other file(s) left out)` : ""}`
    : "Drop photos or a folder here, or choose files";
  setStatus(chosen.length ? "Ready: press Inspect." : "No image files there: choose JPEG, PNG, WebP, BMP or TIFF photos.",
            !chosen.length);
}

const fromFileList = (list) => Array.from(list, (file) => ({ file, name: file.webkitRelativePath || file.name }));
$("files").addEventListener("change", () => choose(fromFileList($("files").files)));
$("folder").addEventListener("change", () => choose(fromFileList($("folder").files)));

// A dropped folder is read through the entries API, sub-folders included.
function readEntry(entry) {
  if (entry.isFile) {
    return new Promise((resolve) => entry.file((file) => resolve([{ file, name: entry.fullPath.replace(/^\//, "") }]),
                                               () => resolve([])));
  }
  const reader = entry.createReader();
  const batch = () => new Promise((resolve) => reader.readEntries(resolve, () => resolve([])));
  return (async () => {
    const found = [];
    for (let entries = await batch(); entries.length; entries = await batch()) {
      for (const child of entries) found.push(...await readEntry(child));
    }
    return found;
  })();
}

const drop = $("drop");
for (const name of ["dragenter", "dragover"]) {
  drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
}
for (const name of ["dragleave", "drop"]) drop.addEventListener(name, () => drop.classList.remove("over"));
drop.addEventListener("drop", async (event) => {
  event.preventDefault();
  const entries = Array.from(event.dataTransfer.items || [], (item) => item.webkitGetAsEntry && item.webkitGetAsEntry())
    .filter(Boolean);
  if (!entries.length) { choose(fromFileList(event.dataTransfer.files)); return; }
  const found = [];
  for (const entry of entries) found.push(...await readEntry(entry));
  choose(found);
});

function chosenPrompts() {
  const prompts = ["prompt-crack", "prompt-taping"].filter((id) => $(id).checked).map((id) => $(id).value);
  const custom = $("prompt-custom").value.trim();
  if (custom) prompts.push(custom);
  return [...new Set(prompts)];
}

// -- running a batch ------------------------------------------------------------------------------
$("form").addEventListener("submit", (event) => {
  event.preventDefault();
  const prompts = chosenPrompts();
  if (!chosen.length) { setStatus("Choose photos first.", true); return; }
  if (!prompts.length) { setStatus("Tick cracks or taping areas, or type a prompt.", true); return; }
  if (!runsOnDevice() && !modes.server) { setStatus("There is no model here: no server answers and no on-device model came with the page.", true); return; }
  const unknown = runsOnDevice() ? onDevice.unknownPromptsMessage(prompts) : "";
  if (unknown) { setStatus(unknown, true); return; }
  const mm = $("mm").value.trim();
  if (mm && !(Number(mm) > 0)) { setStatus("The scale must be a positive number of millimetres per pixel.", true); return; }
  runBatch(chosen, prompts, mm);
});

async function runBatch(items, prompts, mm) {
  for (const photo of photos) URL.revokeObjectURL(photo.url);
  photos = items.map(({ file, name }) => ({ file, name, status: "queued", error: null, body: null,
                                             url: URL.createObjectURL(file), image: null }));
  rows = photos.flatMap((photo) => prompts.map((prompt) => ({ photo, prompt, result: null })));
  scaleGiven = Boolean(mm);
  batchOnDevice = runsOnDevice();
  $("longest-head").textContent = scaleGiven ? "longest (mm)" : "longest (px)";
  $("width-head").textContent = scaleGiven ? "max width (mm)" : "max width (px)";
  selected = null;
  $("detail").hidden = true;
  $("results").hidden = false;
  $("submit").disabled = true;
  $("download").disabled = true;
  $("progress").hidden = false;
  $("progress").max = photos.length;
  showProgress();
  renderTable();
  let next = 0;
  const worker = async () => {
    while (next < photos.length) {
      const photo = photos[next++];
      await (batchOnDevice ? inspectOnDevice(photo, prompts, mm) : inspect(photo, prompts, mm));
      showProgress();
      renderTable();
    }
  };
  // One photo at a time on this device: its model calls run one after another anyway.
  await Promise.all(Array.from({ length: Math.min(batchOnDevice ? 1 : IN_FLIGHT, photos.length) }, worker));
  $("submit").disabled = chosen.length === 0;
  $("download").disabled = !rows.some((row) => row.result) || !modes.server;
  showProgress(true);
}

async function inspect(photo, prompts, mm) {
  const data = new FormData();
  data.append("image", photo.file, photo.file.name);
  for (const prompt of prompts) data.append("prompt", prompt);
  data.append("mask_format", "png");
  if (mm) data.append("mm_per_px", mm);
  for (let attempt = 0; ; attempt++) {
    photo.status = "sending";
    renderTable();
    let response, body;
    try {
      response = await fetch("/v1/segment", { method: "POST", body: data });
      body = await response.json();
    } catch (error) {
      photo.status = "error";
      photo.error = `request failed: ${error}`;
      return;
    }
    if (response.status === 503 && attempt < MAX_RETRIES && /busy/.test(body.error?.message || "")) {
      // Back-pressure: the server's queue is full; wait as long as it says and send again.
      photo.status = "waiting";
      renderTable();
      const seconds = Number(response.headers.get("Retry-After")) || 1;
      await new Promise((resolve) => setTimeout(resolve, 1000 * seconds));
      continue;
    }
    if (!response.ok) {
      photo.status = "error";
      photo.error = `error ${response.status}: ${body.error ? body.error.message : response.statusText}`;
      return;
    }
    answered(photo, body);
    return;
  }
}

function answered(photo, body) {
  photo.status = "done";
  photo.body = body;
  for (const row of rows) {
    if (row.photo === photo) row.result = body.results.find((result) => result.prompt === row.prompt) || null;
  }
}

async function inspectOnDevice(photo, prompts, mm) {
  photo.status = "running";
  renderTable();
  try {
    const body = await onDevice.inspectFile(photo.file, photo.name, prompts, mm ? Number(mm) : null);
    // Masks kept as PNGs, not as arrays of a byte per pixel: a batch of hundreds of photos stays small.
    for (const result of body.results) {
      result.mask.png = await maskPng(result);
      delete result.mask.bits;
    }
    answered(photo, body);
  } catch (error) {
    photo.status = "error";
    photo.error = error.message;
  }
}

// Seconds per photo on this device so far (each photo's decode, model calls, figures and verdicts).
function deviceSeconds() {
  const times = photos.filter((p) => p.body && p.body.backend).map((p) => p.body.timing_ms.total / 1000);
  return times.length ? ` on this device, ${(times.reduce((a, b) => a + b, 0) / times.length).toFixed(2)} s per photo` : "";
}

function showProgress(finished = false) {
  const done = photos.filter((p) => p.status === "done").length;
  const failed = photos.filter((p) => p.status === "error").length;
  const waiting = photos.filter((p) => p.status === "waiting").length;
  $("progress").value = done + failed;
  // The photos' verdicts first (each photo's prompts combined, as the server says), then the masks'.
  const counts = (verdicts) => VERDICTS.map((v) => `${verdicts.filter((x) => x === v).length} ${v}`).join(" · ");
  const answered = photos.filter((p) => p.body);
  $("summary").textContent = `photos: ${counts(answered.map((p) => p.body.photo_verdict))}` +
    ` — masks: ${counts(rows.filter((row) => row.result).map((row) => row.result.verdict))}` +
    (failed ? ` · ${failed} error(s)` : "");
  if (finished) {
    const where = batchOnDevice ? deviceSeconds() : "";
    setStatus(`Done: ${done} of ${photos.length} photo(s) inspected${where}` +
              (failed ? `, ${failed} with an error (see the table).` : "."), failed > 0 && done === 0);
  } else {
    setStatus(`Inspecting… ${done + failed} of ${photos.length} photo(s)` + (batchOnDevice ? deviceSeconds() : "") +
              (waiting ? `, ${waiting} waiting for the busy server` : ""));
  }
}

// -- the table ------------------------------------------------------------------------------------
function rowVerdict(row) {
  if (row.result) return row.result.verdict;
  return row.photo.status === "error" ? "error" : row.photo.status;
}

function photoVerdict(row) {
  return row.photo.body ? row.photo.body.photo_verdict : rowVerdict(row);
}

function badge(verdict) {
  return Object.assign(document.createElement("span"), { className: `badge ${verdictClass(verdict)}`, textContent: verdict });
}

function rowValue(row, key) {
  const figures = row.result ? row.result.figures : {};
  const unit = scaleGiven ? "mm" : "px";
  switch (key) {
    case "name": return row.photo.name;
    case "prompt": return row.prompt;
    case "photo_verdict": return VERDICT_ORDER[photoVerdict(row)] ?? 5;
    case "verdict": return VERDICT_ORDER[rowVerdict(row)] ?? 5;
    case "severity": return row.result ? row.result.severity : null;
    case "area": return figures.area_percent ?? null;
    case "longest": return figures[`longest_${unit}`] ?? null;
    case "width": return figures[`width_max_${unit}`] ?? null;
    case "confidence": return figures.confidence ?? null;
    default: return null;
  }
}

function visibleRows() {
  const filter = $("filter").value;
  const shown = rows.filter((row) => filter === "all" || rowVerdict(row) === filter);
  if (sort.key) {
    const sign = sort.ascending ? 1 : -1;
    shown.sort((a, b) => {
      const x = rowValue(a, sort.key), y = rowValue(b, sort.key);
      if (x === null || y === null) return (x === null) - (y === null);  // missing values last
      return sign * (typeof x === "string" ? x.localeCompare(y) : x - y);
    });
  }
  return shown;
}

function cell(text, className = "") {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function renderTable() {
  const body = $("table").tBodies[0];
  body.replaceChildren(...visibleRows().map((row) => {
    const tr = document.createElement("tr");
    const verdict = rowVerdict(row);
    tr.className = `row-${verdictClass(verdict)}` + (row === selected ? " selected" : "");
    const photoCell = cell("", "photo-verdict");
    if (row.photo.body) photoCell.append(badge(row.photo.body.photo_verdict));
    const verdictCell = cell("", "verdict");
    verdictCell.append(badge(verdict));
    if (verdict === "error") verdictCell.append(" ", Object.assign(document.createElement("span"),
                                                  { className: "error-text", textContent: row.photo.error }));
    tr.append(cell(row.photo.name, "name"), photoCell, cell(row.prompt), verdictCell,
              ...["severity", "area", "longest", "width", "confidence"].map((key) => cell(formatNumber(rowValue(row, key)), "num")));
    if (row.result) {
      tr.tabIndex = 0;
      tr.addEventListener("click", () => select(row));
      tr.addEventListener("keydown", (event) => { if (event.key === "Enter") select(row); });
    }
    return tr;
  }));
  for (const th of $("table").tHead.rows[0].cells) {
    th.classList.toggle("sorted", th.dataset.sort === sort.key);
    th.classList.toggle("descending", th.dataset.sort === sort.key && !sort.ascending);
  }
}

for (const th of document.querySelectorAll("#table th[data-sort]")) {
  th.addEventListener("click", () => {
    sort = { key: th.dataset.sort, ascending: sort.key === th.dataset.sort ? !sort.ascending : true };
    renderTable();
  });
}
$("filter").addEventListener("change", renderTable);

// -- one result: photo, mask, overlay -------------------------------------------------------------
const loadImage = (src) => new Promise((resolve, reject) => {
  const image = new Image();
  image.onload = () => resolve(image);
  image.onerror = () => reject(new Error("the image could not be shown"));
  image.src = src;
});

// A mask as 0/1 per pixel: the device's own array, or the server's PNG decoded.
async function maskInside(result) {
  if (result.mask.bits) return result.mask.bits;
  const [height, width] = result.mask.size;
  const url = result.mask.png ? URL.createObjectURL(result.mask.png) : `data:image/png;base64,${result.mask.base64}`;
  const image = await loadImage(url).finally(() => { if (result.mask.png) URL.revokeObjectURL(url); });
  const context = Object.assign(document.createElement("canvas"), { width, height }).getContext("2d");
  context.drawImage(image, 0, 0, width, height);
  const data = context.getImageData(0, 0, width, height).data;
  const inside = new Uint8Array(width * height);
  for (let i = 0; i < inside.length; i++) inside[i] = data[4 * i] > 127 ? 1 : 0;
  return inside;
}

// A mask as a PNG blob (255 on 0): the server's, the device's stored one, or one drawn from its array.
async function maskPng(result) {
  if (result.mask.base64) return base64Blob(result.mask.base64, "image/png");
  if (result.mask.png) return result.mask.png;
  const [height, width] = result.mask.size;
  const canvas = Object.assign(document.createElement("canvas"), { width, height });
  const image = new ImageData(width, height);
  const pixels = new Uint32Array(image.data.buffer);  // RGBA bytes as one little-endian word each
  result.mask.bits.forEach((bit, i) => { pixels[i] = bit ? 0xffffffff : 0xff000000; });
  canvas.getContext("2d").putImageData(image, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

// The photo and the mask at the mask's size (the server decodes large photos reduced), as pixels.
async function pixelsOf(row) {
  if (row.pixels) return row.pixels;
  const [photo, inside] = await Promise.all([row.photo.image || loadImage(row.photo.url), maskInside(row.result)]);
  row.photo.image = photo;
  const [height, width] = row.result.mask.size;
  const context = Object.assign(document.createElement("canvas"), { width, height }).getContext("2d");
  context.drawImage(photo, 0, 0, width, height);
  const image = context.getImageData(0, 0, width, height);
  // The outline: mask pixels with a background 4-neighbour (or on the frame), drawn twice as opaque as
  // the tint so that thin cracks (all outline) show at the default opacity.
  const edge = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      if (inside[i] && (x === 0 || y === 0 || x === width - 1 || y === height - 1 ||
                        !inside[i - 1] || !inside[i + 1] || !inside[i - width] || !inside[i + width])) edge[i] = 1;
    }
  }
  row.pixels = { width, height, photo: image, inside, edge };
  return row.pixels;
}

function compose(pixels, view, opacity, colour) {
  const out = new ImageData(pixels.width, pixels.height);
  const source = pixels.photo.data, target = out.data;
  for (let i = 0, p = 0; i < pixels.inside.length; i++, p += 4) {
    if (view === "mask") {
      const v = pixels.inside[i] ? 255 : 0;
      target[p] = target[p + 1] = target[p + 2] = v;
    } else if (view === "overlay" && pixels.inside[i]) {
      const alpha = pixels.edge[i] ? Math.min(1, 2 * opacity) : opacity;
      for (let c = 0; c < 3; c++) target[p + c] = Math.round(source[p + c] * (1 - alpha) + colour[c] * alpha);
    } else {
      target[p] = source[p]; target[p + 1] = source[p + 1]; target[p + 2] = source[p + 2];
    }
    target[p + 3] = 255;
  }
  return out;
}

async function draw() {
  if (!selected) return;
  const row = selected;
  const pixels = await pixelsOf(row);
  if (row !== selected) return;
  const view = document.querySelector("input[name=view]:checked").value;
  const canvas = $("canvas");
  canvas.width = pixels.width;
  canvas.height = pixels.height;
  const colour = FIGURE_SET_COLOURS[row.result.figure_set] || FIGURE_SET_COLOURS.area;
  canvas.getContext("2d").putImageData(compose(pixels, view, Number($("opacity").value) / 100, colour), 0, 0);
  canvas.dataset.view = view;
}

async function select(row) {
  selected = row;
  renderTable();
  const result = row.result, body = row.photo.body;
  $("detail-verdict").textContent = result.verdict;
  $("detail-verdict").className = `badge ${verdictClass(result.verdict)}`;
  $("detail-photo-verdict").textContent = body.photo_verdict;
  $("detail-photo-verdict").className = `badge ${verdictClass(body.photo_verdict)}`;
  $("detail-class").textContent =
    `${result.class || "unknown class"} · ${result.figure_set} figures · severity ${formatNumber(result.severity)}`;
  $("detail-caption").textContent = `${row.photo.name} · ${body.image.width}×${body.image.height} px · "${result.prompt}"` +
    (body.backend ? ` · ${Math.round(body.timing_ms.total)} ms on this device (${body.backend})` : "");
  $("detail-rules-title").textContent = result.reasons.length ? "Rules failed:"
    : result.verdict === "not found" ? "Nothing found: nothing to judge (the QA rules do not require this class in the photo)."
    : result.verdict === "unchecked" ? "No rule applies to this prompt."
    : result.checked.length ? `Rules checked, none failed: ${result.checked.join(", ")}` : "Found; no rule applies without a scale.";
  $("detail-reasons").replaceChildren(...result.reasons.map((text) => Object.assign(document.createElement("li"), { textContent: text })));
  const warning = result.prompt_known ? "" : (body.warnings || []).find((line) => line.includes(result.prompt)) || "";
  $("detail-warning").textContent = warning;
  $("detail-warning").hidden = !warning;
  $("detail-figures").tBodies[0].replaceChildren(...Object.entries(result.figures).map(([name, value]) => {
    const tr = document.createElement("tr");
    tr.append(cell(FIGURE_LABELS[name] || name), cell(formatNumber(value)));
    return tr;
  }));
  const link = $("detail-mask");
  if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
  link.href = result.mask.base64 ? `data:image/png;base64,${result.mask.base64}` : URL.createObjectURL(await maskPng(result));
  link.download = `${row.photo.name.replace(/\.[^.]+$/, "").replace(/[^A-Za-z0-9._-]+/g, "_")}__${result.prompt.replace(/[^a-z0-9]+/gi, "-")}__mask.png`;
  link.hidden = false;
  const opening = $("detail").hidden;
  $("detail").hidden = false;
  if (opening) $("detail").scrollIntoView({ block: "nearest" });
  await draw();
}

$("opacity").addEventListener("input", draw);
for (const radio of document.querySelectorAll("input[name=view]")) radio.addEventListener("change", draw);

// -- download everything --------------------------------------------------------------------------
const base64Blob = (text, type) => new Blob([Uint8Array.from(atob(text), (c) => c.charCodeAt(0))], { type });

async function overlayJpeg(row) {
  const pixels = await pixelsOf(row);
  const canvas = Object.assign(document.createElement("canvas"), { width: pixels.width, height: pixels.height });
  const colour = FIGURE_SET_COLOURS[row.result.figure_set] || FIGURE_SET_COLOURS.area;
  canvas.getContext("2d").putImageData(compose(pixels, "overlay", Number($("opacity").value) / 100, colour), 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
}

$("download").addEventListener("click", async () => {
  const done = rows.filter((row) => row.result);
  if (!done.length) return;
  $("download").disabled = true;
  setStatus(`Packing ${done.length} result(s)…`);
  try {
    const data = new FormData();
    data.append("items", JSON.stringify(done.map((row) => ({
      image: row.photo.name, prompt: row.prompt, width: row.photo.body.image.width, height: row.photo.body.image.height,
      confidence: row.result.figures.confidence ?? null,
    }))));
    if (scaleGiven) data.append("mm_per_px", String(done[0].photo.body.mm_per_px));
    for (const [i, row] of done.entries()) data.append("mask", await maskPng(row.result), `mask-${i}.png`);
    for (const [i, row] of done.entries()) data.append("overlay", await overlayJpeg(row), `overlay-${i}.jpg`);
    const response = await fetch("/v1/export", { method: "POST", body: data });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      setStatus(`Download failed: error ${response.status}: ${body.error ? body.error.message : response.statusText}`, true);
      return;
    }
    const link = Object.assign(document.createElement("a"), {
      href: URL.createObjectURL(await response.blob()), download: "drywallqa-results.zip",
    });
    document.body.append(link);
    link.click();
    link.remove();
    setStatus(`Downloaded drywallqa-results.zip: masks, overlays, results.csv, results.jsonl and coco.json of ${done.length} result(s).`);
  } catch (error) {
    setStatus(`Download failed: ${error}`, true);
  } finally {
    $("download").disabled = false;
  }
});
