// The page's on-device mode: the model of an app built by `drywallqa app build` runs in this browser
// with onnxruntime-web (ort/), on WebGPU when the browser offers an adapter, else on WebAssembly
// (SIMD; several threads when the page is cross-origin isolated). A photo goes the way it goes in
// Python (drywallqa.inference.Predictor, drywallqa.qa.inspect_mask), with processing.js and qa.js:
// decoded as a viewer shows it (EXIF orientation applied, colour profile ignored), stretched to the
// model's input, logits resized back and cut at the prompt's calibrated threshold, figures measured
// (crack widths and taping figures on the photo, as the server measures them) and judged by the
// app's QA rules. The answer has the shape of the server's POST /v1/segment, its
// masks as 0/1 arrays. The prompts the model knows are those whose embeddings came with it
// (model/model.json): there is no text encoder in the browser. `?backend=wasm` and `?threads=N`
// in the page's address choose the backend and the threads (for measurements).
"use strict";

const onDevice = (() => {
  const P = DrywallProcessing, QA = DrywallQA;
  const MODEL_FORMAT = "drywallqa-webapp-model";
  const state = { manifest: null, prompts: new Map(), session: null, ort: null, backend: "", note: "", loading: null };
  const asked = new URLSearchParams(location.search);

  // The app's model/model.json, or null when this page has no on-device model (plain `drywallqa serve`,
  // whose app.json lists no files).
  async function probe() {
    try {
      const app = await fetch("app.json").then((r) => (r.ok ? r.json() : null));
      if (!app || !app.files || !("model/model.json" in app.files)) return null;
      const response = await fetch("model/model.json");
      if (!response.ok) return null;
      const manifest = await response.json();
      if (manifest.format !== MODEL_FORMAT || manifest.version !== 1) return null;
      state.manifest = manifest;
      for (const entry of manifest.prompts) state.prompts.set(entry.key, entry);
      return manifest;
    } catch (error) {
      return null;
    }
  }

  const knownPrompts = () => state.manifest.prompts.filter((p) => p.kind === "canonical").map((p) => `"${p.text}"`);

  // One line for prompts the on-device model has no embedding for, or "" when it knows them all.
  function unknownPromptsMessage(prompts) {
    const unknown = prompts.filter((prompt) => !state.prompts.has(P.promptKey(prompt)));
    if (!unknown.length) return "";
    return `The on-device model does not know ${unknown.map((p) => `"${p}"`).join(", ")}: it runs only the prompts whose ` +
      `embeddings came with it (there is no text encoder in the browser), e.g. ${knownPrompts().join(", ")} and their ` +
      "paraphrases. Use one of those, or run on the server.";
  }

  function wasmThreads() {
    if (!self.crossOriginIsolated) return 1;  // no SharedArrayBuffer: one thread
    const threads = Number(asked.get("threads"));
    return threads > 0 ? threads : Math.min(4, Math.max(1, Math.ceil((navigator.hardwareConcurrency || 2) / 2)));
  }

  async function webgpuAdapter() {
    if (asked.get("backend") === "wasm") return [null, "WebAssembly asked for (?backend=wasm)"];
    if (!state.manifest.runtime.backends.includes("webgpu")) return [null, "this app was built without WebGPU"];
    if (!navigator.gpu) return [null, "this browser offers no WebGPU"];
    try {
      const adapter = await navigator.gpu.requestAdapter();
      return adapter ? [adapter, ""] : [null, "this browser found no WebGPU adapter"];
    } catch (error) {
      return [null, `WebGPU failed (${error.message})`];
    }
  }

  async function createSession(module, model, providers) {
    const ort = await import(new URL(`ort/${module}`, document.baseURI).href);
    ort.env.wasm.wasmPaths = new URL("ort/", document.baseURI).href;
    ort.env.wasm.numThreads = wasmThreads();
    ort.env.logLevel = "error";
    const session = await ort.InferenceSession.create(model, { executionProviders: providers, graphOptimizationLevel: "all",
                                                               logSeverityLevel: 3 });
    return [ort, session];
  }

  // Load the model once: WebGPU when there is an adapter, else (or when it fails) WebAssembly.
  function load() {
    if (!state.loading) {
      state.loading = (async () => {
        const started = performance.now();
        const response = await fetch(`model/${state.manifest.model.file}`);
        if (!response.ok) throw new Error(`the model could not be loaded (error ${response.status})`);
        const model = new Uint8Array(await response.arrayBuffer());
        let [adapter, why] = await webgpuAdapter();
        if (adapter) {
          try {
            [state.ort, state.session] = await createSession("ort.webgpu.min.mjs", model, ["webgpu"]);
            state.backend = "WebGPU";
          } catch (error) {
            why = `WebGPU failed (${error.message})`;
          }
        }
        if (!state.session) {
          [state.ort, state.session] = await createSession("ort.wasm.min.mjs", model, ["wasm"]);
          const threads = state.ort.env.wasm.numThreads;
          state.backend = `WebAssembly (SIMD, ${threads} thread${threads === 1 ? "" : "s"})`;
        }
        // One run on a blank input: the first run of a session prepares its kernels and memory (several
        // times a run's time), which would otherwise land on the first photo's time.
        const size = state.manifest.model.image_size, first = state.manifest.prompts[0].embedding;
        await state.session.run({
          images: new state.ort.Tensor("float32", new Float32Array(3 * size * size), [1, 3, size, size]),
          prompt_embeddings: new state.ort.Tensor("float32", Float32Array.from(first), [1, first.length]),
        });
        const seconds = ((performance.now() - started) / 1000).toFixed(1);
        state.note = `On this device: ${state.backend}` + (why ? `; ${why}, so it runs on WebAssembly` : "") +
          `. Model ${state.manifest.model.name} ${state.manifest.model.precision}, loaded in ${seconds} s.`;
      })();
      state.loading.catch(() => { state.loading = null; });  // a failed load can be tried again
    }
    return state.loading;
  }

  // The photo's pixels as a viewer shows it; larger than photo.max_side on its long side, reduced
  // by area averaging (as read_photo does), with the scale that keeps figures in the file's pixels.
  async function decode(file, name) {
    let bitmap;
    try {
      bitmap = await createImageBitmap(file, { imageOrientation: "from-image", colorSpaceConversion: "none",
                                               premultiplyAlpha: "none" });
    } catch (error) {
      throw new Error(`${name}: not a readable image (corrupt, or a format this browser cannot decode)`);
    }
    const { width, height } = bitmap;
    const { max_side: maxSide, min_side: minSide } = state.manifest.photo;
    if (Math.min(width, height) < minSide) {
      bitmap.close();
      throw new Error(`${name}: image is ${width}x${height} px; drywallqa judges images of at least ${minSide} px a side`);
    }
    const canvas = Object.assign(document.createElement("canvas"), { width, height });
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(bitmap, 0, 0);
    bitmap.close();
    let rgba = context.getImageData(0, 0, width, height).data;
    let [w, h] = [width, height];
    if (Math.max(width, height) > maxSide) {
      const factor = Math.max(width, height) / maxSide;
      [w, h] = [Math.max(1, Math.round(width / factor)), Math.max(1, Math.round(height / factor))];
      rgba = P.reduceRGBA(rgba, width, height, w, h);
    }
    return { rgba, width: w, height: h, fullWidth: width, fullHeight: height };
  }

  /**
   * Segment, measure and judge one image for each prompt, as POST /v1/segment answers.
   * @param {{rgba: Uint8ClampedArray, width: number, height: number, fullWidth?: number, fullHeight?: number}} image
   * @param {string[]} prompts known to the model (see unknownPromptsMessage)
   * @param {number|null} mmPerPx scale of the full-size image, or null
   */
  async function inspectPixels(image, prompts, mmPerPx = null, name = "camera") {
    await load();
    const { manifest, ort, session } = state;
    const { rgba, width, height } = image;
    const fullWidth = image.fullWidth || width, fullHeight = image.fullHeight || height;
    const size = manifest.model.image_size, rules = manifest.qa_rules;
    const started = performance.now();
    const images = new ort.Tensor("float32", P.modelInput(rgba, width, height, size), [1, 3, size, size]);
    const timing = { resize: performance.now() - started, model: 0, figures: 0 };
    const photo = { rgba, grey: null };  // its grey levels converted once, by the first prompt that needs them
    const results = [];
    for (const prompt of prompts) {
      const entry = state.prompts.get(P.promptKey(prompt));
      if (!entry) throw new Error(unknownPromptsMessage([prompt]));
      const embedding = new ort.Tensor("float32", Float32Array.from(entry.embedding), [1, entry.embedding.length]);
      let clock = performance.now();
      const output = await session.run({ images, prompt_embeddings: embedding });
      const logits = await output.mask_logits.getData(), confidence = (await output.confidence_logits.getData())[0];
      timing.model += performance.now() - clock;
      clock = performance.now();
      const mask = P.maskFromLogits(logits, size, width, height, entry.threshold);
      // The photo at the mask's size, as Prediction.measure gives it: widths are measured on it.
      const figures = QA.measureMask(mask, width, height, entry.figure_set, {
        mmPerPx, confidence: P.sigmoid(confidence), minComponentAreaPx: rules.min_component_area_px, scale: fullWidth / width,
        image: photo,
      });
      const profile = figures.width_profile ? { width_profile: figures.width_profile } : {};
      results.push({ prompt, class: entry.class, figure_set: entry.figure_set, figures: QA.figuresDict(figures),
                     ...QA.judge(rules, entry.class, figures), ...profile, prompt_known: true,
                     mask: { size: [height, width], bits: mask } });
      timing.figures += performance.now() - clock;
    }
    const round = (ms) => Math.round(ms * 100) / 100;
    return {
      photo_verdict: QA.photoVerdict(results.map((r) => r.verdict)), model: `${manifest.model.name} (on this device)`,
      image: { filename: name, width: fullWidth, height: fullHeight, decoded_width: width, decoded_height: height },
      mm_per_px: mmPerPx, results, warnings: [], backend: state.backend,
      timing_ms: { resize: round(timing.resize), model: round(timing.model), figures: round(timing.figures),
                   total: round(performance.now() - started) },
    };
  }

  // inspectPixels for a photo file; decoding counts in its time.
  async function inspectFile(file, name, prompts, mmPerPx = null) {
    await load();
    const started = performance.now();
    const image = await decode(file, name);
    const decoded = performance.now();
    const body = await inspectPixels(image, prompts, mmPerPx, name);
    body.timing_ms.decode = Math.round((decoded - started) * 100) / 100;
    body.timing_ms.total = Math.round((performance.now() - started) * 100) / 100;
    return body;
  }

  return {
    probe, load, unknownPromptsMessage, inspectPixels, inspectFile,
    get ready() { return Boolean(state.session); },
    get note() { return state.note; },
    get backend() { return state.backend; },
  };
})();
