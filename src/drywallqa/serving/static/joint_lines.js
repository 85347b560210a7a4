// drywallqa.qa.joint_lines ported to plain JS for the on-device taping band (taping_band.js): the
// strongest straight line through a ridge response (a Radon transform by cv2.warpAffine's
// rotations), the profile across it (cv2.remap), the edges of a bright band in that profile and
// the band drawn as a mask. Each function names the Python it follows; coordinates are pixel
// centres (x, y); images are row-major Float32Array.
"use strict";

const DrywallJointLines = (() => {
  const R = typeof DrywallRidges !== "undefined" ? DrywallRidges : require("./ridges.js");
  const P = typeof DrywallProcessing !== "undefined" ? DrywallProcessing : require("./processing.js");
  const f32 = Math.fround;
  const roundHalfEven = (x) => { const r = Math.round(x); return r - x === 0.5 && r % 2 ? r - 1 : r; };

  // One bilinear sample of cv2.warpAffine / cv2.remap INTER_LINEAR on float32, outside = `border`
  // (0: each neighbour off the image counts 0; NaN: any neighbour off the image gives NaN).
  function sample(image, width, height, sx, sy, border) {
    const ix = Math.floor(sx), iy = Math.floor(sy), fx = f32(sx - ix), fy = f32(sy - iy);
    let p00, p01, p10, p11;
    if (ix >= 0 && iy >= 0 && ix < width - 1 && iy < height - 1) {
      const i = iy * width + ix;
      p00 = image[i]; p01 = image[i + 1]; p10 = image[i + width]; p11 = image[i + width + 1];
    } else {
      if (!(ix + 1 >= 0 && iy + 1 >= 0 && ix < width && iy < height)) return border;
      const at = (x, y) => (x >= 0 && y >= 0 && x < width && y < height ? image[y * width + x] : border);
      p00 = at(ix, iy); p01 = at(ix + 1, iy); p10 = at(ix, iy + 1); p11 = at(ix + 1, iy + 1);
    }
    const v0 = f32(p00 + f32(fx * f32(p01 - p00))), v1 = f32(p10 + f32(fx * f32(p11 - p10)));
    return f32(v0 + f32(fy * f32(v1 - v0)));
  }

  // Each pixel's chessboard distance to the nearest non-zero pixel (two passes; 65535 when none).
  function chessboardDistance(image, width, height) {
    const d = new Uint16Array(width * height).fill(65535);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const i = y * width + x;
        if (image[i] !== 0) { d[i] = 0; continue; }
        let best = d[i];
        if (x > 0) best = Math.min(best, d[i - 1] + 1);
        if (y > 0) {
          best = Math.min(best, d[i - width] + 1);
          if (x > 0) best = Math.min(best, d[i - width - 1] + 1);
          if (x < width - 1) best = Math.min(best, d[i - width + 1] + 1);
        }
        d[i] = Math.min(best, 65535);
      }
    }
    for (let y = height - 1; y >= 0; y--) {
      for (let x = width - 1; x >= 0; x--) {
        const i = y * width + x;
        let best = d[i];
        if (x < width - 1) best = Math.min(best, d[i + 1] + 1);
        if (y < height - 1) {
          best = Math.min(best, d[i + width] + 1);
          if (x < width - 1) best = Math.min(best, d[i + width + 1] + 1);
          if (x > 0) best = Math.min(best, d[i + width - 1] + 1);
        }
        d[i] = Math.min(best, 65535);
      }
    }
    return d;
  }

  // cv2.getRotationMatrix2D about the image's centre, moved onto a side x side canvas (radon's matrix).
  function rotation(width, height, angle, side) {
    const a = (angle * Math.PI) / 180, alpha = Math.cos(a), beta = Math.sin(a), cx = width / 2.0, cy = height / 2.0;
    return [alpha, beta, (1 - alpha) * cx - beta * cy + (side / 2.0 - width / 2.0),
            -beta, alpha, beta * cx + (1 - alpha) * cy + (side / 2.0 - height / 2.0)];
  }

  // cv2.invertAffineTransform.
  function invert(m) {
    let d = m[0] * m[4] - m[1] * m[3];
    d = d !== 0 ? 1.0 / d : 0.0;
    const a11 = m[4] * d, a22 = m[0] * d, a12 = -m[1] * d, a21 = -m[3] * d;
    return [a11, a12, -a11 * m[2] - a12 * m[5], a21, a22, -a21 * m[2] - a22 * m[5]];
  }

  // One canvas row's samples, x from..to, added to their columns: radon's inner loop, in locals only
  // (V8 keeps them in registers). Row by row, each column's float32 sum adds its rows in order.
  function rowSums(image, far, width, height, m0, m3, mx, my, from, to, column) {
    const w1 = width - 1, h1 = height - 1;
    for (let x = from; x <= to; x++) {
      const sx = f32(m0 * x + mx), sy = f32(m3 * x + my);
      let v;
      if (sx >= 0 && sy >= 0 && sx < w1 && sy < h1) {
        const ix = sx | 0, iy = sy | 0, i = iy * width + ix;
        // A canvas step moves the source a pixel: the next D - 3 canvas pixels of a source D
        // pixels (chessboard) from any non-zero one read only zeros.
        const d = far[i];
        if (d >= 4) { x += d - 3; continue; }
        const p00 = image[i], p01 = image[i + 1], p10 = image[i + width], p11 = image[i + width + 1];
        const fx = sx - ix, fy = sy - iy;  // exact: a float32's fraction
        const v0 = f32(p00 + f32(fx * f32(p01 - p00))), v1 = f32(p10 + f32(fx * f32(p11 - p10)));
        v = f32(v0 + f32(fy * f32(v1 - v0)));
      } else {
        if (sx <= -1 || sy <= -1 || sx >= width || sy >= height) continue;
        v = sample(image, width, height, sx, sy, 0);
      }
      column[x] += v;  // adding a zero changes nothing: no branch on it
    }
  }

  // radon: column sums (float32, row by row as NumPy adds them) of the image rotated by each angle
  // onto a canvas holding it whole (cv2.warpAffine INTER_LINEAR, outside 0), and the matrices.
  // Canvas pixels whose source lies off the image's non-zero pixels add 0 and are skipped.
  function radon(image, width, height, angles) {
    const side = Math.ceil(Math.hypot(height, width)) + 2, sums = new Float32Array(angles.length * side), matrices = [];
    let bx0 = width, by0 = height, bx1 = -1, by1 = -1;  // the non-zero pixels' box
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) if (image[y * width + x] !== 0) { bx0 = Math.min(bx0, x); bx1 = Math.max(bx1, x); by0 = Math.min(by0, y); by1 = y; }
    }
    const far = chessboardDistance(image, width, height);
    // The canvas steps [from, to] along which a + b t may lie within (low, high), widened by two.
    let from = 0, to = 0;
    const span = (a, b, low, high) => {
      if (Math.abs(b) < 1e-9) { if (!(a > low - 1 && a < high + 1)) { from = side; to = -1; } return; }
      const t0 = (low - a) / b, t1 = (high - a) / b;
      from = Math.max(from, Math.floor(Math.min(t0, t1)) - 2);
      to = Math.min(to, Math.ceil(Math.max(t0, t1)) + 2);
    };
    angles.forEach((angle, a) => {
      const matrix = rotation(width, height, angle, side), inv = invert(matrix);
      matrices.push(matrix);
      if (bx1 < 0) return;
      const m0 = f32(inv[0]), m3 = f32(inv[3]), column = sums.subarray(a * side, (a + 1) * side);
      for (let y = 0; y < side; y++) {
        const mx = f32(y * inv[1] + inv[2]), my = f32(y * inv[4] + inv[5]);
        from = 0; to = side - 1;
        span(mx, m0, bx0 - 1, bx1 + 1);
        span(my, m3, by0 - 1, by1 + 1);
        if (from <= to) rowSums(image, far, width, height, m0, m3, mx, my, from, to, column);
      }
    });
    return [sums, matrices, side];
  }

  // The maximum of a non-negative image over each L x L window (L a power of two), by doubling:
  // out[(v + L) * pw + u + L] = max over x in [u, u + L), y in [v, v + L), 0 off the image; pw = width + 2L.
  function windowMax(image, width, height, L) {
    const pw = width + 2 * L, ph = height + 2 * L, rows = new Float32Array(pw * ph), out = new Float32Array(pw * ph);
    for (let y = 0; y < height; y++) rows.set(image.subarray(y * width, (y + 1) * width), (y + L) * pw + L);
    for (let step = 1; step < L; step *= 2) {  // along rows: rows[i] = max of rows[i .. i + 2 step)
      for (let y = L; y < L + height; y++) for (let i = y * pw, end = i + pw - step; i < end; i++) if (rows[i + step] > rows[i]) rows[i] = rows[i + step];
    }
    out.set(rows);
    for (let step = 1; step < L; step *= 2) {  // down columns, a row at a time
      for (let i = 0, end = (ph - step) * pw; i < end; i++) if (out[i + step * pw] > out[i]) out[i] = out[i + step * pw];
    }
    return out;
  }

  // One canvas column's float32 sum over rows from..to (the rows in order, as row by row adds them).
  function columnSum(image, width, height, ax, ay, mxs, mys, from, to) {
    const w1 = width - 1, h1 = height - 1;
    let acc = 0;
    for (let y = from; y <= to; y++) {
      const sx = f32(ax + mxs[y]), sy = f32(ay + mys[y]);
      let v;
      if (sx >= 0 && sy >= 0 && sx < w1 && sy < h1) {
        const ix = sx | 0, iy = sy | 0, i = iy * width + ix;
        const p00 = image[i], p01 = image[i + 1], p10 = image[i + width], p11 = image[i + width + 1];
        const fx = sx - ix, fy = sy - iy;
        const v0 = f32(p00 + f32(fx * f32(p01 - p00))), v1 = f32(p10 + f32(fx * f32(p11 - p10)));
        v = f32(v0 + f32(fy * f32(v1 - v0)));
      } else {
        if (sx <= -1 || sy <= -1 || sx >= width || sy >= height) continue;
        v = sample(image, width, height, sx, sy, 0);
      }
      acc = f32(acc + v);
    }
    return acc;
  }

  // The steps t at which a + b t may lie within (low, high), widened by two, within [0, side): the
  // first (last = false) or the last.
  function spanEnd(a, b, low, high, side, last) {
    if (Math.abs(b) < 1e-9) return a > low - 1 && a < high + 1 ? (last ? side - 1 : 0) : (last ? -1 : side);
    const t0 = (low - a) / b, t1 = (high - a) / b;
    return last ? Math.min(side - 1, Math.ceil(Math.max(t0, t1)) + 2) : Math.max(0, Math.floor(Math.min(t0, t1)) - 2);
  }

  // Bounds of radon's column sums of angle `a`, K samples at a time (radonArgmax).
  function columnBounds(width, height, side, m0, m3, inv, mxs, mys, box, most, k, bounds, spans, offset) {
    const L = 2 * k + 2, pw = width + 2 * L, [bx0, by0, bx1, by1] = box;
    for (let x = 0; x < side; x++) {
      const ax = m0 * x, ay = m3 * x, at = offset + x;
      const from = Math.max(spanEnd(ax + inv[2], inv[1], bx0 - 1, bx1 + 1, side, false), spanEnd(ay + inv[5], inv[4], by0 - 1, by1 + 1, side, false));
      const to = Math.min(spanEnd(ax + inv[2], inv[1], bx0 - 1, bx1 + 1, side, true), spanEnd(ay + inv[5], inv[4], by0 - 1, by1 + 1, side, true));
      spans[2 * at] = from;
      spans[2 * at + 1] = to;
      let bound = 0;
      for (let y = from; y <= to; y += k) {
        const u = Math.floor(f32(ax + mxs[y])) - k, v = Math.floor(f32(ay + mys[y])) - k;
        if (u + L > 0 && v + L > 0 && u < width && v < height) bound += Math.min(k, to - y + 1) * most[(v + L) * pw + u + L];
      }
      bounds[at] = bound * 1.001;  // float32 rounding of the samples and of their sum: far less
    }
  }

  /**
   * np.argmax of radon's sums (the first of equal maxima), without summing every column: each
   * column's sum is bounded first, by K samples at a time (K consecutive samples lie within K - 1
   * pixels of the first, so each is at most the image's maximum over the 2K + 2 pixel window around
   * it), and columns are summed exactly, the largest bounds first, until a bound falls below the
   * best sum. The same index as argmax(radon(...)) for a non-negative image (a response); others
   * take radon.
   * @returns {[number, number[][], number]} [index (angle * side + column), matrices, side]
   */
  function radonArgmax(image, width, height, angles, k = 3) {
    const side = Math.ceil(Math.hypot(height, width)) + 2, matrices = angles.map((angle) => rotation(width, height, angle, side));
    let bx0 = width, by0 = height, bx1 = -1, by1 = -1, negative = false;  // the non-zero pixels' box
    for (let y = 0; y < height; y++) {
      for (let x = 0, i = y * width; x < width; x++, i++) {
        const v = image[i];
        if (v !== 0) { if (x < bx0) bx0 = x; if (x > bx1) bx1 = x; if (y < by0) by0 = y; by1 = y; }
        if (!(v >= 0)) negative = true;
      }
    }
    if (negative) return [argmax(radon(image, width, height, angles)[0]), matrices, side];
    if (bx1 < 0) return [0, matrices, side];
    const most = windowMax(image, width, height, 2 * k + 2), n = angles.length * side;
    const bounds = new Float64Array(n), spans = new Int32Array(2 * n), rows = [], steps = [];
    angles.forEach((angle, a) => {
      const inv = invert(matrices[a]), m0 = f32(inv[0]), m3 = f32(inv[3]), mxs = new Float64Array(side), mys = new Float64Array(side);
      for (let y = 0; y < side; y++) { mxs[y] = f32(y * inv[1] + inv[2]); mys[y] = f32(y * inv[4] + inv[5]); }
      rows.push([mxs, mys]);
      steps.push([m0, m3]);
      columnBounds(width, height, side, m0, m3, inv, mxs, mys, [bx0, by0, bx1, by1], most, k, bounds, spans, a * side);
    });
    let best = -Infinity, bestAt = 0;
    const consider = (at) => {
      const a = Math.floor(at / side), x = at % side, [m0, m3] = steps[a];
      const sum = columnSum(image, width, height, m0 * x, m3 * x, rows[a][0], rows[a][1], spans[2 * at], spans[2 * at + 1]);
      if (sum > best || (sum === best && at < bestAt)) { best = sum; bestAt = at; }
    };
    let top = 0;  // the largest bound's sum first, then every column whose bound reaches the best, largest first
    for (let at = 1; at < n; at++) if (bounds[at] > bounds[top]) top = at;
    consider(top);
    const open = [];
    for (let at = 0; at < n; at++) if (at !== top && bounds[at] >= best) open.push(at);
    open.sort((i, j) => bounds[j] - bounds[i] || i - j);
    for (const at of open) {
      if (bounds[at] < best) break;
      consider(at);
    }
    return [bestAt, matrices, side];
  }

  const argmax = (values) => { let best = 0; for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i; return best; };

  /**
   * strongest_line: [point, unit direction] of the straight line with the largest summed response
   * (coarse angles on a copy reduced to 160 px, then fine ones at full size).
   */
  function strongestLine(response, width, height, coarseDeg = 2.0, fineDeg = 0.25) {
    const factor = Math.min(1.0, 160.0 / Math.max(height, width));
    let small = response, sw = width, sh = height;
    if (factor < 1.0) {
      [sw, sh] = [Math.max(1, roundHalfEven(width * factor)), Math.max(1, roundHalfEven(height * factor))];
      small = P.resizeAreaFloat(response, width, height, sw, sh);
    }
    let angles = Array.from({ length: Math.ceil(180.0 / coarseDeg) }, (_, i) => i * coarseDeg);
    let [at, , side] = radonArgmax(small, sw, sh, angles);
    const best = angles[Math.floor(at / side)];
    const start = best - coarseDeg, count = Math.ceil((best + coarseDeg + 1e-6 - start) / fineDeg);
    angles = Array.from({ length: count }, (_, i) => start + i * fineDeg);
    let matrices;
    [at, matrices, side] = radonArgmax(response, width, height, angles);
    const column = at % side, inverse = invert(matrices[Math.floor(at / side)]);
    const p0 = [inverse[0] * column + inverse[2], inverse[3] * column + inverse[5]];
    const p1 = [inverse[0] * column + inverse[1] + inverse[2], inverse[3] * column + inverse[4] + inverse[5]];
    const norm = Math.hypot(p1[0] - p0[0], p1[1] - p0[1]);
    return [p0, [(p1[0] - p0[0]) / norm, (p1[1] - p0[1]) / norm]];
  }

  // along_inside: positions along the line (pixels from `point`) whose pixel lies in `region`.
  function alongInside(point, direction, region, width, height) {
    const reach = Math.hypot(height, width), count = Math.ceil(2 * reach), out = [];
    for (let i = 0; i < count; i++) {
      const along = -reach + i, x = roundHalfEven(point[0] + along * direction[0]), y = roundHalfEven(point[1] + along * direction[1]);
      if (x >= 0 && x < width && y >= 0 && y < height && region[y * width + x] > 0) out.push(along);
    }
    return Float64Array.from(out);
  }

  // across_profile: at each offset on the normal, the median of the grey levels along the line
  // (cv2.remap, NaN off the photo), and whether that offset lies in the photo for most of them.
  function acrossProfile(gray, width, height, point, direction, along, across) {
    const normal = [-direction[1], direction[0]], m = along.length, column = new Float32Array(m);
    const profile = new Float32Array(across.length), valid = new Uint8Array(across.length);
    across.forEach((c, j) => {
      let inside = 0;
      for (let i = 0; i < m; i++) {
        const x = f32(point[0] + along[i] * direction[0] + c * normal[0]), y = f32(point[1] + along[i] * direction[1] + c * normal[1]);
        const v = sample(gray, width, height, x, y, NaN);
        if (!Number.isNaN(v)) column[inside++] = v;
      }
      if (inside / m > 0.5) {
        valid[j] = 1;
        profile[j] = R.median(column.subarray(0, inside));
      }
    });
    return [profile, valid];
  }

  /**
   * compound_edges: [low edge, high edge, contrast] of the bright band around index `centre`: on
   * each side the steepest point of the descent from the peak (see the Python's docstring).
   */
  function compoundEdges(profile, valid, smoothPx, centre) {
    const n = profile.length;
    const blur = (values) => R.gaussianBlur(values, n, 1, smoothPx, R.REFLECT_101);
    const weighted = Float32Array.from(profile, (v, i) => v * valid[i]);
    const top = blur(weighted), bottom = blur(Float32Array.from(valid));
    const smooth = Float32Array.from(top, (v, i) => v / Math.max(bottom[i], 1e-6));
    // Not next to an invalid sample (cv2.erode 1x3; outside the profile does not erode).
    const usable = Uint8Array.from(valid, (v, i) => (v && (i === 0 || valid[i - 1]) && (i === n - 1 || valid[i + 1]) ? 1 : 0));
    const start = Math.max(0, centre - 3), stop = Math.min(n, centre + 4);
    let peakAt = start, bestValue = -Infinity;
    for (let i = start; i < stop; i++) if (usable[i] && smooth[i] > bestValue) { bestValue = smooth[i]; peakAt = i; }
    const peak = smooth[peakAt];
    let lowestUsable = Infinity;
    for (let i = 0; i < n; i++) if (usable[i]) lowestUsable = Math.min(lowestUsable, smooth[i]);
    const overall = lowestUsable < Infinity ? peak - lowestUsable : 0.0;
    // np.gradient: central differences, one-sided at the ends.
    const slope = Float32Array.from(smooth, (v, i) => (n < 2 ? 0 : i === 0 ? smooth[1] - smooth[0]
      : i === n - 1 ? smooth[n - 1] - smooth[n - 2] : (smooth[i + 1] - smooth[i - 1]) / 2));
    const sides = [];
    for (const step of [-1, 1]) {
      let lowest = peak, i = peakAt, steepest = 0.0, steepestAt = null;
      while (i + step >= 0 && i + step < n && usable[i + step]) {
        i += step;
        if (smooth[i] > lowest + Math.max(0.3 * (peak - lowest), 0.2 * overall, 1.0 / 255.0)) break;  // rising again
        lowest = Math.min(lowest, smooth[i]);
        const descent = -step * slope[i];
        if (descent > steepest) { steepest = descent; steepestAt = i; }
      }
      const atFrame = !(i + step >= 0 && i + step < n && usable[i + step]);
      sides.push([peak - lowest, steepest, steepestAt, i, atFrame]);
    }
    const topDescent = Math.max(sides[0][0], sides[1][0]), edges = [];
    [-1, 1].forEach((step, index) => {
      const [descent, steepest, at, end, atFrame] = sides[index], otherSteepest = sides[1 - index][1];
      if (at === null || (atFrame && descent < 0.35 * topDescent && steepest < 0.35 * otherSteepest)) { edges.push(end + step * 0.5); return; }
      let offset = 0.0;
      if (at > 0 && at < n - 1) {  // parabola through the steepest point and its neighbours
        const a = -step * slope[at - 1], b = steepest, c = -step * slope[at + 1];
        if (a - 2 * b + c !== 0) offset = Math.min(0.5, Math.max(-0.5, (0.5 * (a - c)) / (a - 2 * b + c)));
      }
      edges.push(at + offset);
    });
    return [edges[0], edges[1], Math.min(sides[0][0], sides[1][0])];
  }

  /**
   * draw_band: the band of `line` ({point, direction, offsets}) inside window [y0, y1, x0, x1], 0/1:
   * pixels whose centre's signed distance from the line lies within the band's offsets.
   */
  function drawBand(line, [y0, y1, x0, x1]) {
    const w = x1 - x0, h = y1 - y0, out = new Uint8Array(w * h);
    const [px, py] = line.point, [dx, dy] = line.direction, [low, high] = line.offsets;
    const acrossX = Float64Array.from({ length: w }, (_, i) => (f32(x0 + i) - px) * -dy);
    for (let y = 0; y < h; y++) {
      const acrossY = (f32(y0 + y) - py) * dx;
      for (let x = 0; x < w; x++) { const d = acrossX[x] + acrossY; out[y * w + x] = d >= low && d <= high ? 1 : 0; }
    }
    return out;
  }

  return { sample, radon, radonArgmax, strongestLine, alongInside, acrossProfile, compoundEdges, drawBand };
})();

if (typeof module === "object" && module.exports) module.exports = DrywallJointLines;
