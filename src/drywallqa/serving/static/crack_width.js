// drywallqa.qa.crack_width ported to plain JS for the on-device mode: a crack's width read across
// the dark line on the photo, not the mask's band (the module docstring of crack_width.py says how).
// Each function names the Python it follows; tests/serving/test_webapp_qa_js.py runs this file in
// Node against that Python. OpenCV's arithmetic is followed where it decides a sample: the grey
// conversion (15-bit weights), cv2.remap INTER_LINEAR on float32 maps (NaN where a neighbour is
// off the photo), the row smoothing (cv2.filter2D, BORDER_REPLICATE). Arrays are typed, row-major.
"use strict";

const DrywallCrackWidth = (() => {
  const PROFILE_STEP_PX = 0.25, MAX_PROFILE_STEP_PX = 1.0, PARALLEL_OFFSETS_PX = [-1.0, -0.5, 0.0, 0.5, 1.0];
  const SEARCH_MARGIN_PX = 2.0, WALL_SPAN_PX = 4.0, FLANK_GAP_PX = 1.5, MIN_WALL_SAMPLES = 4, SMOOTHING_PX = 0.35;
  const MAX_PROFILES = 2000, MIN_DEPTH_NOISE_RATIO = 4.0, MIN_RELATIVE_DEPTH = 0.04, RESOLVED_WIDTH_PX = 3.0;
  const MIN_RESOLVED_PROFILES = 5, MIN_RESOLVED_SHARE = 0.1, TYPICAL_DEPTH = 0.5;
  const WIDTH_MAX_PERCENTILE = 95.0, WIDTH_MEAN_TRIM = 0.1;
  const f32 = Math.fround;

  // -- NumPy's and OpenCV's small arithmetic ----------------------------------------------------
  // cv2.cvtColor(COLOR_RGB2GRAY) of RGBA uint8: OpenCV's 15-bit fixed-point weights, rounded.
  function greyOf(rgba, count) {
    const out = new Uint8Array(count);
    for (let i = 0, p = 0; i < count; i++, p += 4) out[i] = (rgba[p] * 9798 + rgba[p + 1] * 19235 + rgba[p + 2] * 3735 + 16384) >> 15;
    return out;
  }

  // Python's round(): half to even.
  const roundHalfEven = (x) => { const r = Math.round(x); return r - x === 0.5 && r % 2 ? r - 1 : r; };

  // np.percentile (linear) of an ascending array.
  function percentile(sorted, q) {
    const n = sorted.length, quantile = q / 100;
    const virtual = n * quantile + (1 + quantile * (1 - 1 - 1)) - 1;
    const lo = Math.max(0, Math.min(n - 1, Math.floor(virtual))), hi = Math.min(lo + 1, n - 1);
    const t = virtual - lo, a = sorted[lo], b = sorted[hi], diff = b - a;
    return t >= 0.5 ? b - diff * (1 - t) : a + diff * t;
  }

  // np.median (np.nanmedian when NaN are left out first) of a float64 array; `single`: in float32.
  function median(values, single = false) {
    const sorted = Float64Array.from(values).sort(), n = sorted.length;
    if (!n) return NaN;
    if (n % 2) return sorted[(n - 1) / 2];
    return single ? f32(f32(sorted[n / 2 - 1] + sorted[n / 2]) / 2) : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  }

  /**
   * summarise_widths: [mean, max] of per-profile widths (10 % trimmed mean, 95th percentile), or [null, null].
   * @param {ArrayLike<number>} widths
   */
  function summariseWidths(widths) {
    if (!widths.length) return [null, null];
    const ordered = Float64Array.from(widths).sort(), n = ordered.length, cut = Math.trunc(n * WIDTH_MEAN_TRIM);
    const kept = n > 2 * cut ? ordered.subarray(cut, n - cut) : ordered;
    let sum = 0;
    for (const v of kept) sum += v;
    return [sum / kept.length, percentile(ordered, WIDTH_MAX_PERCENTILE)];
  }

  // -- geometry ---------------------------------------------------------------------------------
  // _away_from_junctions: skeleton pixels farther from their nearest junction (3+ skeleton
  // neighbours) than its distance plus SEARCH_MARGIN_PX. Ties between junctions: the first in
  // row-major order (scipy's k-d tree takes whichever it meets first).
  function awayFromJunctions(skeleton, width, height, xs, ys, distance) {
    const n = xs.length, away = new Uint8Array(n).fill(1), junctions = [];
    for (let i = 0; i < n; i++) {
      const x = xs[i], y = ys[i];
      let count = 0;
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const u = x + dx, v = y + dy;
          if ((dx || dy) && u >= 0 && v >= 0 && u < width && v < height) count += skeleton[v * width + u];
        }
      }
      if (count >= 3) junctions.push(i);
    }
    if (!junctions.length) return away;
    const jx = Int32Array.from(junctions, (j) => xs[j]), jy = Int32Array.from(junctions, (j) => ys[j]);
    const reach = Float64Array.from(junctions, (j) => distance[ys[j] * width + xs[j]] + SEARCH_MARGIN_PX);
    // Junctions by 16 px cells; each pixel searches rings of cells outwards until no farther cell
    // can hold a junction as near as the nearest found (ties included).
    const cell = 16, gw = Math.ceil(width / cell), gh = Math.ceil(height / cell), grid = Array.from({ length: gw * gh }, () => []);
    for (let j = 0; j < jx.length; j++) grid[Math.floor(jy[j] / cell) * gw + Math.floor(jx[j] / cell)].push(j);
    for (let i = 0; i < n; i++) {
      const cx = Math.floor(xs[i] / cell), cy = Math.floor(ys[i] / cell);
      let best = Infinity, nearest = -1;
      for (let ring = 0; ring <= Math.max(gw, gh); ring++) {
        for (let v = Math.max(0, cy - ring); v <= Math.min(gh - 1, cy + ring); v++) {
          for (let u = Math.max(0, cx - ring); u <= Math.min(gw - 1, cx + ring); u++) {
            if (Math.max(Math.abs(u - cx), Math.abs(v - cy)) !== ring) continue;
            for (const j of grid[v * gw + u]) {
              const dx = jx[j] - xs[i], dy = jy[j] - ys[i], d2 = dx * dx + dy * dy;
              if (d2 < best || (d2 === best && j < nearest)) { best = d2; nearest = j; }
            }
          }
        }
        if ((ring * cell + 1) ** 2 > best) break;
      }
      away[i] = Math.sqrt(best) > reach[nearest] ? 1 : 0;
    }
    return away;
  }

  // Offsets within scipy's distance_upper_bound 6 (strictly), nearest first, ties in row-major order.
  const NEIGHBOUR_OFFSETS = (() => {
    const list = [];
    for (let dy = -5; dy <= 5; dy++) for (let dx = -5; dx <= 5; dx++) if (dx * dx + dy * dy < 36) list.push([dx * dx + dy * dy, dy, dx]);
    list.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
    return list.map(([, dy, dx]) => [dx, dy]);
  })();

  // _skeleton_normals: unit normals (x, y) to the principal axis of the 9 nearest skeleton pixels
  // (within 6 px; those of another component take a place but do not count). Ties at the ninth
  // place: the first in row-major order (scipy's k-d tree keeps whichever it meets first).
  function skeletonNormals(index, width, height, xs, ys, components, at, neighbours = 9) {
    const k = Math.min(neighbours, xs.length), normals = new Float64Array(2 * at.length);
    const ox = new Float64Array(k), oy = new Float64Array(k);
    at.forEach((p, row) => {
      const x = xs[p], y = ys[p];
      let found = 0;
      for (let o = 0; o < NEIGHBOUR_OFFSETS.length && found < k; o++) {
        const u = x + NEIGHBOUR_OFFSETS[o][0], v = y + NEIGHBOUR_OFFSETS[o][1];
        if (u < 0 || v < 0 || u >= width || v >= height) continue;
        const q = index[v * width + u];
        if (q < 0) continue;
        if (components[q] === components[p]) { ox[found] = u - x; oy[found] = v - y; } else { ox[found] = NaN; }
        found++;
      }
      let count = 0, mx = 0, my = 0;
      for (let i = 0; i < found; i++) if (!Number.isNaN(ox[i])) { mx += ox[i]; my += oy[i]; count++; }
      count = Math.max(count, 1);
      mx /= count; my /= count;
      let cxx = 0, cyy = 0, cxy = 0;
      for (let i = 0; i < found; i++) {
        if (Number.isNaN(ox[i])) continue;
        const cx = ox[i] - mx, cy = oy[i] - my;
        cxx += cx * cx; cyy += cy * cy; cxy += cx * cy;
      }
      const angle = 0.5 * Math.atan2(2.0 * cxy, cxx - cyy);
      normals[2 * row] = -Math.sin(angle);
      normals[2 * row + 1] = Math.cos(angle);
    });
    return normals;
  }

  // _sample_profiles: (N, T) float32 brightness along each normal, the mean of the parallel lines
  // along the crack; NaN where a sample falls off the photo.
  function sampleProfiles(grey, width, height, centres, normals, offsets) {
    const n = centres.length / 2, t = offsets.length, parallel = PARALLEL_OFFSETS_PX;
    let reach = 0;
    for (const o of offsets) reach = Math.max(reach, Math.abs(o));
    reach += 1 + 2;
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (let i = 0; i < n; i++) {
      minX = Math.min(minX, centres[2 * i]); maxX = Math.max(maxX, centres[2 * i]);
      minY = Math.min(minY, centres[2 * i + 1]); maxY = Math.max(maxY, centres[2 * i + 1]);
    }
    const x0 = Math.max(Math.floor(minX - reach), 0), y0 = Math.max(Math.floor(minY - reach), 0);
    const x1 = Math.min(Math.ceil(maxX + reach) + 1, width), y1 = Math.min(Math.ceil(maxY + reach) + 1, height);
    const ww = x1 - x0, wh = y1 - y0, window = new Float32Array(ww * wh);
    for (let y = 0; y < wh; y++) for (let x = 0; x < ww; x++) window[y * ww + x] = grey[(y0 + y) * width + x0 + x];
    const profiles = new Float32Array(n * t), lines = parallel.length, startX = new Float64Array(lines), startY = new Float64Array(lines);
    for (let i = 0; i < n; i++) {
      const nx = normals[2 * i], ny = normals[2 * i + 1], tx = ny, ty = -nx;
      const cx = centres[2 * i] - x0, cy = centres[2 * i + 1] - y0;
      for (let s = 0; s < lines; s++) { startX[s] = cx + parallel[s] * tx; startY[s] = cy + parallel[s] * ty; }
      for (let j = 0; j < t; j++) {
        const ox = offsets[j] * nx, oy = offsets[j] * ny;
        let sum = 0;
        for (let s = 0; s < lines; s++) {
          const px = startX[s] + ox, py = startY[s] + oy;
          // cv2.remap INTER_LINEAR at float32 positions, NaN unless all four neighbours are on the window.
          const sx = f32(px), sy = f32(py), ix = Math.floor(sx), iy = Math.floor(sy);
          if (!(px >= 0 && py >= 0 && px <= ww - 1 && py <= wh - 1 && ix < ww - 1 && iy < wh - 1 && ix >= 0 && iy >= 0)) { sum = NaN; break; }
          // (Grey levels are whole numbers: their differences are exact.)
          const fx = f32(sx - ix), fy = f32(sy - iy), k = iy * ww + ix, p00 = window[k], p10 = window[k + ww];
          const v0 = f32(p00 + f32(fx * (window[k + 1] - p00))), v1 = f32(p10 + f32(fx * (window[k + ww + 1] - p10)));
          sum = f32(sum + f32(v0 + f32(fy * f32(v1 - v0))));
        }
        profiles[i * t + j] = sum / lines;
      }
    }
    return profiles;
  }

  // -- reading the dips -------------------------------------------------------------------------
  // _smooth's kernel: cv2.getGaussianKernel(2r + 1, sigma) as float32.
  function gaussianKernel(sigma) {
    const radius = Math.max(1, Math.ceil(3 * sigma)), kernel = new Float64Array(2 * radius + 1);
    let sum = 0;
    for (let i = 0; i < kernel.length; i++) { kernel[i] = Math.exp((-0.5 / (sigma * sigma)) * (i - radius) ** 2); sum += kernel[i]; }
    return Float32Array.from(kernel, (v) => v / sum);
  }

  // _smooth of one row (cv2.filter2D, BORDER_REPLICATE) into `out`.
  function smoothRow(values, kernel, out) {
    const t = values.length, radius = (kernel.length - 1) / 2;
    for (let j = 0; j < t; j++) {
      let sum = 0;
      if (j >= radius && j + radius < t) {
        for (let k = 0, at = j - radius; k < kernel.length; k++, at++) sum += kernel[k] * values[at];
      } else {
        for (let k = -radius; k <= radius; k++) sum += kernel[k + radius] * values[Math.min(t - 1, Math.max(0, j + k))];
      }
      out[j] = sum;
    }
  }

  // np.nanmedian of values[0..count) (float32 arithmetic when `single`), sorting `scratch` in place.
  function nanMedian(values, count, scratch, single) {
    let m = 0;
    for (let i = 0; i < count; i++) {
      const v = values[i];
      if (Number.isNaN(v)) continue;
      let j = m++;  // insertion sort: a few dozen values
      while (j > 0 && scratch[j - 1] > v) { scratch[j] = scratch[j - 1]; j--; }
      scratch[j] = v;
    }
    if (!m) return NaN;
    if (m % 2) return scratch[(m - 1) / 2];
    return single ? f32(f32(scratch[m / 2 - 1] + scratch[m / 2]) / 2) : (scratch[m / 2 - 1] + scratch[m / 2]) / 2;
  }

  // _flank: values[first..first+count) into `out`, NaN beyond the row's ends; returns how many are finite.
  function flank(values, first, count, out, at = 0) {
    let finite = 0;
    for (let i = 0; i < count; i++) {
      const j = first + i, v = j >= 0 && j < values.length ? values[j] : NaN;
      out[at + i] = v;
      if (!Number.isNaN(v)) finite++;
    }
    return finite;
  }

  // _read_dip: one pass over every profile. `innerLeft`, `innerRight`: (N,) ends of the inner span.
  function readDip(profiles, n, offsets, search, innerLeft, innerRight, slide = false) {
    const t = offsets.length, step = offsets[1] - offsets[0], off0 = offsets[0];
    const count = Math.max(MIN_WALL_SAMPLES, roundHalfEven(WALL_SPAN_PX / step));
    const kernel = gaussianKernel(SMOOTHING_PX / step);
    const fields = ["ok", "depth", "relative_depth", "relative_area", "half_depth_width", "left", "right", "wall_left",
                    "wall_slope", "wall_left_at"];
    const out = Object.fromEntries(fields.map((name) => [name, new Float64Array(n)]));
    out.by_darkness = new Uint8Array(n);
    const wall = new Float64Array(t), darkness = new Float64Array(t), filled = new Float64Array(t), smooth = new Float32Array(t);
    const leftValues = new Float64Array(count), rightValues = new Float64Array(count), flanks = new Float64Array(2 * count);
    const scratch = new Float64Array(2 * count);
    for (let r = 0; r < n; r++) {
      const row = profiles.subarray(r * t, (r + 1) * t);
      let lf = Math.floor((innerLeft[r] - off0) / step) - count + 1, rf = Math.ceil((innerRight[r] - off0) / step);
      if (slide) {
        let firstOn = 0, lastOn = t - 1;
        while (firstOn < t && Number.isNaN(row[firstOn])) firstOn++;
        if (firstOn === t) firstOn = 0; else while (Number.isNaN(row[lastOn])) lastOn--;
        lf = Math.max(lf, firstOn);
        rf = Math.min(rf, lastOn - count + 1);
      }
      const wallSamples = Math.min(flank(row, lf, count, leftValues), flank(row, rf, count, rightValues));
      const wallLeft = nanMedian(leftValues, count, scratch, true), wallRight = nanMedian(rightValues, count, scratch, true);
      const leftAt = off0 + (lf + (count - 1) / 2) * step, rightAt = off0 + (rf + (count - 1) / 2) * step;
      const slope = f32(wallRight - wallLeft) / (rightAt - leftAt);
      let profileFinite = true, area = 0;
      for (let j = 0; j < t; j++) {
        wall[j] = wallLeft + slope * (offsets[j] - leftAt);
        darkness[j] = wall[j] - row[j];
        filled[j] = Number.isNaN(darkness[j]) ? 0 : darkness[j];
        if (j >= lf + count && j < rf) {
          if (Number.isNaN(row[j])) profileFinite = false; else if (!Number.isNaN(darkness[j])) area += darkness[j];
        }
      }
      area *= step;
      flank(darkness, lf, count, flanks);
      flank(darkness, rf, count, flanks, count);
      for (let i = 0; i < flanks.length; i++) flanks[i] = Math.abs(flanks[i]);
      const noise = 1.4826 * nanMedian(flanks, flanks.length, scratch, false);
      smoothRow(filled, kernel, smooth);
      let centre = 0, best = -Infinity;
      for (let j = 0; j < t; j++) if (Math.abs(offsets[j]) <= search[r] && smooth[j] > best) { best = smooth[j]; centre = j; }
      const depth = smooth[centre], wallCentre = wall[centre];
      const finite = profileFinite && wallSamples >= MIN_WALL_SAMPLES && Number.isFinite(wallCentre) && Number.isFinite(noise);
      // Half-depth crossings: the last sample below half depth left of the centre, the first right of it.
      const half = f32(depth / 2);
      let leftI = centre - 1, rightI = centre + 1;
      while (leftI >= 0 && !(smooth[leftI] <= half)) leftI--;
      while (rightI < t && !(smooth[rightI] <= half)) rightI++;
      const found = leftI >= 0 && rightI < t;
      const li = Math.min(Math.max(leftI, 0), t - 2), ri = Math.min(Math.max(rightI, 1), t - 1);
      const fraction = (num, den) => {
        const v = f32(num / den);
        return Number.isNaN(v) ? 0 : Math.min(1, Math.max(0, v));
      };
      const left = offsets[li] + f32(fraction(f32(half - smooth[li]), f32(smooth[li + 1] - smooth[li])) * step);
      const right = offsets[ri - 1] + f32(fraction(f32(smooth[ri - 1] - half), f32(smooth[ri - 1] - smooth[ri])) * step);
      const width = right - left, relativeDepth = depth / wallCentre, relativeArea = area / wallCentre;
      out.ok[r] = finite && found && depth > MIN_DEPTH_NOISE_RATIO * noise && relativeDepth > MIN_RELATIVE_DEPTH &&
        relativeArea > 0 && width > 0 ? 1 : 0;
      out.depth[r] = depth; out.relative_depth[r] = relativeDepth; out.relative_area[r] = relativeArea;
      out.half_depth_width[r] = width; out.left[r] = left; out.right[r] = right;
      out.wall_left[r] = wallLeft; out.wall_slope[r] = slope; out.wall_left_at[r] = leftAt;
    }
    return out;
  }

  // _read_dips: the wall beyond the search window finds the dip; then the wall beyond the dip's
  // half-depth crossings (a shoulder beside the crack counts as wall).
  function readDips(profiles, n, offsets, search) {
    const first = readDip(profiles, n, offsets, search, search.map((v) => -v), search, true);
    const second = readDip(profiles, n, offsets, search, first.left.map((v) => v - FLANK_GAP_PX),
                           first.right.map((v) => v + FLANK_GAP_PX));
    for (let r = 0; r < n; r++) second.ok[r] = second.ok[r] && first.ok[r] ? 1 : 0;
    return second;
  }

  // _widths: the half-depth width where a component's dips reach its full darkness, else the
  // darkness area over that darkness.
  function widthsOf(dips, components) {
    const n = components.length, widths = new Float64Array(n).fill(NaN), ok = dips.ok;
    const kinds = [...new Set(Array.from(components).filter((_, i) => ok[i]))].sort((a, b) => a - b);
    for (const k of kinds) {
      const own = [], resolved = [];
      for (let i = 0; i < n; i++) {
        if (!ok[i] || components[i] !== k) continue;
        own.push(i);
        if (dips.half_depth_width[i] >= RESOLVED_WIDTH_PX) resolved.push(i);
      }
      let full;
      if (resolved.length >= Math.max(MIN_RESOLVED_PROFILES, MIN_RESOLVED_SHARE * own.length)) {
        full = median(resolved.map((i) => dips.relative_depth[i]));
      } else {
        full = Math.max(percentile(Float64Array.from(own, (i) => dips.relative_depth[i]).sort(), 90), TYPICAL_DEPTH);
        resolved.length = 0;
      }
      const isResolved = new Set(resolved);
      for (const i of own) {
        if (isResolved.has(i)) widths[i] = dips.half_depth_width[i];
        else { widths[i] = dips.relative_area[i] / full; dips.by_darkness[i] = 1; }
      }
    }
    return widths;
  }

  const round = (value, digits) => Number(Number(value).toFixed(digits));

  // _example + WidthProfile.to_dict(scale): the profile whose width is nearest the maximum.
  function example(index, centres, offsets, profiles, dips, widths, scale) {
    const t = offsets.length, row = profiles.subarray(index * t, (index + 1) * t);
    const left = dips.left[index], right = dips.right[index], reach = FLANK_GAP_PX + WALL_SPAN_PX + 1.0;
    const kept = [], samples = [];
    for (let j = 0; j < t; j++) {
      if (offsets[j] >= left - reach && offsets[j] <= right + reach && !Number.isNaN(row[j])) { kept.push(offsets[j]); samples.push(row[j]); }
    }
    const wallAt = (o) => dips.wall_left[index] + dips.wall_slope[index] * (o - dips.wall_left_at[index]);
    return {
      x_px: round(centres[2 * index] * scale, 1), y_px: round(centres[2 * index + 1] * scale, 1),
      offsets_px: kept.map((v) => round(v * scale, 3)), samples: samples.map((v) => round(v, 1)),
      wall: [round(wallAt(kept[0]), 1), round(wallAt(kept[kept.length - 1]), 1)], depth: round(dips.depth[index], 1),
      edges_px: [round(left * scale, 3), round(right * scale, 3)], width_px: round(widths[index] * scale, 3),
      method: dips.by_darkness[index] ? "darkness" : "half-depth",
    };
  }

  /**
   * measure_photo_widths: the dark line's width across every crack component of a mask, on the photo.
   * @param {Uint8Array} grey the photo's grey levels (greyOf), imageWidth x imageHeight, at the mask's size
   * @param {Int32Array} labels component labels 1..K of the mask or of a crop of it (width x height)
   * @param {Uint8Array} skeleton 0/1 skeleton of the labelled components
   * @param {Float32Array} distance each mask pixel's distance to the nearest background pixel
   * @param {number[]} origin [x, y] of the crop's top-left pixel in the photo
   * @param {number} scale file pixels per photo pixel, for the example profile's lengths
   * @returns {{widths: Float64Array, components: Int32Array, tried: number, example: object|null}} in photo pixels
   */
  function measurePhotoWidths(grey, imageWidth, imageHeight, labels, skeleton, distance, width, height, origin = [0, 0], scale = 1) {
    const xsAll = [], ysAll = [], index = new Int32Array(width * height).fill(-1);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) if (skeleton[y * width + x]) { index[y * width + x] = xsAll.length; xsAll.push(x); ysAll.push(y); }
    }
    const none = (tried) => ({ widths: new Float64Array(0), components: new Int32Array(0), tried, example: null });
    if (!xsAll.length) return none(0);
    const xs = Int32Array.from(xsAll), ys = Int32Array.from(ysAll);
    const components = Int32Array.from(xs, (x, i) => labels[ys[i] * width + x]);
    const away = awayFromJunctions(skeleton, width, height, xs, ys, distance);
    let candidates = [];
    away.forEach((v, i) => { if (v) candidates.push(i); });
    if (!candidates.length) candidates = Array.from(xs, (_, i) => i);  // a tangle of junctions: measure it all
    if (candidates.length > MAX_PROFILES) {
      const last = candidates.length - 1, stepIndex = last / (MAX_PROFILES - 1);
      candidates = Array.from({ length: MAX_PROFILES }, (_, i) => candidates[i === MAX_PROFILES - 1 ? last : Math.trunc(i * stepIndex)]);
    }
    const normals = skeletonNormals(index, width, height, xs, ys, components, candidates);
    const n = candidates.length;
    const comps = Int32Array.from(candidates, (c) => components[c]);
    const bandHalf = Float64Array.from(candidates, (c) => Math.max(distance[ys[c] * width + xs[c]] - 0.5, 0.5));
    const search = bandHalf.map((v) => v + SEARCH_MARGIN_PX);
    const step = Math.min(Math.max(median(bandHalf) / 16, PROFILE_STEP_PX), MAX_PROFILE_STEP_PX);
    const reach = Math.max(...search) + FLANK_GAP_PX + WALL_SPAN_PX, half = Math.ceil(reach / step);
    const offsets = Float64Array.from({ length: 2 * half + 1 }, (_, j) => (j - half) * step);
    const centres = new Float64Array(2 * n);
    candidates.forEach((c, i) => { centres[2 * i] = xs[c] + origin[0]; centres[2 * i + 1] = ys[c] + origin[1]; });
    const profiles = sampleProfiles(grey, imageWidth, imageHeight, centres, normals, offsets);
    const dips = readDips(profiles, n, offsets, search);
    const widths = widthsOf(dips, comps);
    const measuredAt = [];
    for (let i = 0; i < n; i++) if (dips.ok[i]) measuredAt.push(i);
    if (!measuredAt.length) return none(n);
    const measured = Float64Array.from(measuredAt, (i) => widths[i]);
    const [, widthMax] = summariseWidths(measured);
    let nearest = 0;
    measured.forEach((v, i) => { if (Math.abs(v - widthMax) < Math.abs(measured[nearest] - widthMax)) nearest = i; });
    return {
      widths: measured, components: Int32Array.from(measuredAt, (i) => comps[i]), tried: n,
      example: example(measuredAt[nearest], centres, offsets, profiles, dips, widths, scale),
    };
  }

  return { greyOf, roundHalfEven, percentile, median, summariseWidths, measurePhotoWidths, gaussianKernel };
})();

if (typeof module === "object" && module.exports) module.exports = DrywallCrackWidth;
