// The lab's surfaces (ravine.lab.surfaces, ravine.lab.minibatch) in JavaScript, for the
// page's engine: window.RAVINE_SURFACES = {name: {label, parameters, make(parameters)}}.
//
// Each formula is written as NumPy evaluates the Python one, operation for operation, so
// that both round alike: the same association (Python's `a - x + x * y` is (a − x) + x·y,
// `sum(...)` adds from 0, left to right), `v ** k` on a NumPy scalar is libm's pow (here
// Math.pow), and the valley's `A @ θ` is OpenBLAS's dgemv, which on x86-64 with FMA computes
// A[i,0]·θ0 + (A[i,1]·θ1) with one rounding for the last multiply-add (emulated exactly by
// `fma` below). A browser test holds values, gradients, minima and windows equal to Python's
// (tests/browser/test_explore_engine.py). What remains different is documented where it is:
// Math.cos/sin/exp (V8's own, not glibc's) may differ from NumPy's by one unit in the last
// place, and the least-squares sums add in plain order where OpenBLAS adds in SIMD blocks.
//
// What Python decides (default arguments, start points, the least-squares data set and its
// minimum) comes from window.RAVINE_DATA.surfaces (ravine.lab.explore.surfaces).
"use strict";

(function () {
  const DATA = window.RAVINE_DATA.surfaces;
  const DEFAULTS = DATA.defaults;

  // --- fma(a, b, c) = a·b + c rounded once, as an FMA instruction computes it -----------
  // Boldo & Melquiond, "Emulation of FMA and correctly rounded sums: proved algorithms
  // using rounding to odd" (IEEE TC 2008), Algorithm 5.4: the exact product (Dekker), an
  // exact sum, a sum rounded to odd, a last rounding to nearest. Exact while no operand is
  // near overflow and the product is not subnormal; outside that (a run already
  // diverging or converged to ~1e-290) it falls back to a·b + c, off by at most one rounding.
  const SPLIT = 134217729; // 2^27 + 1: Veltkamp's split of a double into two 26-bit halves
  const BIG = 2 ** 995;
  const TINY = 2 ** -968;
  const bits = new Float64Array(1);
  const words = new Uint32Array(bits.buffer); // words[0]: the low half (little-endian)

  // x + y rounded to odd: the exact sum if representable, else the neighbour whose last bit is 1.
  function addOdd(x, y) {
    const s = x + y;
    const v = s - x;
    const e = (x - (s - v)) + (y - v); // s + e = x + y exactly (Knuth's TwoSum)
    bits[0] = s;
    if (e === 0 || (words[0] & 1) === 1) return s;
    // s is even: step one unit toward e. Its low word is even, so +1 cannot carry.
    if ((e > 0) === (s > 0)) {
      words[0] += 1;
    } else if (words[0] === 0) {
      words[0] = 0xffffffff;
      words[1] -= 1;
    } else {
      words[0] -= 1;
    }
    return bits[0];
  }

  function fma(a, b, c) {
    const p = a * b;
    const absP = Math.abs(p);
    if (!(Math.abs(a) < BIG && Math.abs(b) < BIG && Math.abs(c) < BIG && absP > TINY)) {
      return p + c;
    }
    let t = SPLIT * a;
    const ah = t - (t - a);
    const al = a - ah;
    t = SPLIT * b;
    const bh = t - (t - b);
    const bl = b - bh;
    const pl = ((ah * bh - p) + ah * bl + al * bh) + al * bl; // p + pl = a·b exactly
    const th = c + p; // th + tl = c + p exactly
    const v = th - c;
    const tl = (c - (th - v)) + (p - v);
    return th + addOdd(tl, pl);
  }

  // --- the surfaces -------------------------------------------------------------------

  const plain = (f, grad, minimum, bounds, start) => ({
    f, grad, minimum, fMin: f(minimum), bounds, start,
  });

  // valley(kappa, rotation): f = ½ θᵀAθ, A = scale·(κ·w1 w1ᵀ + w2 w2ᵀ) as NumPy builds it.
  function valley({ kappa, rotation }) {
    const scale = DEFAULTS.valley.scale;
    const c = Math.cos(rotation);
    const s = Math.sin(rotation);
    const w1 = [-s, c]; // steep: across the valley
    const w2 = [c, s]; // shallow: along its floor
    const entry = (i, j) => scale * (kappa * (w1[i] * w1[j]) + w2[i] * w2[j]);
    const a00 = entry(0, 0), a01 = entry(0, 1), a10 = entry(1, 0), a11 = entry(1, 1);
    // 0.5 * float(theta @ A @ theta): (θ @ A) by NumPy's own loop, then a dot product.
    const f = (t) => 0.5 * ((t[0] * a00 + t[1] * a10) * t[0] + (t[0] * a01 + t[1] * a11) * t[1]);
    // A @ theta: OpenBLAS's dgemv, one fused multiply-add per row.
    const grad = (t) => [fma(a00, t[0], a01 * t[1]), fma(a10, t[0], a11 * t[1])];
    const halfAlong = 10.5, halfAcross = 4.0;
    const halfX = Math.abs(w2[0]) * halfAlong + Math.abs(w1[0]) * halfAcross;
    const halfY = Math.abs(w2[1]) * halfAlong + Math.abs(w1[1]) * halfAcross;
    const { along, across } = DATA.valleyStart;
    return Object.assign(plain(f, grad, [0, 0], [[-halfX, halfX], [-halfY, halfY]], [
      along * w2[0] + across * w1[0],
      along * w2[1] + across * w1[1],
    ]), { steep: w1 });
  }

  function rosenbrock({ a, b }) {
    const f = ([x, y]) => Math.pow(a - x, 2) + b * Math.pow(y - x * x, 2);
    const grad = ([x, y]) => [-2 * (a - x) - 4 * b * x * (y - x * x), 2 * b * (y - x * x)];
    return plain(f, grad, [a, a * a], [[-2, 2], [-1, 3]], DATA.starts.rosenbrock);
  }

  function beale() {
    const c = [1.5, 2.25, 2.625];
    const terms = (x, y) => c.map((ci, i) => ci - x + x * Math.pow(y, i + 1));
    const f = ([x, y]) => {
      let total = 0;
      for (const t of terms(x, y)) total += t * t;
      return total;
    };
    const grad = ([x, y]) => {
      const t = terms(x, y);
      let gx = 0, gy = 0;
      for (let i = 0; i < 3; i++) {
        gx += 2 * t[i] * (Math.pow(y, i + 1) - 1);
        gy += 2 * t[i] * x * (i + 1) * Math.pow(y, i);
      }
      return [gx, gy];
    };
    return plain(f, grad, [3, 0.5], [[-4.5, 4.5], [-4.5, 4.5]], DATA.starts.beale);
  }

  function booth() {
    const f = ([x, y]) => Math.pow(x + 2 * y - 7, 2) + Math.pow(2 * x + y - 5, 2);
    const grad = ([x, y]) => {
      const a = x + 2 * y - 7, b = 2 * x + y - 5;
      return [2 * a + 4 * b, 4 * a + 2 * b];
    };
    return plain(f, grad, [1, 3], [[-10, 10], [-10, 10]], DATA.starts.booth);
  }

  function himmelblau() {
    const f = ([x, y]) => Math.pow(x * x + y - 11, 2) + Math.pow(x + y * y - 7, 2);
    const grad = ([x, y]) => {
      const a = x * x + y - 11, b = x + y * y - 7;
      return [4 * x * a + 2 * b, 2 * a + 4 * y * b];
    };
    return plain(f, grad, [3, 2], [[-5, 5], [-5, 5]], DATA.starts.himmelblau);
  }

  function rastrigin({ a }) {
    // 2 * a + sum(v * v - a * np.cos(2 * np.pi * v) for v in (x, y))
    const f = ([x, y]) => 2 * a + (0 + (x * x - a * Math.cos(2 * Math.PI * x)) + (y * y - a * Math.cos(2 * Math.PI * y)));
    const g = (v) => 2 * v + 2 * Math.PI * a * Math.sin(2 * Math.PI * v);
    const grad = ([x, y]) => [g(x), g(y)];
    return plain(f, grad, [0, 0], [[-5.12, 5.12], [-5.12, 5.12]], DATA.starts.rastrigin);
  }

  function saddle() {
    const f = ([x, y]) => x * x - y * y;
    const grad = ([x, y]) => [2 * x, -2 * y];
    return plain(f, grad, [0, 0], [[-2, 2], [-2, 2]], DATA.starts.saddle);
  }

  function plateau({ width }) {
    const w2 = Math.pow(width, 2); // Python's width**2: libm's pow
    const well = (x, y) => Math.exp(-(x * x + y * y) / (2 * w2));
    const f = ([x, y]) => 1.0 - well(x, y);
    const grad = ([x, y]) => {
      const e = well(x, y);
      return [x / w2 * e, y / w2 * e];
    };
    const r = 4.0 * width;
    return plain(f, grad, [0, 0], [[-r, r], [-r, r]], DATA.starts.plateau);
  }

  // --- the mini-batch least-squares surface (ravine.lab.minibatch.least_squares) ----------
  // The data set and its minimum, window and steep direction are NumPy's, shipped from
  // Python. Sums run in plain order (OpenBLAS blocks them for SIMD, so the last bits differ).
  //
  // The batches are the page's own: mulberry32 (Tommy Ettinger's 32-bit generator) seeded
  // with `seed`, each batch a partial Fisher–Yates shuffle (`batch_size` indices without
  // replacement, uniform over all subsets) of a permutation the generator keeps from draw
  // to draw. A run draws one batch per step, so every optimizer run with one seed sees the
  // same batches; `sampleGrad` returns them so that a test can replay them in NumPy.
  const LS = DATA.leastSquares;
  const N = LS.y.length;
  const X0 = Float64Array.from(LS.X, (row) => row[0]);
  const X1 = Float64Array.from(LS.X, (row) => row[1]);
  const Y = Float64Array.from(LS.y);

  class Mulberry32 {
    constructor(seed) {
      this.state = seed >>> 0;
      this.order = null; // the permutation of 0..n-1 the draws shuffle
    }

    // A uniform number in [0, 1) with 32 random bits.
    uniform() {
      this.state = (this.state + 0x6d2b79f5) >>> 0;
      let t = this.state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    }

    // `size` distinct indices in 0..n-1, uniformly (partial Fisher–Yates).
    sample(n, size) {
      if (this.order === null || this.order.length !== n) this.order = Int32Array.from({ length: n }, (_, i) => i);
      const order = this.order;
      const drawn = new Array(size);
      for (let i = 0; i < size; i++) {
        const j = i + Math.floor(this.uniform() * (n - i));
        const chosen = order[j];
        order[j] = order[i];
        order[i] = chosen;
        drawn[i] = chosen;
      }
      return drawn;
    }
  }

  function leastSquares({ batch_size: batchSize, seed }) {
    // f = float(r @ r) / (2 * n), r = X @ theta - y
    const f = ([a, b]) => {
      let total = 0;
      for (let i = 0; i < N; i++) {
        const r = X0[i] * a + X1[i] * b - Y[i];
        total += r * r;
      }
      return total / (2 * N);
    };
    // X_B.T @ (X_B @ theta - y_B) / |B| over the given rows
    const meanGrad = ([a, b], rows, count) => {
      let gx = 0, gy = 0;
      for (let k = 0; k < count; k++) {
        const i = rows === null ? k : rows[k];
        const r = X0[i] * a + X1[i] * b - Y[i];
        gx += X0[i] * r;
        gy += X1[i] * r;
      }
      return [gx / count, gy / count];
    };
    return {
      f,
      grad: (theta) => meanGrad(theta, null, N),
      minimum: LS.minimum,
      fMin: f(LS.minimum),
      bounds: LS.bounds,
      steep: LS.steep,
      start: DATA.starts.least_squares,
      rng: () => new Mulberry32(seed),
      sampleGrad(theta, rng) {
        const batch = rng.sample(N, batchSize);
        return { grad: meanGrad(theta, batch, batchSize), batch };
      },
    };
  }

  // --- the table the engine reads -------------------------------------------------------
  // parameters: the Python function's arguments the page offers, their defaults Python's.
  const number = (surface, key, min, max, extra) =>
    Object.assign({ default: DEFAULTS[surface][key], min, max }, extra);

  window.RAVINE_SURFACES = {
    valley: {
      label: "Valley (the seed's ravine)",
      parameters: {
        kappa: number("valley", "kappa", 1, 1000, { scale: "log", label: "κ, condition number" }),
        rotation: number("valley", "rotation", -Math.PI / 2, Math.PI / 2, { label: "rotation (rad)" }),
      },
      make: valley,
    },
    rosenbrock: {
      label: "Rosenbrock",
      parameters: {
        a: number("rosenbrock", "a", -1.5, 1.5, { label: "a (minimum at (a, a²))" }),
        b: number("rosenbrock", "b", 1, 1000, { scale: "log", label: "b, the valley's steepness" }),
      },
      make: rosenbrock,
    },
    beale: { label: "Beale", parameters: {}, make: beale },
    booth: { label: "Booth", parameters: {}, make: booth },
    himmelblau: { label: "Himmelblau", parameters: {}, make: himmelblau },
    rastrigin: {
      label: "Rastrigin",
      parameters: { a: number("rastrigin", "a", 0, 20, { label: "a, the ripples' depth" }) },
      make: rastrigin,
    },
    saddle: { label: "Saddle x² − y²", parameters: {}, make: saddle },
    plateau: {
      label: "Plateau",
      parameters: { width: number("plateau", "width", 0.75, 4, { label: "width of the well" }) },
      make: plateau,
    },
    least_squares: {
      label: `Mini-batch least squares (n = ${N})`,
      parameters: {
        batch_size: number("least_squares", "batch_size", 1, N, { integer: true, scale: "log", label: "batch size" }),
        seed: number("least_squares", "seed", 0, 2 ** 32 - 1, { integer: true, label: "seed of the batch draws" }),
      },
      make: leastSquares,
    },
  };
})();
