// Numbers about runs, for the page: the lab's metrics, its lr search and Distill's (α, β)
// map, computed from the results of window.ravineLab.run. Each function is the port of one
// Python function, with the same definition (named in its comment), and a browser test
// holds the two equal on real runs (tests/browser/test_explore_analysis.py).
// Public API: window.RAVINE_ANALYSIS. Runs are read, never changed.
"use strict";

(function () {
  const lab = window.ravineLab;
  // {grid, tol, untuned}: ravine.lab.demo's GRID and TOL and ravine.lab.tune.UNTUNED,
  // shipped from Python (one definition of the search).
  const TUNING = window.RAVINE_DATA.tuning;

  function fail(message) {
    const error = new Error(message);
    error.name = "RavineError";
    throw error;
  }

  // The run as ravine.lab.run.run records it: Python stops at the first step whose stored
  // parameters are not finite and fills the later rows with NaN, where the page's engine
  // may go on computing. Every metric reads this view, so both see the same numbers.
  // {theta: [[x, y], …], gap: loss − f_min (Float64Array), final: f(θ_N)}.
  function view(run) {
    const n = run.loss.length;
    let last = 0; // the last row Python keeps
    while (last < n - 1 && Number.isFinite(run.points[last][0]) && Number.isFinite(run.points[last][1])) last++;
    const theta = last === n - 1 ? run.theta : run.theta.map((t, k) => (k > last ? [NaN, NaN] : t));
    const gap = new Float64Array(n);
    for (let k = 0; k < n; k++) gap[k] = k > last ? NaN : run.loss[k] - run.fMin;
    return { theta, gap, final: last === n - 1 ? run.loss[n - 1] : NaN };
  }

  // metrics.steps_to_tolerance: the first k with loss − f_min ≤ tol, or null; with
  // stay: true, the first k from which the gap stays within tol up to the last step.
  function stepsToTolerance(run, tol, { stay = false } = {}) {
    const { gap } = view(run);
    if (!stay) {
      const k = gap.findIndex((g) => g <= tol);
      return k === -1 ? null : k;
    }
    if (!(gap[gap.length - 1] <= tol)) return null;
    let k = gap.length - 1;
    while (k > 0 && gap[k - 1] <= tol) k--;
    return k;
  }

  // metrics.final_loss: f(θ_N), the loss after the last step (NaN or ∞ if it diverged).
  function finalLoss(run) {
    return view(run).final;
  }

  // The surfaces' steep directions, by surface and parameters (building one costs more
  // than a metric).
  const steepCache = new Map();
  function steep(run) {
    const key = JSON.stringify([run.surface, run.parameters]);
    if (!steepCache.has(key)) {
      if (steepCache.size > 64) steepCache.clear();
      steepCache.set(key, lab.surface({ name: run.surface, ...run.parameters }).steep);
    }
    return steepCache.get(key);
  }

  // metrics.zigzag_index: the share of the path's travel along the unit `direction` that
  // the next step takes straight back, Σ [Δ_k·Δ_{k+1} < 0]·min(|Δ_k|, |Δ_{k+1}|) / Σ |Δ_k|
  // with Δ_k = c_{k+1} − c_k, c_k = θ_k·u. 0 for a path that never moves along it, NaN for
  // a diverged run. `direction` defaults to the surface's steep direction (the valley's w1).
  function zigzagIndex(run, direction) {
    const dir = direction === undefined ? steep(run) : direction;
    if (!Array.isArray(dir) || dir.length !== 2) {
      fail(`zigzagIndex: the surface ${run.surface} has no steep direction; give one as [x, y]`);
    }
    const { theta, final } = view(run);
    if (!Number.isFinite(final)) return NaN; // Trajectory.diverged
    const norm = Math.sqrt(dir[0] * dir[0] + dir[1] * dir[1]);
    const u0 = dir[0] / norm, u1 = dir[1] / norm;
    const c = new Float64Array(theta.length);
    for (let k = 0; k < c.length; k++) c[k] = theta[k][0] * u0 + theta[k][1] * u1;
    if (!c.every(Number.isFinite)) return NaN;
    let travel = 0, undone = 0;
    for (let k = 0; k + 1 < c.length; k++) {
      const move = c[k + 1] - c[k];
      travel += Math.abs(move);
      if (k + 2 < c.length) {
        const next = c[k + 2] - c[k + 1];
        if (move * next < 0) undone += Math.min(Math.abs(move), Math.abs(next));
      }
    }
    return travel === 0 ? 0 : undone / travel;
  }

  // metrics.fitted_rate: r of values[k] ≈ C·r^k over start ≤ k < stop, by least squares
  // on log values[k] (zeros and non-finite values left out; fewer than two left: NaN).
  // start and stop slice as Python's values[start:stop] does (negative: from the end;
  // stop null or left out: to the end).
  function fittedRate(values, start = 0, stop = null) {
    const window = Array.prototype.slice.call(values, start, stop === null ? undefined : stop);
    const ks = [], ys = [];
    window.forEach((v, k) => {
      if (Number.isFinite(v) && v > 0) {
        ks.push(k); // the slope does not depend on where k starts
        ys.push(Math.log(v));
      }
    });
    if (ks.length < 2) return NaN;
    const kBar = ks.reduce((s, k) => s + k, 0) / ks.length;
    const yBar = ys.reduce((s, y) => s + y, 0) / ys.length;
    let sky = 0, skk = 0;
    ks.forEach((k, i) => {
      sky += (k - kBar) * (ys[i] - yBar);
      skk += (k - kBar) * (k - kBar);
    });
    return Math.exp(sky / skk);
  }

  // metrics.stall_step: the first k from which the run is stalled for good, or null. With
  // gap_j = loss_j − f_min, the run is stalled over the `window` steps from j when
  //   tol < gap_j < ∞ and tol < gap_{j+window} < ∞ (not at the minimum, not diverged),
  //   gap_{j+window} > gap_j / factor (by default: halving the gap takes more than
  //   `window` steps), and
  //   ‖θ_{j+window} − θ_j‖ ≥ ½·(path length from θ_j to θ_{j+window}) (it still heads one
  //   way: a run hovering around the minimum at a constant lr, overshooting back and
  //   forth as RMSProp and NormalizedGD do, is not stalled; its steps are as long as ever);
  // k is the first step from which every window up to the last (j = N − window) is stalled.
  // null when the last window is not, or the run has fewer than `window` steps.
  function stall(run, tol, { window = 50, factor = 2 } = {}) {
    const { theta, gap } = view(run);
    const windows = gap.length - window;
    if (windows <= 0) return null;
    // travelled[k]: the path length up to θ_k, summed in order as NumPy's cumsum does
    const travelled = new Float64Array(theta.length);
    for (let k = 1; k < theta.length; k++) {
      const dx = theta[k][0] - theta[k - 1][0], dy = theta[k][1] - theta[k - 1][1];
      travelled[k] = travelled[k - 1] + Math.sqrt(dx * dx + dy * dy);
    }
    const stalled = (j) => {
      const a = gap[j], b = gap[j + window];
      const dx = theta[j + window][0] - theta[j][0], dy = theta[j + window][1] - theta[j][1];
      return Number.isFinite(a) && Number.isFinite(b) && a > tol && b > tol && b > a / factor &&
        Math.sqrt(dx * dx + dy * dy) >= 0.5 * (travelled[j + window] - travelled[j]);
    };
    if (!stalled(windows - 1)) return null;
    let k = windows - 1;
    while (k > 0 && stalled(k - 1)) k--;
    return k;
  }

  // tune._rank: fewest steps to stay within tol, then the lowest final loss (never
  // settling counts as ∞ steps, a non-finite loss as ∞); a tie keeps the earlier lr.
  function better(a, b) {
    const steps = (t) => (t.stepsToTol === null ? Infinity : t.stepsToTol);
    const loss = (t) => (Number.isFinite(t.finalLoss) ? t.finalLoss : Infinity);
    return steps(a) < steps(b) || (steps(a) === steps(b) && loss(a) < loss(b));
  }

  // tune.tune_lr with ravine.lab.demo's GRID and TOL (RAVINE_DATA.tuning): one run of
  // `steps` steps from `start` (default: the surface's) per lr of the grid, the best by
  // _rank. An optimizer in tune.UNTUNED (AdaDelta: the seed gives it no lr) keeps its
  // default lr: one run. `hyperparameters` (optional, without lr) holds the others at
  // given values; tune_lr holds them at their defaults, the same as leaving it out.
  // Returns {lr, trials: [{lr, stepsToTol, finalLoss}, …], note, atEdge} (Tuning's fields:
  // note says why an optimizer is not tuned, atEdge whether lr is the grid's first or last).
  function tune({ optimizer, surface, start, steps, hyperparameters = {} }) {
    if ("lr" in hyperparameters) fail("tune: hyperparameters must not hold lr, which is searched");
    const note = TUNING.untuned[optimizer] || "";
    const lrs = note ? [lab.hyperparameters(optimizer, hyperparameters).lr] : TUNING.grid;
    const trials = lrs.map((lr) => {
      const r = lab.run({ optimizer, surface, start, steps, hyperparameters: { ...hyperparameters, lr } });
      return { lr, stepsToTol: stepsToTolerance(r, TUNING.tol, { stay: true }), finalLoss: finalLoss(r) };
    });
    const best = trials.reduce((b, t) => (better(t, b) ? t : b));
    const atEdge = !note && (best.lr === Math.min(...lrs) || best.lr === Math.max(...lrs));
    return { lr: best.lr, trials, note, atEdge };
  }

  // theory._envelope_rate: (e_b / e_a)^(1/(b − a)), b the last k with e_b > 1e-250 (fast
  // rates underflow), a = ⌊b/2⌋; ∞ if e is not all finite; 0 if nothing is left to fit.
  function envelopeRate(e) {
    if (!e.every(Number.isFinite)) return Infinity;
    let b = e.length - 1;
    while (b > 0 && !(e[b] > 1e-250)) b--;
    const a = Math.floor(b / 2);
    if (b <= a) return 0;
    const rate = (e[b] / e[a]) ** (1 / (b - a));
    return Number.isFinite(rate) ? rate : Infinity; // convergence_map: inf where not finite
  }

  // One pixel of the map: convergence_map's rate of the state's size
  // e_k = ‖(θ_k − θ*, θ_{k−1} − θ*)‖, k = 1 … N; diverged when the run overflowed or ended
  // no closer than it began (e_N ≥ e_1).
  function pixel(run, minimum) {
    const { theta } = view(run);
    const d = new Float64Array(theta.length); // metrics.distances
    for (let k = 0; k < d.length; k++) {
      const dx = theta[k][0] - minimum[0], dy = theta[k][1] - minimum[1];
      d[k] = Math.sqrt(dx * dx + dy * dy);
    }
    const e = new Float64Array(d.length - 1);
    for (let k = 0; k < e.length; k++) e[k] = Math.sqrt(d[k + 1] * d[k + 1] + d[k] * d[k]);
    const finite = e.every(Number.isFinite);
    return { rate: envelopeRate(e), diverged: !finite || e[e.length - 1] >= e[0] };
  }

  // rateMap, one pixel at a time: a generator that yields the map after each pixel (its
  // `done` counts them), for a page that draws the map as it fills instead of freezing:
  //   const pixels = RAVINE_ANALYSIS.rateMapPixels(options);
  //   (function frame() {
  //     const end = performance.now() + 10;
  //     let next;
  //     do next = pixels.next(); while (!next.done && performance.now() < end);
  //     draw(next.value);               // the map so far (NaN where not yet computed)
  //     if (!next.done) requestAnimationFrame(frame);
  //   })();
  function* rateMapPixels({ optimizer, surface, lrs, betas, steps, start, hyperparameters = {} }) {
    if (optimizer !== "Momentum" && optimizer !== "NAG") {
      fail(`rateMap: invalid optimizer=${JSON.stringify(optimizer)}; valid: Momentum, NAG`);
    }
    if (!Number.isInteger(steps) || steps < 2) fail(`rateMap: invalid steps=${steps}; valid: an integer >= 2`);
    if ("lr" in hyperparameters || "beta" in hyperparameters) fail("rateMap: lr and beta are the map's axes");
    const s = lab.surface(surface);
    const map = {
      optimizer,
      surface: { name: s.name, ...s.parameters },
      lrs: Float64Array.from(lrs),
      betas: Float64Array.from(betas),
      steps,
      start: start === undefined ? s.start : start,
      rate: new Float64Array(lrs.length * betas.length).fill(NaN),
      diverged: new Uint8Array(lrs.length * betas.length),
      edge: new Float64Array(betas.length).fill(NaN),
      done: 0,
    };
    for (let i = 0; i < map.betas.length; i++) {
      for (let j = 0; j < map.lrs.length; j++) {
        const hp = { ...hyperparameters, lr: map.lrs[j], beta: map.betas[i] };
        const { rate, diverged } = pixel(lab.run({ optimizer, surface, start: map.start, steps, hyperparameters: hp }), s.minimum);
        const at = i * map.lrs.length + j;
        map.rate[at] = rate;
        map.diverged[at] = diverged ? 1 : 0;
        if (diverged && !(map.edge[i] <= map.lrs[j])) map.edge[i] = map.lrs[j];
        map.done = at + 1;
        yield map;
      }
    }
    return map;
  }

  // Distill's (α, β) map ("Why Momentum Really Works", Goh 2017) for ravine's Momentum or
  // NAG on a surface (meant for the valley), measured from real runs of the page's engine
  // as theory.convergence_map measures it. Per β (row i) and lr (column j): one run of
  // `steps` steps from `start` (default: the surface's) with `hyperparameters` (the others,
  // e.g. {ema: false}; default: the registry's), and at [i·lrs.length + j]
  //   rate: (e_b / e_a)^(1/(b − a)) of the state's size e_k = ‖(θ_k − θ*, θ_{k−1} − θ*)‖,
  //     b the last step with e_b > 1e-250 and a = ⌊b/2⌋ (∞ if the run overflowed);
  //   diverged: 1 when the run overflowed or ended no closer than it began (e_N ≥ e_1). Not
  //     "rate ≥ 1": near β = 1 a ripple slower than the run reads a rate just above 1
  //     over its second half and still converges;
  // and edge[i]: the smallest lr that diverged at β_i (NaN if none).
  // Returns {optimizer, surface, lrs, betas, steps, start, rate, diverged, edge, done}, the
  // arrays typed. Seconds for a large map: see rateMapPixels to draw it as it fills.
  function rateMap(options) {
    const pixels = rateMapPixels(options);
    for (;;) {
      const next = pixels.next();
      if (next.done) return next.value;
    }
  }

  window.RAVINE_ANALYSIS = Object.freeze({
    stepsToTolerance,
    finalLoss,
    zigzagIndex,
    fittedRate,
    stall,
    tune,
    rateMap,
    rateMapPixels,
  });
})();
