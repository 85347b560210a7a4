// drywallqa.ridges ported to plain JS for the on-device taping band (taping_band.js): ridge
// responses (Gaussian blur and 3x3 Sobel second derivatives, as OpenCV computes them on float32),
// the padding and cutouts of exported photos (void_mask) and their fill (fill_void), with the few
// OpenCV filters they need: kernel sizes and border rules as OpenCV's. Each function names the
// Python or OpenCV call it follows; tests/serving/test_webapp_qa_js.py runs it in Node against them.
// Images are row-major typed arrays.
"use strict";

const DrywallRidges = (() => {
  const P = typeof DrywallProcessing !== "undefined" ? DrywallProcessing : require("./processing.js");
  const { resizeAreaFloat, resizeLinearFloat, linearTable } = P;
  const VOID_LEVEL = 3, VOID_RIM = 5, VOID_MIN_WIDTH = 9, CUTOUT_LEVEL = 90, CUTOUT_STD = 6.0, CUTOUT_MIN_SIDE = 16;
  const CUTOUT_FILL = 0.7;
  const f32 = Math.fround;
  const REFLECT = 0, REFLECT_101 = 1, REPLICATE = 2;

  // cv::borderInterpolate: the pixel index that stands for `p` outside 0..len-1.
  function borderIndex(p, len, border) {
    if (p >= 0 && p < len) return p;
    if (border === REPLICATE) return p < 0 ? 0 : len - 1;
    if (len === 1) return 0;
    const delta = border === REFLECT_101 ? 1 : 0;
    do { p = p < 0 ? -p - 1 + delta : len - 1 - (p - len) - delta; } while (p < 0 || p >= len);
    return p;
  }

  // cv::getGaussianKernel(ksize, sigma, CV_32F) (its bit-exact double arithmetic, then float32);
  // ksize from sigma as GaussianBlur picks it for float images.
  function gaussianKernel(sigma, size = 0) {
    const n = size || (Math.round(sigma * 8 + 1) | 1), half = (n - 1) >> 1, scale = -0.125 / (sigma * sigma);
    const values = new Float64Array(half);
    let sum = 0;
    for (let i = 0, x = 1 - n; i < half; i++, x += 2) { values[i] = Math.exp(x * x * scale); sum += values[i]; }
    sum = sum * 2 + 1;
    const mul = 1 / sum, kernel = new Float32Array(n);
    for (let i = 0; i < half; i++) kernel[i] = kernel[n - 1 - i] = values[i] * mul;
    kernel[half] = mul;
    return kernel;
  }

  // cv2.GaussianBlur(image, (0, 0), sigma, borderType) of a float32 image, in OpenCV's float32
  // order: each row a fused multiply-add over the kernel left to right, then each column the
  // centre times its weight plus the symmetric pairs' sums times theirs. With `needed` (0/1), only
  // those pixels are computed (each as the whole image's would be), the others left 0.
  function gaussianBlur(src, width, height, sigma, border, needed = null) {
    const kernel = gaussianKernel(sigma), n = kernel.length, r = (n - 1) >> 1, rows = new Float32Array(width * height);
    // Each row's span of needed pixels (the column pass), and each column's span of rows the column
    // pass reads there (the row pass: a needed pixel's column, r rows up and down).
    const lo = new Int32Array(height).fill(needed ? width : 0), hi = new Int32Array(height).fill(needed ? -1 : width - 1);
    const top = new Int32Array(width).fill(needed ? height : 0), bottom = new Int32Array(width).fill(needed ? -1 : height - 1);
    if (needed) {
      for (let y = 0; y < height; y++) {
        for (let x = 0, base = y * width; x < width; x++) {
          if (!needed[base + x]) continue;
          if (lo[y] > x) lo[y] = x;
          hi[y] = x;
          if (top[x] > y) top[x] = y;
          bottom[x] = y;
        }
      }
      for (let x = 0; x < width; x++) {
        if (bottom[x] >= 0) { top[x] = Math.max(0, top[x] - r); bottom[x] = Math.min(height - 1, bottom[x] + r); }
      }
    }
    // Each pixel's sum runs over k in order, each step rounded to float32 as OpenCV's are; four
    // pixels at a time in locals (four independent chains of roundings keep the CPU busy).
    const line = new Float32Array(width + 2 * r), xIndex = Int32Array.from({ length: width + 2 * r }, (_, i) => borderIndex(i - r, width, border));
    for (let y = 0; y < height; y++) {
      const base = y * width, acc = rows.subarray(base, base + width);
      for (let from = 0; from < width;) {  // each run of columns whose span holds this row
        while (from < width && !(top[from] <= y && y <= bottom[from])) from++;
        let to = from;
        while (to < width && top[to] <= y && y <= bottom[to]) to++;
        if (to <= from) break;
        for (let i = from; i < to + 2 * r; i++) line[i] = src[base + xIndex[i]];
        let x = from;
        for (; x + 3 < to; x += 4) {
          let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
          for (let k = 0; k < n; k++) {
            const weight = kernel[k], at = x + k;
            a0 = f32(a0 + line[at] * weight); a1 = f32(a1 + line[at + 1] * weight);
            a2 = f32(a2 + line[at + 2] * weight); a3 = f32(a3 + line[at + 3] * weight);
          }
          acc[x] = a0; acc[x + 1] = a1; acc[x + 2] = a2; acc[x + 3] = a3;
        }
        for (; x < to; x++) {
          let a = 0;
          for (let k = 0; k < n; k++) a = f32(a + line[x + k] * kernel[k]);
          acc[x] = a;
        }
        from = to;
      }
    }
    const out = new Float32Array(width * height), ups = new Int32Array(r + 1), downs = new Int32Array(r + 1);
    for (let y = 0; y < height; y++) {
      const from = lo[y], to = hi[y] + 1;
      if (to <= from) continue;
      const centre = y * width, weight = kernel[r];
      for (let k = 1; k <= r; k++) { ups[k] = borderIndex(y - k, height, border) * width; downs[k] = borderIndex(y + k, height, border) * width; }
      let x = from;
      for (; x + 3 < to; x += 4) {
        const c = centre + x;
        let a0 = f32(rows[c] * weight), a1 = f32(rows[c + 1] * weight), a2 = f32(rows[c + 2] * weight), a3 = f32(rows[c + 3] * weight);
        for (let k = 1; k <= r; k++) {
          const up = ups[k] + x, down = downs[k] + x, w = kernel[r + k];
          a0 = f32(a0 + f32(rows[down] + rows[up]) * w); a1 = f32(a1 + f32(rows[down + 1] + rows[up + 1]) * w);
          a2 = f32(a2 + f32(rows[down + 2] + rows[up + 2]) * w); a3 = f32(a3 + f32(rows[down + 3] + rows[up + 3]) * w);
        }
        out[c] = a0; out[c + 1] = a1; out[c + 2] = a2; out[c + 3] = a3;
      }
      for (; x < to; x++) {
        let a = f32(rows[centre + x] * weight);
        for (let k = 1; k <= r; k++) a = f32(a + f32(rows[downs[k] + x] + rows[ups[k] + x]) * kernel[r + k]);
        out[centre + x] = a;
      }
    }
    return out;
  }

  // Sobel's 3-tap row kernels at (c, row `base`) with neighbours l and r: [1, -2, 1] and [1, 2, 1].
  const tapSecond = (g, base, l, c, r) => f32(f32(g[base + l] + g[base + r]) - f32(g[base + c] + g[base + c]));
  const tapSmooth = (g, base, l, c, r) => f32(f32(g[base + l] + g[base + r]) + f32(g[base + c] + g[base + c]));

  // _ridge_strengths' Hessian of one scale's blur `g`, at the `needed` pixels (0/1; all when null):
  // its trace dxx + dyy and root sqrt((dxx - dyy)^2 + 4 dxy^2), the same for both polarities. The
  // second derivatives are cv2.Sobel's (ksize 3, BORDER_REFLECT_101) in OpenCV's float32 steps: rows
  // first, [1, 2, 1] as (a + c) + 2b, [1, -2, 1] as (a + c) - 2b, [-1, 0, 1] as c - a.
  function hessian(g, width, height, needed) {
    const trace = new Float32Array(width * height), roots = new Float32Array(width * height);
    const left = Int32Array.from({ length: width }, (_, x) => borderIndex(x - 1, width, REFLECT_101));
    const right = Int32Array.from({ length: width }, (_, x) => borderIndex(x + 1, width, REFLECT_101));
    for (let y = 0; y < height; y++) {
      const r0 = borderIndex(y - 1, height, REFLECT_101) * width, r1 = y * width, r2 = borderIndex(y + 1, height, REFLECT_101) * width;
      for (let x = 0; x < width; x++) {
        const i = r1 + x;
        if (needed && !needed[i]) continue;
        const l = left[x], rr = right[x];
        const x0 = tapSecond(g, r0, l, x, rr), x1 = tapSecond(g, r1, l, x, rr), x2 = tapSecond(g, r2, l, x, rr);
        const y0 = tapSmooth(g, r0, l, x, rr), y1 = tapSmooth(g, r1, l, x, rr), y2 = tapSmooth(g, r2, l, x, rr);
        const dxx = f32(f32(x0 + x2) + f32(x1 + x1)), dyy = f32(f32(y0 + y2) - f32(y1 + y1));
        const dxy = f32(f32(g[r2 + rr] - g[r2 + l]) - f32(g[r0 + rr] - g[r0 + l]));
        const difference = f32(dxx - dyy);
        roots[i] = f32(Math.sqrt(f32(f32(difference * difference) + f32(4.0 * f32(dxy * dxy)))));
        trace[i] = f32(dxx + dyy);
      }
    }
    return { trace, roots };
  }

  // _ridge_strengths, one scale: the scale-normalised ridge strength of the polarity from its
  // Hessian, at the `needed` pixels, 0 elsewhere; with `into`, each pixel's maximum with it is kept
  // there instead (ridge_response's running maximum).
  function ridgeStrength({ trace, roots }, width, height, sigma, dark, needed, into = null) {
    const out = into || new Float32Array(width * height), norm = f32((sigma * sigma) / 4.0);
    for (let i = 0; i < width * height; i++) {
      if (needed && !needed[i]) continue;
      const strength = dark ? f32(0.5 * f32(trace[i] + roots[i])) : f32(-0.5 * f32(trace[i] - roots[i]));
      const value = f32(Math.max(strength, 0) * norm);
      if (!into || value > out[i]) out[i] = value;
    }
    return out;
  }

  // ridges._reduction: the power of two by which an image is reduced to blur it by `sigma`, the
  // largest that keeps sigma >= reducedSigma reduced pixels and the image >= 16 pixels across.
  function reduction(sigma, reducedSigma, width, height) {
    let factor = 1;
    if (reducedSigma) while (sigma / (2 * factor) >= reducedSigma && Math.min(width, height) >= 2 * factor * 16) factor *= 2;
    return factor;
  }

  // ridges._reduced's size: round(side / factor), Python's round (half to even).
  const reducedSide = (side, factor) => { const q = side / factor, r = Math.round(q); return r - q === 0.5 && r % 2 ? r - 1 : r; };

  // The reduced pixels that cv2.resize(INTER_LINEAR) from (sw x sh) to (width x height) reads for the
  // `needed` full-size pixels (0/1): the two rows and columns each one interpolates.
  function readByLinear(needed, width, height, sw, sh) {
    const xt = linearTable(sw, width), yt = linearTable(sh, height), out = new Uint8Array(sw * sh);
    for (let y = 0; y < height; y++) {
      const rows = [yt.rows[2 * y] * sw, yt.rows[2 * y + 1] * sw];
      for (let x = 0; x < width; x++) {
        if (!needed[y * width + x]) continue;
        const c0 = xt.index[x], c1 = xt.frac[x] ? c0 + 1 : c0;
        for (const r of rows) { out[r + c0] = 1; out[r + c1] = 1; }
      }
    }
    return out;
  }

  /**
   * ridge_response: the strongest scale-normalised Hessian ridge response over the scales, at the
   * `needed` pixels (0/1; all when null), 0 elsewhere. With `reducedSigma`, each scale of at least
   * twice it is filtered on a copy reduced by a power of two (cv2.resize INTER_AREA) and its
   * response enlarged back (INTER_LINEAR), as the Python does.
   * @param {Float32Array} gray grey image in [0, 1]
   * @param {number[]} sigmas Gaussian scales in pixels
   * @param {"dark"|"bright"} polarity
   * @param {Map|null} blurs the full-size scales' Hessians, shared by calls on the same image and
   *   `needed` (both polarities filter it at some of the same scales)
   */
  function ridgeResponse(gray, width, height, sigmas, polarity, needed = null, reducedSigma = null, blurs = null) {
    const out = new Float32Array(width * height), dark = polarity === "dark", byFactor = new Map();
    for (const sigma of sigmas) {
      const factor = reduction(sigma, reducedSigma, width, height);
      byFactor.set(factor, [...(byFactor.get(factor) || []), sigma]);
    }
    for (const [factor, scales] of byFactor) {
      let image = gray, w = width, h = height, at = needed;
      if (factor > 1) {
        [w, h] = [reducedSide(width, factor), reducedSide(height, factor)];
        image = resizeAreaFloat(gray, width, height, w, h);
        if (needed) at = readByLinear(needed, width, height, w, h);
      }
      // The pixels each derivative reads (the full-size ones shared, as the Hessians are).
      let around = factor === 1 && blurs ? blurs.get("around") : undefined;
      if (around === undefined) {
        around = at ? dilate(at, w, h, 3, 3) : null;
        if (factor === 1 && blurs) blurs.set("around", around);
      }
      for (const sigma of scales) {
        const scale = sigma / factor, shared = factor === 1 && blurs;
        let eigen = shared ? blurs.get(sigma) : undefined;
        if (!eigen) {
          eigen = hessian(gaussianBlur(image, w, h, scale, REFLECT, around), w, h, at);
          if (shared) blurs.set(sigma, eigen);
        }
        if (factor === 1) ridgeStrength(eigen, w, h, scale, dark, at, out);
        else resizeLinearFloat(ridgeStrength(eigen, w, h, scale, dark, at), w, h, width, height, needed, out);
      }
    }
    return out;
  }

  // -- binary morphology (outside the image never erodes nor dilates, as OpenCV's default border) --
  // A rectangle's erosion (all set) or dilation (any set) of a 0/1 image, separably by running counts.
  function rectMorph(src, width, height, kw, kh, dilate) {
    const rows = new Uint8Array(width * height), out = new Uint8Array(width * height);
    const xBefore = (kw - 1) >> 1, xAfter = kw - 1 - xBefore, yBefore = (kh - 1) >> 1, yAfter = kh - 1 - yBefore;
    // Set where the window holds any set pixel (dilate) or only set ones (erode: off the image counts as set).
    for (let y = 0; y < height; y++) {  // along each row, the window's count kept running
      const base = y * width;
      let count = 0;
      for (let x = 0; x < Math.min(xBefore, width); x++) count += src[base + x];
      for (let x = 0; x < width; x++) {
        const enter = x + xBefore, leave = x - xAfter - 1;
        if (enter < width) count += src[base + enter];
        if (leave >= 0) count -= src[base + leave];
        if (dilate) rows[base + x] = count > 0 ? 1 : 0;
        else rows[base + x] = count === (enter < width ? enter + 1 : width) - (leave >= 0 ? leave + 1 : 0) ? 1 : 0;
      }
    }
    // Down the columns, a row at a time: each column's count over the window of rows, kept running.
    const counts = new Int32Array(width);
    for (let v = 0; v < Math.min(yBefore, height); v++) for (let x = 0, base = v * width; x < width; x++) counts[x] += rows[base + x];
    for (let y = 0; y < height; y++) {
      const enter = y + yBefore, leave = y - yAfter - 1, base = y * width;
      if (enter < height) for (let x = 0, at = enter * width; x < width; x++) counts[x] += rows[at + x];
      if (leave >= 0) for (let x = 0, at = leave * width; x < width; x++) counts[x] -= rows[at + x];
      const count = Math.min(height, enter + 1) - Math.max(0, leave + 1);
      if (dilate) for (let x = 0; x < width; x++) out[base + x] = counts[x] > 0 ? 1 : 0;
      else for (let x = 0; x < width; x++) out[base + x] = counts[x] === count ? 1 : 0;
    }
    return out;
  }
  const erode = (src, w, h, kw, kh) => rectMorph(src, w, h, kw, kh, false);
  const dilate = (src, w, h, kw, kh) => rectMorph(src, w, h, kw, kh, true);

  // cv2.connectedComponentsWithStats, 4- or 8-connected: [labels (0 background), [{x, y, w, h, area}] per label - 1].
  function componentsWithStats(src, width, height, connectivity) {
    const labels = new Int32Array(width * height), stats = [], stack = [];
    const steps = connectivity === 8
      ? [[-1, -1], [0, -1], [1, -1], [-1, 0], [1, 0], [-1, 1], [0, 1], [1, 1]] : [[-1, 0], [1, 0], [0, -1], [0, 1]];
    for (let start = 0; start < src.length; start++) {
      if (!src[start] || labels[start]) continue;
      const label = stats.length + 1;
      let x0 = width, y0 = height, x1 = -1, y1 = -1, area = 0;
      labels[start] = label;
      stack.push(start);
      while (stack.length) {
        const i = stack.pop(), x = i % width, y = (i - x) / width;
        area++;
        x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
        for (const [dx, dy] of steps) {
          const u = x + dx, v = y + dy, j = v * width + u;
          if (u >= 0 && v >= 0 && u < width && v < height && src[j] && !labels[j]) { labels[j] = label; stack.push(j); }
        }
      }
      stats.push({ x: x0, y: y0, w: x1 - x0 + 1, h: y1 - y0 + 1, area });
    }
    return [labels, stats];
  }

  // cv2.medianBlur(level, 5) (BORDER_REPLICATE) of a uint8 image, at the `needed` pixels (0 elsewhere).
  function medianBlur5(level, width, height, needed) {
    const out = new Uint8Array(width * height), window = new Uint8Array(25);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        if (!needed[y * width + x]) continue;
        let k = 0;
        for (let dy = -2; dy <= 2; dy++) {
          const row = borderIndex(y + dy, height, REPLICATE) * width;
          for (let dx = -2; dx <= 2; dx++) window[k++] = level[row + borderIndex(x + dx, width, REPLICATE)];
        }
        out[y * width + x] = window.sort()[12];
      }
    }
    return out;
  }

  // Which pixels have 13 or more of their 5x5 neighbours (BORDER_REPLICATE) set in a 0/1 image.
  function mostOf5(bits, width, height) {
    const rows = new Uint8Array(width * height), out = new Uint8Array(width * height);
    const across = Int32Array.from({ length: width + 4 }, (_, i) => borderIndex(i - 2, width, REPLICATE));
    for (let y = 0; y < height; y++) {
      const base = y * width;
      for (let x = 0; x < width; x++) {
        rows[base + x] = bits[base + across[x]] + bits[base + across[x + 1]] + bits[base + across[x + 2]] +
          bits[base + across[x + 3]] + bits[base + across[x + 4]];
      }
    }
    for (let y = 0; y < height; y++) {
      const r = [-2, -1, 0, 1, 2].map((dy) => borderIndex(y + dy, height, REPLICATE) * width), base = y * width;
      for (let x = 0; x < width; x++) out[base + x] = rows[r[0] + x] + rows[r[1] + x] + rows[r[2] + x] + rows[r[3] + x] + rows[r[4] + x] >= 13 ? 1 : 0;
    }
    return out;
  }

  /**
   * void_mask(image, grey=True): padding and cutout pixels of an RGB(A) uint8 image, 0/1.
   * @param {Uint8Array|Uint8ClampedArray} pixels
   * @param {number} channels 3 (RGB) or 4 (RGBA; alpha ignored)
   */
  function voidMask(pixels, width, height, channels) {
    const n = width * height, level = new Uint8Array(n), black = new Uint8Array(n), low = new Uint8Array(n);
    let anyBlack = false, anyLow = false;
    for (let i = 0, p = 0; i < n; i++, p += channels) {
      const r = pixels[p], g = pixels[p + 1], b = pixels[p + 2], v = r > g ? (r > b ? r : b) : (g > b ? g : b);
      level[i] = v;
      if (v <= VOID_LEVEL) { black[i] = 1; anyBlack = true; }
      if (v <= CUTOUT_LEVEL) { low[i] = 1; anyLow = true; }
    }
    let voided = anyBlack
      ? dilate(erode(black, width, height, VOID_MIN_WIDTH, VOID_MIN_WIDTH), width, height, VOID_MIN_WIDTH, VOID_MIN_WIDTH)
      : black;
    // The median of 25 values is <= CUTOUT_LEVEL where 13 or more of them are: the median itself is
    // needed only where the flatness windows (7x7) of such pixels reach.
    const dark = anyLow ? mostOf5(low, width, height) : low;
    if (dark.includes(1)) {
      const clean = medianBlur5(level, width, height, dilate(dark, width, height, 7, 7));
      // cv2.blur 7x7 (BORDER_REFLECT_101) of clean and its square at the dark pixels: exact integer
      // sums (rows, then columns; the rows' sums are only read near dark pixels), scaled as OpenCV does.
      let flat = new Uint8Array(n);
      const scale = 1 / 49, rowSum = new Int32Array(n), rowSquares = new Int32Array(n);
      const near = Int32Array.from({ length: width + 6 }, (_, i) => borderIndex(i - 3, width, REFLECT_101));
      for (let y = 0; y < height; y++) {
        const base = y * width;
        for (let x = 0; x < width; x++) {
          let sum = 0, squares = 0;
          for (let k = 0; k < 7; k++) { const v = clean[base + near[x + k]]; sum += v; squares += v * v; }
          rowSum[base + x] = sum;
          rowSquares[base + x] = squares;
        }
      }
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
          if (!dark[y * width + x]) continue;
          let sum = 0, squares = 0;
          for (let dy = -3; dy <= 3; dy++) {
            const at = borderIndex(y + dy, height, REFLECT_101) * width + x;
            sum += rowSum[at];
            squares += rowSquares[at];
          }
          const mean = f32(sum * scale), std = f32(Math.sqrt(Math.max(f32(f32(squares * scale) - f32(mean * mean)), 0)));
          flat[y * width + x] = std <= CUTOUT_STD ? 1 : 0;
        }
      }
      flat = erode(dilate(flat, width, height, 5, 5), width, height, 5, 5);
      flat = dilate(erode(flat, width, height, VOID_MIN_WIDTH, VOID_MIN_WIDTH), width, height, VOID_MIN_WIDTH, VOID_MIN_WIDTH);
      const [labels, stats] = componentsWithStats(flat, width, height, 4);
      const keep = stats.map(({ x, y, w, h, area }) => (Math.min(w, h) >= CUTOUT_MIN_SIDE && area >= CUTOUT_FILL * w * h) ||
        ((x === 0 || y === 0 || x + w === width || y + h === height) && area >= CUTOUT_MIN_SIDE ** 2));
      if (keep.includes(true)) {
        voided = Uint8Array.from(voided);
        for (let i = 0; i < n; i++) if (labels[i] && keep[labels[i] - 1]) voided[i] = 1;
      }
    }
    if (voided.includes(1)) voided = dilate(voided, width, height, 2 * VOID_RIM + 1, 2 * VOID_RIM + 1);
    return voided;
  }

  // The k-th smallest of `values` (quickselect, in place): afterwards values[..k] <= it <= values[k..].
  function select(values, k) {
    let lo = 0, hi = values.length - 1;
    while (lo < hi) {
      const pivot = values[(lo + hi) >> 1];
      let i = lo, j = hi;
      while (i <= j) {
        while (values[i] < pivot) i++;
        while (values[j] > pivot) j--;
        if (i <= j) { const t = values[i]; values[i] = values[j]; values[j] = t; i++; j--; }
      }
      if (k <= j) hi = j; else if (k >= i) lo = i; else break;
    }
    return values[k];
  }

  // np.median of float32 values (the two middle ones' float32 mean), by selection; reorders them.
  function median(values) {
    const m = values.length, high = select(values, m >> 1);
    if (m % 2) return high;
    let low = -Infinity;  // the largest value below the upper middle one: select left it to the left
    for (let i = 0; i < m >> 1; i++) if (values[i] > low) low = values[i];
    return f32(f32(low + high) / 2);
  }

  /**
   * fill_void: void pixels of a float32 grey image replaced by the local mean of the valid ones around
   * them (normalised convolution, sigma 16, BORDER_REFLECT); the valid pixels' median where none is
   * near. With `reducedSigma`, both blurs on copies reduced as ridgeResponse's large scales are.
   */
  function fillVoid(gray, voided, width, height, sigma = 16.0, reducedSigma = null) {
    const n = width * height, valid = new Float32Array(n), weighted = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      valid[i] = voided[i] ? 0 : 1;
      weighted[i] = gray[i] * valid[i];
    }
    const kept = () => {
      const values = new Float32Array(n);
      let m = 0;
      for (let i = 0; i < n; i++) if (!voided[i]) values[m++] = gray[i];
      return values.subarray(0, m);
    };
    // Only the void pixels take the fill.
    const factor = reduction(sigma, reducedSigma, width, height);
    let num, den;
    if (factor > 1) {
      const w = reducedSide(width, factor), h = reducedSide(height, factor), at = readByLinear(voided, width, height, w, h);
      const blur = (image) => gaussianBlur(resizeAreaFloat(image, width, height, w, h), w, h, sigma / factor, REFLECT, at);
      num = resizeLinearFloat(blur(weighted), w, h, width, height, voided);
      den = resizeLinearFloat(blur(valid), w, h, width, height, voided);
    } else {
      num = gaussianBlur(weighted, width, height, sigma, REFLECT, voided);
      den = gaussianBlur(valid, width, height, sigma, REFLECT, voided);
    }
    const least = f32(1e-3);
    let fallback = null;  // np.median(gray[~void]), only where some void pixel is out of reach
    const out = Float32Array.from(gray);
    for (let i = 0; i < n; i++) {
      if (!voided[i]) continue;
      if (den[i] > least) out[i] = num[i] / Math.max(den[i], least);
      else out[i] = fallback === null ? (fallback = median(kept())) : fallback;
    }
    return out;
  }

  return { REFLECT, REFLECT_101, REPLICATE, borderIndex, gaussianKernel, gaussianBlur, ridgeResponse, reduction, erode, dilate,
           componentsWithStats, medianBlur5, voidMask, fillVoid, median };
})();

if (typeof module === "object" && module.exports) module.exports = DrywallRidges;
