// The page's engine: runs the traced programs (RAVINE_PROGRAMS, generated from the library's
// rules by ravine.codegen.js) on the surfaces (RAVINE_SURFACES, surfaces.js), and checks
// hyperparameters with the registry's checks (RAVINE_DATA). Public API: window.ravineLab.
"use strict";

(function () {
  const DATA = window.RAVINE_DATA;
  const PROGRAMS = window.RAVINE_PROGRAMS;
  const SURFACES = window.RAVINE_SURFACES;
  const OPTIMIZERS = Object.fromEntries(DATA.optimizers.map((o) => [o.name, o]));

  function fail(message) {
    const error = new Error(message);
    error.name = "RavineError";
    throw error;
  }

  function repr(value) {
    if (typeof value === "string") return `'${value}'`;
    if (typeof value === "boolean") return value ? "True" : "False";
    if (value === null || value === undefined) return "None";
    return String(value);
  }

  // The registry's check of one value (ravine.rules.validation), with Python's message.
  function checkValue(owner, name, check, value) {
    const invalid = () => fail(`${owner}: invalid ${name}=${repr(value)}; valid: ${check.describe}`);
    switch (check.kind) {
      case "interval": {
        if (typeof value !== "number" || !Number.isFinite(value)) invalid();
        const above = check.low === null || (check.lowOpen ? value > check.low : value >= check.low);
        const below = check.high === null || (check.highOpen ? value < check.high : value <= check.high);
        if (!(above && below)) invalid();
        return value;
      }
      case "choice":
        if (!check.values.includes(value)) invalid();
        return value;
      case "flag":
        if (typeof value !== "boolean") invalid();
        return value;
      case "or-none":
        return value === null ? null : checkValue(owner, name, check.inner, value);
      default:
        return fail(`${owner}: no check for ${name}`);
    }
  }

  function optimizer(name) {
    if (!(name in OPTIMIZERS)) {
      fail(`unknown optimizer ${repr(name)}; valid: ${Object.keys(OPTIMIZERS).join(", ")}`);
    }
    return OPTIMIZERS[name];
  }

  // The checked hyperparameters: defaults, overridden by `given` (unknown names refused).
  function hyperparameters(name, given) {
    const spec = optimizer(name);
    const unknown = Object.keys(given || {}).filter((k) => !(k in spec.checks)).sort();
    if (unknown.length) {
      fail(`${name}: unexpected argument(s) ${unknown.join(", ")}; valid: ${Object.keys(spec.checks).sort().join(", ")}`);
    }
    const hp = Object.assign({}, spec.defaults, given || {});
    for (const key of Object.keys(hp)) hp[key] = checkValue(name, key, spec.checks[key], hp[key]);
    return hp;
  }

  // The traced program for these hyperparameters: the one whose branch decisions they share.
  function program(name, hp) {
    for (const candidate of PROGRAMS[name]) {
      const fits = Object.entries(candidate.decisions).every(([key, decided]) =>
        decided === "zero" ? hp[key] === 0 : decided === "nonzero" ? hp[key] !== 0 : hp[key] === decided,
      );
      if (fits) return candidate;
    }
    return fail(`${name}: the page has no program for ${JSON.stringify(hp)}; it offers ${DATA.options.join(", ")}`);
  }

  function surface(spec) {
    const { name, ...given } = typeof spec === "string" ? { name: spec } : spec || {};
    if (!(name in SURFACES)) {
      fail(`unknown surface ${repr(name)}; valid: ${Object.keys(SURFACES).join(", ")}`);
    }
    const table = SURFACES[name];
    const unknown = Object.keys(given).filter((k) => !(k in table.parameters)).sort();
    if (unknown.length) {
      fail(`surface ${name}: unexpected argument(s) ${unknown.join(", ")}; valid: ${Object.keys(table.parameters).join(", ") || "none"}`);
    }
    const parameters = {};
    for (const [key, p] of Object.entries(table.parameters)) {
      const value = key in given ? given[key] : p.default;
      if (typeof value !== "number" || !Number.isFinite(value) || value < p.min || value > p.max || (p.integer && !Number.isInteger(value))) {
        fail(`surface ${name}: invalid ${key}=${repr(value)}; valid: ${p.min} <= ${key} <= ${p.max}${p.integer ? " (an integer)" : ""}`);
      }
      parameters[key] = value;
    }
    return Object.assign({ name, parameters }, table.make(parameters));
  }

  // One run: θ_0 = start, then `steps` steps; as ravine.lab.run does (ravine.numpy's rules).
  function run({ optimizer: name, surface: surfaceSpec, hyperparameters: given, start, steps }) {
    const hp = hyperparameters(name, given);
    const prog = program(name, hp);
    const s = surface(surfaceSpec);
    const n = 2;
    const x0 = start === undefined ? s.start : start;
    if (!Array.isArray(x0) || x0.length !== 2 || !x0.every(Number.isFinite)) {
      fail(`invalid start=${JSON.stringify(x0)}; valid: two finite numbers [x, y]`);
    }
    if (!Number.isInteger(steps) || steps < 0) fail(`invalid steps=${repr(steps)}; valid: an integer >= 0`);
    const env = {};
    for (const [key, value] of Object.entries(hp)) if (typeof value === "number") env[key] = value;
    const init = prog.init(env);
    const x = prog.arrays.map((stream) =>
      stream === "p" ? Float64Array.from(x0) : new Float64Array(n).fill(stream === "g" ? 0 : init[stream]),
    );
    const scalarState = {};
    for (const field of prog.scalarState) scalarState[field] = init[field];
    const fields = prog.arrays.slice(2);
    const rng = s.sampleGrad ? s.rng() : null;
    const theta = [], points = [], loss = [], grads = [], batches = [];
    const internals = Object.fromEntries([...fields, ...prog.scalarState].map((f) => [f, []]));
    let diverged = null;
    const record = () => {
      const th = prog.theta(n, x, Object.assign({}, env, scalarState));
      theta.push([th[0], th[1]]);
      points.push([x[0][0], x[0][1]]);
      const value = s.f(th);
      loss.push(value);
      fields.forEach((f, k) => internals[f].push([x[k + 2][0], x[k + 2][1]]));
      prog.scalarState.forEach((f) => internals[f].push(scalarState[f]));
      if (diverged === null && !(Number.isFinite(value) && Number.isFinite(th[0]) && Number.isFinite(th[1]))) {
        diverged = theta.length - 1;
      }
    };
    record();
    for (let t = 1; t <= steps; t++) {
      const p = [x[0][0], x[0][1]];
      let g;
      if (rng) {
        const drawn = s.sampleGrad(p, rng);
        g = drawn.grad;
        batches.push(drawn.batch);
      } else {
        g = s.grad(p);
      }
      grads.push([g[0], g[1]]);
      x[1][0] = g[0];
      x[1][1] = g[1];
      Object.assign(env, scalarState);
      env.t = t;
      const red = prog.reduce ? prog.reduce(n, x, prog.reductionScalars(env)) : null;
      const values = prog.scalars(env, red);
      prog.update(n, x, values.slice(0, prog.kernelScalars));
      prog.scalarState.forEach((f, i) => (scalarState[f] = values[prog.kernelScalars + i]));
      record();
    }
    const result = {
      optimizer: name, hyperparameters: hp, surface: s.name, parameters: s.parameters,
      theta, points, loss, grads, internals, diverged, fMin: s.fMin,
    };
    if (rng) result.batches = batches;
    return result;
  }

  window.ravineLab = Object.freeze({
    version: DATA.version,
    optimizers: DATA.optimizers,
    surfaces: Object.fromEntries(Object.entries(SURFACES).map(([k, v]) => [k, { parameters: v.parameters, label: v.label }])),
    hyperparameters,
    surface,
    run,
  });
})();
