// The QA domain (drywallqa.qa) ported to plain JS for the on-device mode (ondevice.js): each
// function names the Python it follows, and tests/serving/test_webapp_qa_js.py runs this file in
// Node against that Python.
//   - drywallqa.qa.figures.measure_mask (area, components, crack and joint lengths and widths, with
//     skimage's Zhang-Suen skeleton and an exact Euclidean distance transform; given the photo,
//     crack widths across the dark line on it, crack_width.js, and taping figures on the band
//     refined from it, taping_band.js with joint_lines.js and ridges.js);
//   - drywallqa.qa.rules: QARules.judge, Rule.check (severity, reasons) and photo_verdict.
// Masks are row-major Uint8Array of 0/1.
"use strict";

const DrywallQA = (() => {
  const VERDICTS = ["fail", "pass", "not found", "unchecked"];
  // Given the photo, crack widths are read across the dark line on it (crack_width.js) and taping
  // figures on the band refined from it (taping_band.js), as predict and serve do (width_source
  // "photo"); without it width_* are the mask's (width_source "mask").
  const LENGTH_FIGURES = ["length", "longest", "width_max", "width_mean", "mask_width_max", "mask_width_mean"];
  const MAX_SEVERITY = 100.0;

  // -- figures (drywallqa.qa.figures.measure_mask) ----------------------------------------------
  // 8-connected components (two-pass union-find) with at least minArea pixels, labelled 1..K.
  function labelComponents(mask, width, height, minArea) {
    const labels = new Int32Array(width * height);
    const parent = [0];
    const find = (a) => { while (parent[a] !== a) { parent[a] = parent[parent[a]]; a = parent[a]; } return a; };
    // A pixel with label `label` (0: none yet) touches one labelled `other`: one component, its lowest root.
    const join = (label, other) => {
      const root = find(other);
      if (!label || root === label) return root;
      const low = Math.min(root, label);
      parent[root] = low;
      parent[label] = low;
      return low;
    };
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const i = y * width + x;
        if (!mask[i]) continue;
        let label = 0;
        if (x > 0 && labels[i - 1]) label = join(label, labels[i - 1]);
        if (y > 0) {
          if (x > 0 && labels[i - width - 1]) label = join(label, labels[i - width - 1]);
          if (labels[i - width]) label = join(label, labels[i - width]);
          if (x < width - 1 && labels[i - width + 1]) label = join(label, labels[i - width + 1]);
        }
        if (!label) { label = parent.length; parent.push(label); }
        labels[i] = label;
      }
    }
    const area = new Int32Array(parent.length);
    for (let i = 0; i < labels.length; i++) if (labels[i]) { labels[i] = find(labels[i]); area[labels[i]]++; }
    const relabel = new Int32Array(parent.length);
    let count = 0;
    const keep = Math.max(Math.ceil(minArea), 1);
    for (let l = 1; l < parent.length; l++) if (parent[l] === l && area[l] >= keep) relabel[l] = ++count;
    for (let i = 0; i < labels.length; i++) labels[i] = relabel[labels[i]];
    return { labels, count };
  }

  // skimage.morphology.skeletonize (Zhang-Suen, skimage's look-up table): 1 where the skeleton is.
  const ZHANG_LUT = [
    0, 0, 0, 1, 0, 0, 1, 3, 0, 0, 3, 1, 1, 0, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2, 0, 3, 0, 3, 3,
    0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 3, 0, 2, 2,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 3, 0, 2, 0,
    0, 0, 3, 1, 0, 0, 1, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 3, 1, 3, 0, 0, 1, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 3, 3, 0, 1, 0, 0, 0, 0, 2, 2, 0, 0, 2, 0, 0, 0,
  ];

  function skeletonize(image, width, height) {
    const w = width + 2, h = height + 2;  // a background border: no pixel needs a bounds check
    const skeleton = new Uint8Array(w * h), front = new Uint8Array(w * h);
    const around = [-w - 1, -w, -w + 1, 1, w + 1, w, w - 1, -1];
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) if (image[y * width + x]) skeleton[(y + 1) * w + x + 1] = 1;
    }
    // Thinning only removes pixels with a background neighbour (all eight set is code 255, kept),
    // and a background pixel stays background: only the front of set pixels next to one is read.
    let active = [];
    for (let i = w; i < w * (h - 1); i++) {
      if (skeleton[i] && !(skeleton[i - w - 1] & skeleton[i - w] & skeleton[i - w + 1] & skeleton[i + 1] & skeleton[i + w + 1] &
                           skeleton[i + w] & skeleton[i + w - 1] & skeleton[i - 1])) { front[i] = 1; active.push(i); }
    }
    const removed = [];
    for (let changed = true; changed;) {
      changed = false;
      for (let pass = 0; pass < 2; pass++) {
        // Each pass reads the skeleton as it was at its start and removes its pixels at its end.
        for (const i of active) {
          const code = skeleton[i - w - 1] + 2 * skeleton[i - w] + 4 * skeleton[i - w + 1] + 8 * skeleton[i + 1] +
            16 * skeleton[i + w + 1] + 32 * skeleton[i + w] + 64 * skeleton[i + w - 1] + 128 * skeleton[i - 1];
          const kind = ZHANG_LUT[code];
          if (kind === 3 || (kind === 1 && pass === 0) || (kind === 2 && pass === 1)) removed.push(i);
        }
        if (removed.length) {
          changed = true;
          for (const i of removed) skeleton[i] = 0;
          for (const i of removed) {
            for (const d of around) if (skeleton[i + d] && !front[i + d]) { front[i + d] = 1; active.push(i + d); }
          }
          removed.length = 0;
          active = active.filter((i) => skeleton[i]);
        }
      }
    }
    const out = new Uint8Array(width * height);
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) out[y * width + x] = skeleton[(y + 1) * w + x + 1];
    return out;
  }

  // Exact Euclidean distance of each pixel to the nearest 0 pixel (cv2.distanceTransform DIST_L2,
  // DIST_MASK_PRECISE), by Felzenszwalb and Huttenlocher's lower envelope of parabolas.
  function distanceTransform(image, width, height) {
    const INF = 1e20, n = Math.max(width, height);
    const f = new Float64Array(width * height), line = new Float64Array(n), d = new Float64Array(n);
    const v = new Int32Array(n), z = new Float64Array(n + 1);
    // The 1-D squared distance transform of line[0..len) into d.
    const transform = (len) => {
      let k = 0;
      v[0] = 0; z[0] = -Infinity; z[1] = Infinity;
      for (let q = 1; q < len; q++) {
        const fq = line[q] + q * q;
        let p = v[k], s = (fq - (line[p] + p * p)) / (2 * (q - p));
        while (s <= z[k]) { p = v[--k]; s = (fq - (line[p] + p * p)) / (2 * (q - p)); }
        k++; v[k] = q; z[k] = s; z[k + 1] = Infinity;
      }
      k = 0;
      for (let q = 0; q < len; q++) {
        while (z[k + 1] < q) k++;
        const r = q - v[k];
        d[q] = r * r + line[v[k]];
      }
    };
    for (let y = 0; y < height; y++) {
      const row = y * width;
      let last = -1;  // along a row with a 0 pixel, the squared distance to the nearest one: two scans
      for (let x = 0; x < width; x++) if (!image[row + x]) { last = x; break; }
      if (last < 0) {  // none: the parabolas' envelope, as for the columns
        for (let x = 0; x < width; x++) line[x] = INF;
        transform(width);
        f.set(d.subarray(0, width), row);
        continue;
      }
      last = -Infinity;
      for (let x = 0; x < width; x++) { if (!image[row + x]) last = x; f[row + x] = (x - last) * (x - last); }
      last = Infinity;
      for (let x = width - 1; x >= 0; x--) {
        if (!image[row + x]) last = x;
        if ((last - x) * (last - x) < f[row + x]) f[row + x] = (last - x) * (last - x);
      }
    }
    const out = new Float32Array(width * height);
    for (let x = 0; x < width; x++) {
      for (let y = 0; y < height; y++) line[y] = f[y * width + x];
      transform(height);
      for (let y = 0; y < height; y++) out[y * width + x] = Math.sqrt(d[y]);
    }
    return out;
  }

  // Skeleton of the labelled components and each of their pixels' distance to the background
  // (figures._skeleton_and_distance). Python thins and measures each component on its own box; on
  // the whole crop at once it is the same (8-connected components never touch, so no pixel's
  // neighbourhood, nor its nearest pixel outside its component, belongs to another one) and cheaper here.
  function skeletonAndDistance(labels, width, height) {
    const inside = new Uint8Array(width * height), padded = new Uint8Array((width + 2) * (height + 2));
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        if (labels[y * width + x]) { inside[y * width + x] = 1; padded[(y + 1) * (width + 2) + x + 1] = 1; }
      }
    }
    const skeleton = skeletonize(inside, width, height), dist = distanceTransform(padded, width + 2, height + 2);
    const distance = new Float32Array(width * height);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) if (inside[y * width + x]) distance[y * width + x] = dist[(y + 1) * (width + 2) + x + 1];
    }
    return { skeleton, distance };
  }

  // Per component: skeleton length (orthogonal steps 1, diagonal steps sqrt 2, L corners counted once).
  function skeletonStepLengths(s, labels, width, height, count) {
    const lengths = new Float64Array(count + 1);
    const at = (x, y) => s[y * width + x];
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const owner = labels[y * width + x];
        if (x + 1 < width && at(x, y) && at(x + 1, y)) lengths[owner] += 1;
        if (y + 1 < height && at(x, y) && at(x, y + 1)) lengths[owner] += 1;
        if (x + 1 < width && y + 1 < height) {
          if (at(x, y) && at(x + 1, y + 1) && !at(x + 1, y) && !at(x, y + 1)) lengths[owner] += Math.SQRT2;
          if (at(x + 1, y) && at(x, y + 1) && !at(x, y) && !at(x + 1, y + 1)) lengths[labels[y * width + x + 1]] += Math.SQRT2;
        }
      }
    }
    return lengths;
  }

  function skeletonNeighbours(s, width, height, i) {
    const x = i % width, y = (i - x) / width;
    let n = 0;
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        if ((dx || dy) && x + dx >= 0 && x + dx < width && y + dy >= 0 && y + dy < height) n += s[(y + dy) * width + x + dx];
      }
    }
    return n;
  }

  function measureCracks(labels, width, height, count) {
    const { skeleton, distance } = skeletonAndDistance(labels, width, height);
    const lengths = skeletonStepLengths(skeleton, labels, width, height, count);
    let widthMax = -Infinity, widthSum = 0, widthCount = 0;
    for (let i = 0; i < skeleton.length; i++) {
      if (!skeleton[i]) continue;
      const neighbours = skeletonNeighbours(skeleton, width, height, i);
      // Each skeleton end extends to the mask's edge (distance - 1/2); an isolated pixel both ways.
      if (neighbours <= 1) lengths[labels[i]] += (neighbours === 0 ? 2 : 1) * (distance[i] - 0.5);
      const local = 2 * distance[i] - 1;
      widthMax = Math.max(widthMax, local);
      widthSum += local;
      widthCount++;
    }
    return { lengths: lengths.subarray(1), widthMax, widthMean: widthSum / widthCount, skeleton, distance };
  }

  const median = (values) => {
    const sorted = Float64Array.from(values).sort(), n = sorted.length;
    return n % 2 ? sorted[(n - 1) / 2] : Math.fround((sorted[n / 2 - 1] + sorted[n / 2]) / 2);
  };

  function measureJoints(labels, width, height, count) {
    const { skeleton, distance } = skeletonAndDistance(labels, width, height);
    const areas = new Float64Array(count + 1), widths = Array.from({ length: count + 1 }, () => []);
    let widthMax = -Infinity;
    for (let i = 0; i < labels.length; i++) {
      if (!labels[i]) continue;
      areas[labels[i]]++;
      if (skeleton[i]) {
        const local = 2 * distance[i] - 1;
        widths[labels[i]].push(local);
        widthMax = Math.max(widthMax, local);
      }
    }
    const lengths = new Float64Array(count);
    let weighted = 0, total = 0;
    for (let k = 1; k <= count; k++) {
      const band = Math.max(widths[k].length ? median(widths[k]) : 1, 1);  // the band's width, spurs ignored
      lengths[k - 1] = areas[k] / band;
      weighted += band * areas[k];
      total += areas[k];
    }
    return { lengths, widthMax, widthMean: weighted / total };
  }

  // The modules beside this one: the page's globals (script tags), or required in Node.
  const crackWidth = () => (typeof DrywallCrackWidth !== "undefined" ? DrywallCrackWidth : require("./crack_width.js"));
  const tapingBand = () => (typeof DrywallTapingBand !== "undefined" ? DrywallTapingBand : require("./taping_band.js"));

  /**
   * measure_mask: the QA figures of a 0/1 mask (width x height) for a figure set.
   * @param {Uint8Array} mask
   * @param {{mmPerPx?: number|null, confidence?: number|null, minComponentAreaPx?: number, scale?: number,
   *   image?: {rgba: Uint8Array|Uint8ClampedArray, grey?: Uint8Array}|null}} options image: the photo's RGBA
   *   pixels at the mask's size (grey: its grey levels, when already converted), or null
   * @returns {object} QAFigures's fields: figure_set, area_percent, area_px, components, confidence,
   *   length_px, longest_px, width_max_px, width_mean_px (null where not measured), mask_width_*,
   *   width_source, mm_per_px, component_lengths_px, width_profile.
   */
  function measureMask(mask, width, height, figureSet,
                       { mmPerPx = null, confidence = null, minComponentAreaPx = 10, scale = 1, image = null } = {}) {
    let x0 = width, y0 = height, x1 = -1, y1 = -1, area = 0;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        if (!mask[y * width + x]) continue;
        area++;
        if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
      }
    }
    const cw = Math.max(0, x1 - x0 + 1), ch = Math.max(0, y1 - y0 + 1);
    const crop = new Uint8Array(cw * ch);  // the mask cut to its pixels' bounding box
    for (let y = 0; y < ch; y++) crop.set(mask.subarray((y0 + y) * width + x0, (y0 + y) * width + x0 + cw), y * cw);
    const { labels, count } = labelComponents(crop, cw, ch, minComponentAreaPx / (scale * scale));
    const figures = {
      figure_set: figureSet, area_percent: (100 * area) / Math.max(width * height, 1), area_px: Math.round(area * scale * scale),
      components: count, confidence, length_px: null, longest_px: null, width_max_px: null, width_mean_px: null,
      mask_width_max_px: null, mask_width_mean_px: null, width_source: null, mm_per_px: mmPerPx,
      component_lengths_px: [], width_profile: null,
    };
    if (figureSet === "area") return figures;
    const photoWidths = figureSet === "crack" && image !== null;
    figures.width_source = photoWidths ? "photo" : "mask";
    figures.length_px = 0;
    figures.longest_px = 0;
    if (!count) return figures;
    const measured = (figureSet === "crack" ? measureCracks : measureJoints)(labels, cw, ch, count);
    const lengths = Array.from(measured.lengths, (v) => v * scale);
    figures.component_lengths_px = lengths.slice().sort((a, b) => b - a);
    figures.length_px = lengths.reduce((a, b) => a + b, 0);
    figures.longest_px = Math.max(...lengths);
    figures.mask_width_max_px = measured.widthMax * scale;
    figures.mask_width_mean_px = measured.widthMean * scale;
    if (photoWidths) {
      const CW = crackWidth();
      const grey = image.grey || (image.grey = CW.greyOf(image.rgba, width * height));  // once per photo
      const photo = CW.measurePhotoWidths(grey, width, height, labels, measured.skeleton, measured.distance, cw, ch, [x0, y0], scale);
      const [mean, largest] = CW.summariseWidths(photo.widths);
      figures.width_mean_px = mean === null ? null : mean * scale;
      figures.width_max_px = largest === null ? null : largest * scale;
      figures.width_profile = photo.example;
    } else {
      figures.width_max_px = figures.mask_width_max_px;
      figures.width_mean_px = figures.mask_width_mean_px;
    }
    if (image !== null && figureSet === "joint") {
      tapingBand().measureOnBand(figures, mask, width, height, image, measureMask, { scale, minComponentAreaPx });
    }
    return figures;
  }

  const round = (value, digits) => Number(value.toFixed(digits));

  // QAFigures.to_dict: flat figures, *_mm twins when the scale is known, those of other sets left out.
  function figuresDict(f) {
    const out = { area_percent: round(f.area_percent, 4), area_px: f.area_px, components: f.components,
                  confidence: f.confidence === null ? null : round(f.confidence, 4) };
    if (f.figure_set === "area") return out;
    for (const name of LENGTH_FIGURES) {
      const value = f[`${name}_px`];
      out[`${name}_px`] = value === null ? null : round(value, 2);
      if (f.mm_per_px !== null) out[`${name}_mm`] = value === null ? null : round(value * f.mm_per_px, 3);
    }
    out.width_source = f.width_source;
    return out;
  }

  // -- verdicts (drywallqa.qa.rules) ----------------------------------------------------------
  // Python's f"{value:.3g}" (3 significant digits, trailing zeros dropped), and .0f from 1000 up.
  function formatFigure(value) {
    if (Math.abs(value) >= 1000) return value.toFixed(0);
    if (value === 0) return "0";
    const [mantissa, exponentText] = value.toExponential(2).split("e");
    const exponent = Number(exponentText);
    if (exponent < -4 || exponent >= 3) {
      return `${mantissa.replace(/\.?0+$/, "")}e${exponent < 0 ? "-" : "+"}${String(Math.abs(exponent)).padStart(2, "0")}`;
    }
    const fixed = value.toFixed(Math.max(0, 2 - exponent));
    return fixed.includes(".") ? fixed.replace(/0+$/, "").replace(/\.$/, "") : fixed;
  }

  // Rule.check: [failed, severity, reason].
  function checkRule([figure, above, below], value) {
    let failed = false, severity = 0, reason = "";
    if (above !== null) {
      severity = Math.max(severity, above > 0 ? value / above : (value > 0 ? MAX_SEVERITY : 0));
      if (value > above) { failed = true; reason = `${figure} ${formatFigure(value)} > ${formatFigure(above)}`; }
    }
    if (below !== null) {
      severity = Math.max(severity, value > 0 ? below / value : (below > 0 ? MAX_SEVERITY : 0));
      if (value < below) { failed = true; reason = `${figure} ${formatFigure(value)} < ${formatFigure(below)}`; }
    }
    return [failed, Math.min(severity, MAX_SEVERITY), reason];
  }

  const verdict = (name, reasons = [], severity = 0, checked = []) => ({ verdict: name, reasons, severity: round(severity, 4), checked });

  /**
   * QARules.judge: the verdict of one mask's figures for its class.
   * @param {object} rules the app's qa_rules (drywallqa.serving.webapp.qa_rules_dict)
   * @param {string|null} className
   * @param {object} figures from measureMask
   * @returns {{verdict: string, reasons: string[], severity: number, checked: string[]}}
   */
  function judge(rules, className, figures) {
    const entry = className ? rules.classes[className] : undefined;
    if (!entry) return verdict("unchecked");
    if (!(figures.components > 0 && figures.area_percent >= entry.min_area_percent)) {  // nothing found
      const checked = entry.min_area_percent > 0 ? ["components", "area_percent"] : ["components"];
      if (!entry.required) return verdict(entry.defect ? "pass" : "not found", [], 0, checked);
      if (figures.components === 0) {
        return verdict("fail", [`no ${className} found (no component of ${rules.min_component_area_px} px or more; required)`],
                       MAX_SEVERITY, checked);
      }
      const [, severity, reason] = checkRule(["area_percent", null, entry.min_area_percent], figures.area_percent);
      return verdict("fail", [`${reason} (required)`], severity, checked);
    }
    const values = figuresDict(figures), reasons = [], checked = [];
    let severity = 0;
    for (const rule of [...entry.rules, ...(figures.mm_per_px !== null ? entry.rules_mm : entry.rules_px)]) {
      const value = values[rule[0]];
      if (value === null || value === undefined) continue;  // not measured for this mask
      const [failed, ruleSeverity, reason] = checkRule(rule, value);
      checked.push(rule[0]);
      severity = Math.max(severity, ruleSeverity);
      if (failed) reasons.push(reason);
    }
    return verdict(reasons.length ? "fail" : "pass", reasons, severity, checked);
  }

  // photo_verdict: fail if any prompt fails, else pass if any passes, else not found, else unchecked.
  const photoVerdict = (verdicts) => VERDICTS.find((v) => verdicts.includes(v)) || "unchecked";

  return { VERDICTS, labelComponents, skeletonize, distanceTransform, measureMask, figuresDict, formatFigure, judge, photoVerdict };
})();

if (typeof module === "object" && module.exports) module.exports = DrywallQA;
