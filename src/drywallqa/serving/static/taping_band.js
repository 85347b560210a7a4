// drywallqa.qa.taping_band ported to plain JS for the on-device mode: inside each predicted taping
// component, the joint's straight lines found on the photo (ridges.js, joint_lines.js) and the band
// each one covers; a taping mask's figures are then measured on that band, as predict and serve
// measure them (measure_on_band). The module docstring of taping_band.py says how and why. Each
// function names the Python it follows; masks are row-major Uint8Array of 0/1, photos RGBA.
"use strict";

const DrywallTapingBand = (() => {
  const R = typeof DrywallRidges !== "undefined" ? DrywallRidges : require("./ridges.js");
  const J = typeof DrywallJointLines !== "undefined" ? DrywallJointLines : require("./joint_lines.js");
  const P = typeof DrywallProcessing !== "undefined" ? DrywallProcessing : require("./processing.js");
  const CW = typeof DrywallCrackWidth !== "undefined" ? DrywallCrackWidth : require("./crack_width.js");
  // TapingBandParams's defaults.
  const PARAMS = {
    seamSigmas: [1.0, 1.5, 2.0, 3.0], compoundSigmas: [2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0], minContrast: 6.0 / 255.0,
    nextLineShare: 0.3, maxLines: 3, minLineShare: 0.3, seamBandShare: 0.055, tapeWidthMm: 52.0, growShare: 0.1,
    borderShare: 0.01, marginShare: 0.25, smoothPx: 5.0, workSide: 1024, reducedSigma: 3.0,
  };
  const roundHalfEven = CW.roundHalfEven;

  // cv2.resize(INTER_NEAREST) of a 0/1 mask.
  function resizeNearest(src, width, height, dw, dh) {
    const out = new Uint8Array(dw * dh), fx = 1 / (dw / width), fy = 1 / (dh / height);
    const xs = Int32Array.from({ length: dw }, (_, x) => Math.min(Math.floor(x * fx), width - 1));
    for (let y = 0; y < dh; y++) {
      const row = Math.min(Math.floor(y * fy), height - 1) * width;
      for (let x = 0; x < dw; x++) out[y * dw + x] = src[row + xs[x]];
    }
    return out;
  }

  // cv2.getStructuringElement(MORPH_ELLIPSE, (2r + 1, 2r + 1)): the half-width of each row.
  function ellipseRows(r) {
    return Array.from({ length: 2 * r + 1 }, (_, i) => {
      const dy = i - r;
      return Math.min(r, roundHalfEven(r * Math.sqrt((r * r - dy * dy) / (r * r))));
    });
  }

  // cv2.dilate of a 0/1 image by that ellipse (outside the image never dilates).
  function dilateEllipse(src, width, height, r) {
    const rows = ellipseRows(r), out = new Uint8Array(width * height), prefix = new Int32Array((width + 1) * height);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) prefix[y * (width + 1) + x + 1] = prefix[y * (width + 1) + x] + src[y * width + x];
    }
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        for (let i = 0; i < rows.length; i++) {
          const v = y + i - r, half = rows[i];
          if (v < 0 || v >= height) continue;
          const base = v * (width + 1), lo = Math.max(0, x - half), hi = Math.min(width, x + half + 1);
          if (prefix[base + hi] > prefix[base + lo]) { out[y * width + x] = 1; break; }
        }
      }
    }
    return out;
  }

  // _measure_across: [contrast, [low, high] band offsets] of a candidate line, from its across-profile.
  function measureAcross(kind, gray, width, height, point, direction, along, reach, seamShareHalf, seamHalf) {
    if (kind === "seam") {
      const span = Math.ceil(seamShareHalf) + 2, across = Float64Array.from({ length: 2 * span + 1 }, (_, i) => i - span);
      const [profile, valid] = J.acrossProfile(gray, width, height, point, direction, along, across);
      let gap = Infinity;
      across.forEach((a, i) => { if (valid[i] && Math.abs(a) <= Math.max(1.5, 0.1 * seamShareHalf)) gap = Math.min(gap, profile[i]); });
      if (gap === Infinity) return [0.0, [-seamHalf, seamHalf]];
      // Shoulders: the wall either side of the gap; a board's edge has a shoulder on one side only.
      const shoulder = (a) => Math.abs(a) >= Math.max(2.5, 0.25 * seamShareHalf) && Math.abs(a) <= Math.max(4.0, 0.75 * seamShareHalf);
      const sideLevel = (sign) => {
        const values = [];
        across.forEach((a, i) => { if (valid[i] && shoulder(a) && Math.sign(a) === sign) values.push(profile[i]); });
        return values.length ? CW.median(values, true) : gap;
      };
      return [Math.min(sideLevel(-1), sideLevel(1)) - gap, [-seamHalf, seamHalf]];
    }
    const span = Math.ceil(reach) + 6, across = Float64Array.from({ length: 2 * span + 1 }, (_, i) => i - span);
    const [profile, valid] = J.acrossProfile(gray, width, height, point, direction, along, across);
    const [low, high, contrast] = J.compoundEdges(profile, valid, PARAMS.smoothPx, span);
    return [contrast, [across[0] + low, across[0] + high]];
  }

  // _component_lines: the joint lines of one component, in working-image coordinates.
  function componentLines(gray, voided, width, height, component, [x, y, w, h], seamShareHalf, seamHalf) {
    const pad = Math.max(8, Math.trunc(PARAMS.marginShare * Math.min(w, h)));
    const x0 = Math.max(0, x - pad), y0 = Math.max(0, y - pad), x1 = Math.min(width, x + w + pad), y1 = Math.min(height, y + h + pad);
    const cw = x1 - x0, ch = y1 - y0, crop = new Float32Array(cw * ch), own = new Uint8Array(cw * ch);
    for (let v = 0; v < ch; v++) {
      for (let u = 0; u < cw; u++) { crop[v * cw + u] = gray[(y0 + v) * width + x0 + u]; own[v * cw + u] = component[(y0 + v) * width + x0 + u]; }
    }
    const grow = Math.max(2, roundHalfEven(PARAMS.growShare * 2 * seamShareHalf));
    const region = dilateEllipse(own, cw, ch, grow);
    const border = Math.max(4, roundHalfEven(PARAMS.borderShare * Math.min(height, width)));
    const remaining = new Float32Array(cw * ch);
    let total = 0;
    for (let v = 0; v < ch; v++) {
      for (let u = 0; u < cw; u++) {
        const gx = x0 + u, gy = y0 + v, inBox = gx >= x && gx < x + w && gy >= y && gy < y + h;
        const away = gy >= border && gy < height - border && gx >= border && gx < width - border;
        if (region[v * cw + u] && inBox && away && !voided[gy * width + gx]) { remaining[v * cw + u] = 1; total++; }
      }
    }
    // The line search reads the responses only where `remaining` is (it only shrinks): computed there.
    const needed = Uint8Array.from(remaining), blurs = new Map();  // the scales both kinds filter, blurred once
    const responses = {
      seam: R.ridgeResponse(crop, cw, ch, PARAMS.seamSigmas, "dark", needed, PARAMS.reducedSigma, blurs),
      compound: R.ridgeResponse(crop, cw, ch, PARAMS.compoundSigmas, "bright", needed, PARAMS.reducedSigma, blurs),
    };
    const lines = [], masked = new Float32Array(cw * ch);
    let firstLength = null;
    const remainingSum = () => { let s = 0; for (const v of remaining) s += v; return s; };
    while (lines.length < PARAMS.maxLines && total > 0 && remainingSum() >= 0.1 * total) {
      const candidates = [];
      for (const kind of ["seam", "compound"]) {
        if (lines.length && kind !== lines[0].kind) continue;  // one wall, one kind
        const response = responses[kind];
        for (let i = 0; i < masked.length; i++) masked[i] = response[i] * remaining[i];
        const [point, direction] = J.strongestLine(masked, cw, ch);
        const along = J.alongInside(point, direction, remaining, cw, ch);
        const needed = PARAMS.minLineShare * (firstLength ? firstLength : Math.max(w, h));
        if (along.length === 0 || along.length < needed) continue;
        const normal = [-direction[1], direction[0]];
        // The box's pixels' distances across the line: a linear function, extreme at the corners.
        const corners = [[x - x0, y - y0], [x - x0 + w - 1, y - y0], [x - x0, y - y0 + h - 1], [x - x0 + w - 1, y - y0 + h - 1]]
          .map(([bx, by]) => (bx - point[0]) * normal[0] + (by - point[1]) * normal[1]);
        const acrossMax = Math.max(...corners), acrossMin = Math.min(...corners);
        const reach = Math.max(Math.abs(acrossMax), Math.abs(acrossMin));
        const [contrast, offsets] = measureAcross(kind, gray, width, height, [point[0] + x0, point[1] + y0], direction, along,
                                                  reach, seamShareHalf, seamHalf);
        if (kind === "compound" && offsets[1] - offsets[0] > acrossMax - acrossMin) continue;  // no band of its own
        candidates.push({ contrast, kind, point, direction, length: along.length, offsets });
      }
      const kept = candidates.filter((c) => c.contrast >= PARAMS.minContrast);
      if (!kept.length) break;
      const best = kept.reduce((a, b) => (b.contrast > a.contrast ? b : a));
      if (lines.length && best.contrast < PARAMS.nextLineShare * lines[0].contrast) break;
      lines.push({ kind: best.kind, point: [best.point[0] + x0, best.point[1] + y0], direction: best.direction,
                   offsets: best.offsets, contrast: best.contrast });
      firstLength = firstLength || best.length;
      const drawn = R.dilate(J.drawBand({ ...best }, [0, ch, 0, cw]), cw, ch, 3, 3);
      for (let i = 0; i < remaining.length; i++) if (drawn[i]) remaining[i] = 0;
    }
    return lines;
  }

  // _to_photo: a line found on the working copy, in the photo's pixels.
  function toPhoto(line, factor) {
    if (factor === 1.0) return line;
    return { ...line, point: [(line.point[0] + 0.5) / factor - 0.5, (line.point[1] + 0.5) / factor - 0.5],
             offsets: [line.offsets[0] / factor, line.offsets[1] / factor] };
  }

  /**
   * refine_taping_band: the taping band inside a predicted mask, refined from the photo.
   * @param {{rgba: Uint8Array|Uint8ClampedArray}} image the photo's RGBA pixels at the mask's size
   * @param {Uint8Array} mask 0/1 predicted taping-area mask (width x height)
   * @returns {{mask: Uint8Array, lines: object[], refined: number, kept: number, left_out: number}}
   */
  function refineTapingBand(image, mask, width, height, { mmPerPx = null, minComponentAreaPx = 10 } = {}) {
    const band = { mask: new Uint8Array(width * height), lines: [], refined: 0, kept: 0, left_out: 0 };
    if (!mask.includes(1)) return band;
    const factor = Math.min(1.0, PARAMS.workSide / Math.max(height, width));  // working pixels per photo pixel
    let pixels = image.rgba, channels = 4, ww = width, wh = height, workMask = mask;
    if (factor < 1.0) {
      [ww, wh] = [Math.max(1, roundHalfEven(width * factor)), Math.max(1, roundHalfEven(height * factor))];
      pixels = P.resizeArea(image.rgba, width, height, ww, wh);
      channels = 3;
      workMask = resizeNearest(mask, width, height, ww, wh);
    }
    const grey = channels === 4 ? (image.grey || (image.grey = CW.greyOf(pixels, ww * wh))) : (() => {
      const out = new Uint8Array(ww * wh);
      for (let i = 0, p = 0; i < out.length; i++, p += 3) out[i] = (pixels[p] * 9798 + pixels[p + 1] * 19235 + pixels[p + 2] * 3735 + 16384) >> 15;
      return out;
    })();
    let gray = new Float32Array(grey.length);
    for (let i = 0; i < grey.length; i++) gray[i] = grey[i] / 255.0;
    const voided = R.voidMask(pixels, ww, wh, channels);
    if (voided.includes(1) && voided.includes(0)) gray = R.fillVoid(gray, voided, ww, wh, 16.0, PARAMS.reducedSigma);
    const seamShareHalf = (PARAMS.seamBandShare * Math.min(ww, wh)) / 2.0;
    const seamHalf = mmPerPx === null ? seamShareHalf : (PARAMS.tapeWidthMm / mmPerPx) * factor / 2.0;
    const [labels, stats] = R.componentsWithStats(workMask, ww, wh, 8);
    const unlined = [], component = new Uint8Array(ww * wh);
    stats.forEach(({ x, y, w, h, area }, index) => {
      const k = index + 1;
      if (area < minComponentAreaPx * factor ** 2) return;
      component.fill(0);  // this component's pixels: only its box holds any
      for (let v = y; v < y + h; v++) for (let u = x; u < x + w; u++) component[v * ww + u] = labels[v * ww + u] === k ? 1 : 0;
      const lines = componentLines(gray, voided, ww, wh, component, [x, y, w, h], seamShareHalf, seamHalf);
      // The box in photo pixels: every band stays inside its component's box.
      const x0 = Math.floor(x / factor), y0 = Math.floor(y / factor);
      const x1 = Math.min(width, Math.ceil((x + w) / factor)), y1 = Math.min(height, Math.ceil((y + h) / factor));
      const bw = x1 - x0, bh = y1 - y0;
      if (!lines.length) {
        const boxed = new Uint8Array(w * h);
        for (let v = 0; v < h; v++) for (let u = 0; u < w; u++) boxed[v * w + u] = labels[(y + v) * ww + x + u] === k ? 1 : 0;
        const own = resizeNearest(boxed, w, h, bw, bh);
        for (let v = 0; v < bh; v++) for (let u = 0; u < bw; u++) own[v * bw + u] &= mask[(y0 + v) * width + x0 + u];
        unlined.push([[y0, y1, x0, x1], own]);
        return;
      }
      band.refined++;
      for (const found of lines) {
        const line = toPhoto(found, factor);
        band.lines.push(line);
        const drawn = J.drawBand(line, [y0, y1, x0, x1]);
        for (let v = 0; v < bh; v++) for (let u = 0; u < bw; u++) band.mask[(y0 + v) * width + x0 + u] |= drawn[v * bw + u];
      }
    });
    for (const [[y0, , x0, x1], own] of unlined) {
      if (band.refined) { band.left_out++; continue; }
      band.kept++;
      const bw = x1 - x0;
      for (let i = 0; i < own.length; i++) band.mask[(y0 + Math.floor(i / bw)) * width + x0 + (i % bw)] |= own[i];
    }
    return band;
  }

  /**
   * measure_on_band: a taping mask's figures (qa.js measureMask's, "joint") with their band width and
   * lengths measured on the band refined from the photo; the mask's own widths move to mask_width_*.
   * @param {object} figures updated in place
   * @param {Function} measureMask qa.js's measureMask, which measures the band
   */
  function measureOnBand(figures, mask, width, height, image, measureMask, { scale = 1, minComponentAreaPx = 10 } = {}) {
    const mmPerPx = figures.mm_per_px === null ? null : figures.mm_per_px * scale;  // mm per mask pixel
    const refined = refineTapingBand(image, mask, width, height, { mmPerPx, minComponentAreaPx: minComponentAreaPx / scale ** 2 });
    const onBand = measureMask(refined.mask, width, height, "joint", { minComponentAreaPx, scale });
    figures.mask_width_max_px = figures.width_max_px;
    figures.mask_width_mean_px = figures.width_mean_px;
    if (onBand.components) {
      figures.length_px = onBand.length_px;
      figures.longest_px = onBand.longest_px;
      figures.width_max_px = onBand.width_max_px;
      figures.width_mean_px = onBand.width_mean_px;
      figures.component_lengths_px = onBand.component_lengths_px;
      figures.width_source = "photo";
    }
    return figures;
  }

  return { PARAMS, resizeNearest, ellipseRows, refineTapingBand, measureOnBand };
})();

if (typeof module === "object" && module.exports) module.exports = DrywallTapingBand;
