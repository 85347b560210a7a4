// The Python predictor's pre- and post-processing (drywallqa.processing), ported to plain JS for the
// on-device mode (ondevice.js): each function names the Python it follows, and
// tests/serving/test_webapp_qa_js.py runs this file in Node against that Python:
// resize_to_model_input (OpenCV INTER_AREA when shrinking, else INTER_LINEAR, in OpenCV's own
// arithmetic), nhwc_uint8_to_nchw_float, upsample_logits with the logit threshold, sigmoid, and the
// prompt store's prompt_key. Images are row-major typed arrays: RGBA from a canvas.
"use strict";

const DrywallProcessing = (() => {
  // drywallqa.inference.prompt_store.prompt_key: lower case, runs of whitespace collapsed.
  const promptKey = (text) => String(text).toLowerCase().split(/\s+/).filter(Boolean).join(" ");

  // -- resizing to the model's input (resize_to_model_input) ------------------------------------
  // OpenCV's computeResizeAreaTab: for each output cell the source pixels it covers and their weights.
  function areaTable(ssize, dsize) {
    const scale = 1 / (dsize / ssize);
    const entries = [];  // [dst, src, weight]
    for (let d = 0; d < dsize; d++) {
      const fs1 = d * scale, fs2 = fs1 + scale;
      const cell = Math.min(scale, ssize - fs1);
      let s2 = Math.min(Math.floor(fs2), ssize - 1);
      const s1 = Math.min(Math.ceil(fs1), s2);
      if (s1 - fs1 > 1e-3) entries.push([d, s1 - 1, (s1 - fs1) / cell]);
      for (let s = s1; s < s2; s++) entries.push([d, s, 1 / cell]);
      if (fs2 - s2 > 1e-3) entries.push([d, s2, Math.min(Math.min(fs2 - s2, 1), cell) / cell]);
    }
    return entries;
  }

  // OpenCV's saturate_cast<uchar> of a float: round half to even, clamp.
  const toByte = (x) => {
    const r = Math.round(x);
    return Math.min(255, Math.max(0, r - x === 0.5 && r % 2 ? r - 1 : r));
  };

  // cv2.resize(INTER_AREA) of RGBA pixels to RGB uint8, in OpenCV's float32 arithmetic: weighted
  // sums along each source row, then of the rows, each step rounded to float32 as OpenCV's are.
  function resizeArea(rgba, width, height, dw, dh) {
    const scaleX = 1 / (dw / width), scaleY = 1 / (dh / height), ix = Math.round(scaleX), iy = Math.round(scaleY);
    if (Math.abs(scaleX - ix) < Number.EPSILON && Math.abs(scaleY - iy) < Number.EPSILON) return resizeAreaFast(rgba, width, dw, dh, ix, iy);
    const f = Math.fround;
    const xs = areaTable(width, dw), ys = areaTable(height, dh), n = xs.length;
    const xd = Int32Array.from(xs, (e) => e[0] * 3), xsrc = Int32Array.from(xs, (e) => e[1] * 4);
    const xw = Float32Array.from(xs, (e) => e[2]);
    const out = new Uint8Array(dw * dh * 3);
    const row = new Float32Array(dw * 3), acc = new Float32Array(dw * 3);
    let current = -1;
    const flush = () => { for (let i = 0; i < acc.length; i++) out[current * dw * 3 + i] = toByte(acc[i]); };
    for (const [dy, sy, weight] of ys) {
      const beta = f(weight), base = sy * width * 4;
      row.fill(0);
      for (let k = 0; k < n; k++) {
        const d = xd[k], s = base + xsrc[k], alpha = xw[k];
        row[d] += f(rgba[s] * alpha); row[d + 1] += f(rgba[s + 1] * alpha); row[d + 2] += f(rgba[s + 2] * alpha);
      }
      if (dy !== current) {
        if (current >= 0) flush();
        current = dy;
        for (let i = 0; i < acc.length; i++) acc[i] = beta * row[i];
      } else {
        for (let i = 0; i < acc.length; i++) acc[i] += f(beta * row[i]);
      }
    }
    if (current >= 0) flush();
    return out;
  }

  // cv2.resize(INTER_AREA) by whole factors (OpenCV's resizeAreaFast): each block's mean, rounded
  // half up for 2x2 blocks (its vector code), else half to even (the float product of its sum).
  function resizeAreaFast(rgba, width, dw, dh, ix, iy) {
    const out = new Uint8Array(dw * dh * 3), scale = Math.fround(1 / (ix * iy));
    for (let y = 0; y < dh; y++) {
      for (let x = 0; x < dw; x++) {
        for (let c = 0; c < 3; c++) {
          let sum = 0;
          for (let v = 0; v < iy; v++) for (let u = 0; u < ix; u++) sum += rgba[((y * iy + v) * width + x * ix + u) * 4 + c];
          out[(y * dw + x) * 3 + c] = ix === 2 && iy === 2 ? (sum + 2) >> 2 : toByte(Math.fround(sum * scale));
        }
      }
    }
    return out;
  }

  // OpenCV's linear resize coordinates: half-pixel centres; a column off the image is clamped to the
  // edge's (index, frac 0). Rows, for float32 images: OpenCV clamps the two rows read but keeps the
  // weights (rows, weights: two per output).
  function linearTable(ssize, dsize) {
    const scale = 1 / (dsize / ssize);
    const index = new Int32Array(dsize), frac = new Float32Array(dsize), rows = new Int32Array(2 * dsize), weights = new Float32Array(2 * dsize);
    for (let d = 0; d < dsize; d++) {
      let f = Math.fround((d + 0.5) * scale - 0.5);
      let s = Math.floor(f);
      f = Math.fround(f - s);
      rows[2 * d] = Math.min(Math.max(s, 0), ssize - 1);
      rows[2 * d + 1] = Math.min(Math.max(s + 1, 0), ssize - 1);
      weights[2 * d] = Math.fround(1 - f);
      weights[2 * d + 1] = f;
      if (s < 0) { f = 0; s = 0; }
      if (s >= ssize - 1) { f = 0; s = ssize - 1; }
      index[d] = s;
      frac[d] = f;
    }
    return { index, frac, rows, weights };
  }

  // cv2.resize(INTER_LINEAR) of RGBA uint8 to RGB uint8, in OpenCV's fixed point (11-bit weights).
  function resizeLinear(rgba, width, height, dw, dh) {
    const xt = linearTable(width, dw), yt = linearTable(height, dh);
    const weight = (f) => [Math.round((1 - f) * 2048), Math.round(f * 2048)];
    const xw = Array.from(xt.frac, weight);
    const horizontal = (sy) => {
      const out = new Int32Array(dw * 3), base = sy * width * 4;
      for (let dx = 0; dx < dw; dx++) {
        const s = base + xt.index[dx] * 4, [a0, a1] = xw[dx];
        const next = xt.index[dx] + 1 < width ? s + 4 : s;
        for (let c = 0; c < 3; c++) out[dx * 3 + c] = rgba[s + c] * a0 + rgba[next + c] * a1;
      }
      return out;
    };
    const out = new Uint8Array(dw * dh * 3);
    for (let dy = 0; dy < dh; dy++) {
      const sy = yt.index[dy], [b0, b1] = weight(yt.frac[dy]);
      const r0 = horizontal(sy), r1 = b1 ? horizontal(Math.min(sy + 1, height - 1)) : r0;
      for (let i = 0; i < dw * 3; i++) {
        // OpenCV's vectorised rows: 16-bit products of the sums >> 4 (its scalar tail rounds once, at 2^22).
        out[dy * dw * 3 + i] = Math.min(255, Math.max(0, ((((r0[i] >> 4) * b0) >> 16) + (((r1[i] >> 4) * b1) >> 16) + 2) >> 2));
      }
    }
    return out;
  }

  // -- float32 images as cv2.resize resizes them (ridges.js's reduced copies, joint_lines.js's line search) --
  // cv2.resize(INTER_AREA) of a float32 image (shrinking), in OpenCV's float32 steps: by whole
  // factors its resizeAreaFast (each block's sum in fours, times 1/area; 2x2 blocks in groups of
  // four outputs as (a + b) + (c + d), its SIMD), else weighted sums along rows, then of rows.
  function resizeAreaFloat(src, width, height, dw, dh) {
    const F = Math.fround, out = new Float32Array(dw * dh), sx = 1 / (dw / width), sy = 1 / (dh / height), ix = Math.round(sx), iy = Math.round(sy);
    if (Math.abs(sx - ix) < Number.EPSILON && Math.abs(sy - iy) < Number.EPSILON) {
      const area = ix * iy, scale = F(1 / area), simd = ix === 2 && iy === 2 ? dw - (dw % 4) : 0;
      const offsets = [];
      for (let v = 0; v < iy; v++) for (let u = 0; u < ix; u++) offsets.push(v * width + u);
      for (let y = 0; y < dh; y++) {
        for (let x = 0; x < dw; x++) {
          const s = y * iy * width + x * ix;
          let sum = 0;
          if (x < simd) sum = F(F(src[s] + src[s + 1]) + F(src[s + width] + src[s + width + 1]));
          else {
            let k = 0;
            for (; k <= area - 4; k += 4) {
              sum = F(sum + F(F(F(src[s + offsets[k]] + src[s + offsets[k + 1]]) + src[s + offsets[k + 2]]) + src[s + offsets[k + 3]]));
            }
            for (; k < area; k++) sum = F(sum + src[s + offsets[k]]);
          }
          out[y * dw + x] = F(sum * scale);
        }
      }
      return out;
    }
    const xs = areaTable(width, dw), ys = areaTable(height, dh), row = new Float32Array(dw), acc = new Float32Array(dw);
    const xd = Int32Array.from(xs, (e) => e[0]), xsrc = Int32Array.from(xs, (e) => e[1]), xw = Float32Array.from(xs, (e) => e[2]);
    let current = -1;
    const flush = () => out.set(acc, current * dw);
    for (const [dy, y, weight] of ys) {
      const beta = F(weight);  // OpenCV's table holds float weights
      row.fill(0);
      for (let e = 0, base = y * width; e < xd.length; e++) row[xd[e]] += F(src[base + xsrc[e]] * xw[e]);
      if (dy !== current) {
        if (current >= 0) flush();
        current = dy;
        for (let x = 0; x < dw; x++) acc[x] = beta * row[x];
      } else {
        for (let x = 0; x < dw; x++) acc[x] += F(beta * row[x]);
      }
    }
    if (current >= 0) flush();
    return out;
  }

  // cv2.resize(INTER_LINEAR) of a float32 image (enlarging), at the `needed` pixels (all when null;
  // with `into`, each pixel's maximum with it kept there), in OpenCV's generic float32 steps: each
  // row a * (1 - f) + b * f, then the rows likewise (the pip wheel's IPP differs in the last bit or
  // two: 1e-6 of a response, nothing a figure shows).
  function resizeLinearFloat(src, sw, sh, width, height, needed = null, into = null) {
    const F = Math.fround, xt = linearTable(sw, width), yt = linearTable(sh, height), out = into || new Float32Array(width * height);
    const across = (base, x) => {
      const s = base + xt.index[x], f = xt.frac[x];
      return f ? F(F(src[s] * F(1 - f)) + F(src[s + 1] * f)) : src[s];
    };
    for (let y = 0; y < height; y++) {
      const r0 = yt.rows[2 * y] * sw, r1 = yt.rows[2 * y + 1] * sw, b0 = yt.weights[2 * y], b1 = yt.weights[2 * y + 1];
      for (let x = 0, i = y * width; x < width; x++, i++) {
        if (needed && !needed[i]) continue;
        const value = F(F(across(r0, x) * b0) + F(across(r1, x) * b1));
        if (!into || value > out[i]) out[i] = value;
      }
    }
    return out;
  }

  // resize_to_model_input + nhwc_uint8_to_nchw_float: RGBA (width x height) -> float32 (3, size, size) in [0, 1].
  function modelInput(rgba, width, height, size) {
    let rgb;
    if (width === size && height === size) {
      rgb = new Uint8Array(size * size * 3);
      for (let i = 0, p = 0; i < size * size; i++, p += 4) { rgb[3 * i] = rgba[p]; rgb[3 * i + 1] = rgba[p + 1]; rgb[3 * i + 2] = rgba[p + 2]; }
    } else if (Math.min(width, height) > size) {
      rgb = resizeArea(rgba, width, height, size, size);  // area averaging when shrinking keeps thin cracks
    } else {
      rgb = resizeLinear(rgba, width, height, size, size);
    }
    const plane = size * size, out = new Float32Array(3 * plane), scale = Math.fround(1 / 255);
    for (let i = 0; i < plane; i++) {
      out[i] = rgb[3 * i] * scale; out[plane + i] = rgb[3 * i + 1] * scale; out[2 * plane + i] = rgb[3 * i + 2] * scale;
    }
    return out;
  }

  // An RGBA image reduced by area averaging (read_photo's reduction of a photo over its largest side).
  function reduceRGBA(rgba, width, height, dw, dh) {
    const rgb = resizeArea(rgba, width, height, dw, dh), out = new Uint8ClampedArray(dw * dh * 4);
    for (let i = 0; i < dw * dh; i++) { out.set(rgb.subarray(3 * i, 3 * i + 3), 4 * i); out[4 * i + 3] = 255; }
    return out;
  }

  // -- logits to a mask (upsample_logits, logit_threshold; inference.core.logits_to_result) ------
  const logitThreshold = (threshold) => Math.log(threshold / (1 - threshold));
  const sigmoid = (x) => Math.fround(x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));

  // Bilinear (cv2 INTER_LINEAR on float32) from (size x size) logits to (width x height), then
  // foreground where logit > log(t / (1 - t)), compared in float32 as NumPy does.
  function maskFromLogits(logits, size, width, height, threshold) {
    const limit = Math.fround(logitThreshold(threshold));
    const mask = new Uint8Array(width * height);
    if (width === size && height === size) {
      for (let i = 0; i < mask.length; i++) mask[i] = logits[i] > limit ? 1 : 0;
      return mask;
    }
    const xt = linearTable(size, width), yt = linearTable(size, height);
    const rows = new Float32Array(size * width);  // every source row resized horizontally
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < width; x++) {
        const s = y * size + xt.index[x], f = xt.frac[x];
        rows[y * width + x] = f ? logits[s] * (1 - f) + logits[s + 1] * f : logits[s];
      }
    }
    for (let y = 0; y < height; y++) {
      const r0 = yt.index[y] * width, f = yt.frac[y], r1 = f ? r0 + width : r0;
      for (let x = 0; x < width; x++) {
        mask[y * width + x] = Math.fround(rows[r0 + x] * (1 - f) + rows[r1 + x] * f) > limit ? 1 : 0;
      }
    }
    return mask;
  }

  return { promptKey, modelInput, reduceRGBA, resizeArea, resizeLinear, resizeAreaFloat, resizeLinearFloat, linearTable, maskFromLogits,
           sigmoid, logitThreshold };
})();

if (typeof module === "object" && module.exports) module.exports = DrywallProcessing;
