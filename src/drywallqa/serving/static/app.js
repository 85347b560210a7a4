// The inspection page: send the photo and prompt to POST /v1/segment, show overlay and figures.
// Plain JS, no libraries, nothing loaded from other hosts (the page's CSP forbids it).
"use strict";

const form = document.getElementById("form");
const fileInput = document.getElementById("file");
const drop = document.getElementById("drop");
const dropText = document.getElementById("drop-text");
const submit = document.getElementById("submit");
const statusLine = document.getElementById("status");
let chosenFile = null;

// Figures in the order they are listed, with readable names.
const FIGURE_LABELS = {
  area_percent: "covered area (%)", area_px: "covered area (px)", components: "components",
  confidence: "model confidence", length_px: "length (px)", length_mm: "length (mm)",
  longest_px: "longest (px)", longest_mm: "longest (mm)", width_max_px: "max width (px)",
  width_max_mm: "max width (mm)", width_mean_px: "mean width (px)", width_mean_mm: "mean width (mm)",
};

function setStatus(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", isError);
}

function choose(file) {
  if (!file) return;
  chosenFile = file;
  dropText.textContent = `${file.name} (${(file.size / 1024).toFixed(0)} KB)`;
  submit.disabled = false;
  const preview = document.getElementById("preview");
  preview.src = URL.createObjectURL(file);
  document.getElementById("preview-panel").hidden = false;
  document.getElementById("result").hidden = true;
  setStatus("Ready: press Inspect.");
}

fileInput.addEventListener("change", () => choose(fileInput.files[0]));
for (const name of ["dragenter", "dragover"]) {
  drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
}
for (const name of ["dragleave", "drop"]) {
  drop.addEventListener(name, () => drop.classList.remove("over"));
}
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  choose(event.dataTransfer.files[0]);
});

function formatNumber(value) {
  if (value === null || value === undefined) return "–";
  if (Number.isInteger(value)) return String(value);
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3);
}

function showResult(body) {
  const result = body.results[0];
  document.getElementById("overlay").src = `data:${result.overlay.media_type};base64,${result.overlay.base64}`;
  document.getElementById("caption").textContent =
    `${body.image.filename} · ${body.image.width}×${body.image.height} px · "${result.prompt}"`;
  const verdict = document.getElementById("verdict");
  verdict.textContent = result.verdict;
  verdict.className = `badge ${result.verdict}`;
  document.getElementById("class-name").textContent =
    `${result.class || "unknown class"} · ${result.figure_set} figures · severity ${formatNumber(result.severity)}`;
  const reasons = document.getElementById("reasons");
  reasons.replaceChildren(...result.reasons.map((text) => {
    const item = document.createElement("li");
    item.textContent = text;
    return item;
  }));
  const rows = Object.entries(result.figures).map(([name, value]) => {
    const row = document.createElement("tr");
    const label = document.createElement("td");
    label.textContent = FIGURE_LABELS[name] || name;
    const cell = document.createElement("td");
    cell.textContent = formatNumber(value);
    row.append(label, cell);
    return row;
  });
  document.querySelector("#figures tbody").replaceChildren(...rows);
  const download = document.getElementById("download");
  download.href = `data:image/png;base64,${result.mask.base64}`;
  const stem = (body.image.filename || "image").replace(/\.[^.]+$/, "");
  download.download = `${stem}__${result.prompt.replace(/[^a-z0-9]+/gi, "-")}__mask.png`;
  document.getElementById("timing").textContent = `${formatNumber(body.timing_ms.total)} ms on the server`;
  document.getElementById("result").hidden = false;
  document.getElementById("preview-panel").hidden = true;  // the overlay shows the same photo
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!chosenFile) { setStatus("Choose a photo first.", true); return; }
  const data = new FormData();
  data.append("image", chosenFile, chosenFile.name);
  data.append("prompt", document.getElementById("prompt").value);
  data.append("mask_format", "png");
  data.append("overlay", "true");
  const mm = document.getElementById("mm").value.trim();
  if (mm) data.append("mm_per_px", mm);
  submit.disabled = true;
  setStatus("Inspecting…");
  try {
    const response = await fetch("/v1/segment", { method: "POST", body: data });
    const body = await response.json();
    if (!response.ok) {
      setStatus(`Error ${response.status}: ${body.error ? body.error.message : response.statusText}`, true);
      return;
    }
    showResult(body);
    // A prompt that names no known class is answered, but its verdict means nothing: say so.
    setStatus(body.warnings && body.warnings.length ? `Done. Warning: ${body.warnings.join(" ")}` : "Done.");
  } catch (error) {
    setStatus(`Request failed: ${error}`, true);
  } finally {
    submit.disabled = false;
  }
});
