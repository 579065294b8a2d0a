// The page's interface: controls, drawing and the URL state of `ravine lab explore`.
// Every number drawn here comes from window.ravineLab (the library's traced rules) or from
// window.RAVINE_ANALYSIS (metrics, tuning, the rate map); this file only wires and draws.
"use strict";

(function () {
  const lab = window.ravineLab;
  const $ = (id) => document.getElementById(id);
  if (!lab || !$("app")) return;
  const analysis = () => window.RAVINE_ANALYSIS || null; // may be missing: degrade, don't fail

  // ---------------------------------------------------------------- registry and defaults
  const SPECS = lab.optimizers;
  const NAMES = SPECS.map((o) => o.name);
  const SPEC = Object.fromEntries(SPECS.map((o) => [o.name, o]));
  const SURFACES = lab.surfaces;
  const SURFACE_NAMES = Object.keys(SURFACES);
  const HOME = SURFACE_NAMES.includes("valley") ? "valley" : SURFACE_NAMES[0];
  const TOL = window.RAVINE_DATA.tuning.tol; // ravine.lab.demo.TOL: "steps to tolerance"
  const DEFAULT_STEPS = 300; // ravine.lab.claims runs 300 steps
  const MAX_STEPS = 5000;
  // The seed's side-by-side setting (ravine.lab.claims): GD and the momentum pair at one lr
  // just below GD's limit 2/κ on the valley, lr 0.1 for the adaptive methods.
  const PAGE_LR = { SGD: 0.036, Momentum: 0.036, NAG: 0.036, NormalizedGD: 0.1, Adagrad: 0.1, RMSProp: 0.1, Adam: 0.1, NAdam: 0.1 };
  const MAP_OPTIMIZERS = ["Momentum", "NAG"].filter((n) => n in SPEC);

  // Okabe–Ito's colour-blind-safe colours (yellow left out: unreadable on a light page) and
  // two of Tol's; each optimizer also has its own dash and marker, so colour is never the
  // only cue.
  const LOOKS = [
    ["#000000", [], "circle"],
    ["#E69F00", [9, 4], "square"],
    ["#56B4E9", [2, 3], "triangle"],
    ["#999933", [10, 3, 2, 3], "diamond"],
    ["#009E73", [5, 2, 1, 2], "down"],
    ["#0072B2", [14, 5], "pentagon"],
    ["#882255", [1, 3], "star"],
    ["#D55E00", [6, 2, 2, 2, 2, 2], "plus"],
    ["#CC79A7", [4, 4], "hexagon"],
  ];
  const LOOK = Object.fromEntries(NAMES.map((n, i) => {
    const [color, dash, marker] = LOOKS[i % LOOKS.length];
    return [n, { color, dash, marker }];
  }));

  const LABELS = { lr: "lr", beta: "β", gamma: "γ", eps: "ε", ema: "ema", lookahead: "look-ahead", eps_mode: "ε placement" };
  const SPOKEN = { beta: "beta", gamma: "gamma", eps: "epsilon", lookahead: "look-ahead", eps_mode: "epsilon placement" };
  const HINTS = {
    lr: "learning rate (log slider)",
    beta: "momentum β: weight of the past direction",
    gamma: "γ: weight of the past squared gradients",
    eps: "ε: keeps the division finite (log slider)",
    ema: "m as an average βm + (1−β)g (off: βm + g)",
    lookahead: "where NAG evaluates the gradient",
    eps_mode: "where ε enters the root",
  };
  const FIELD_TITLES = {
    m: "m: the running direction",
    G: "G: the accumulated g²",
    s: "s: the average of squared steps",
  };

  // Adagrad sums g²; RMSProp, AdaDelta, Adam and NAdam keep a decaying average of it
  const fieldTitle = (name, f) =>
    f === "G" && name !== "Adagrad" ? "G: the decaying average of g²" : FIELD_TITLES[f] || f;

  function pageHp(name) {
    const spec = SPEC[name];
    const hp = {};
    for (const key of spec.controls) hp[key] = spec.defaults[key];
    if (name in PAGE_LR && "lr" in hp) hp.lr = PAGE_LR[name];
    return hp;
  }

  function surfaceDefaults(name) {
    return Object.fromEntries(Object.entries(SURFACES[name].parameters).map(([k, p]) => [k, p.default]));
  }

  function defaultState(surface = HOME) {
    return {
      surface,
      params: surfaceDefaults(surface),
      start: null, // null: the surface's own start
      steps: DEFAULT_STEPS,
      on: new Set(NAMES),
      hp: Object.fromEntries(NAMES.map((n) => [n, pageHp(n)])),
      show: NAMES.includes("Momentum") ? "Momentum" : NAMES[0],
      step: null, // null: the last step
    };
  }

  // ------------------------------------------------------------------------ formatting
  const SUP = { "-": "⁻", 0: "⁰", 1: "¹", 2: "²", 3: "³", 4: "⁴", 5: "⁵", 6: "⁶", 7: "⁷", 8: "⁸", 9: "⁹" };
  const power = (e) => "10" + String(e).replace(/./g, (c) => SUP[c] || c);

  // A number for people: three significant digits, exponent form outside 1e-3 … 1e5.
  function fmt(v, digits = 3, ascii = false) {
    if (v === null || v === undefined || Number.isNaN(v)) return "—";
    if (!Number.isFinite(v)) return v > 0 ? "∞" : "−∞";
    if (v === 0) return "0";
    const a = Math.abs(v);
    let s;
    if (a >= 1e-3 && a < 1e5) s = String(Number(v.toPrecision(digits)));
    else {
      const [m, e] = v.toExponential(digits - 1).split("e");
      s = `${Number(m)}e${Number(e)}`;
    }
    return ascii ? s : s.replace(/-/g, "−");
  }
  // a setting's value in a message: numbers through fmt, flags and choices as themselves
  const fmtValue = (v) => (typeof v === "number" ? fmt(v) : String(v));
  const roundSig = (v, digits) => (v === 0 || !Number.isFinite(v) ? v : Number(v.toPrecision(digits)));
  const parseNumber = (text) => (String(text).trim() === "" ? NaN : Number(String(text).trim().replace(/−/g, "-")));

  // ------------------------------------------------------------------------- markers
  function polygon(n, r, rotation) {
    return Array.from({ length: n }, (_, i) => {
      const a = rotation + (2 * Math.PI * i) / n;
      return [r * Math.cos(a), r * Math.sin(a)];
    });
  }
  // Unit outlines (radius 1; y down, as on a canvas); null draws a circle.
  const SHAPES = {
    circle: null,
    square: polygon(4, 1.25, Math.PI / 4),
    triangle: polygon(3, 1.35, -Math.PI / 2),
    down: polygon(3, 1.35, Math.PI / 2),
    diamond: polygon(4, 1.35, 0),
    pentagon: polygon(5, 1.2, -Math.PI / 2),
    hexagon: polygon(6, 1.15, 0),
    star: Array.from({ length: 10 }, (_, i) => {
      const a = -Math.PI / 2 + (Math.PI * i) / 5, r = i % 2 ? 0.62 : 1.5;
      return [r * Math.cos(a), r * Math.sin(a)];
    }),
    plus: [[-0.4, -1.3], [0.4, -1.3], [0.4, -0.4], [1.3, -0.4], [1.3, 0.4], [0.4, 0.4], [0.4, 1.3], [-0.4, 1.3], [-0.4, 0.4], [-1.3, 0.4], [-1.3, -0.4], [-0.4, -0.4]],
  };

  function addMarker(ctx, kind, x, y, r) {
    const shape = SHAPES[kind];
    if (!shape) {
      ctx.moveTo(x + r, y);
      ctx.arc(x, y, r, 0, 2 * Math.PI);
      return;
    }
    ctx.moveTo(x + shape[0][0] * r, y + shape[0][1] * r);
    for (let i = 1; i < shape.length; i++) ctx.lineTo(x + shape[i][0] * r, y + shape[i][1] * r);
    ctx.closePath();
  }

  // An inline SVG swatch: the optimizer's dash pattern with its marker on it.
  function swatch(name) {
    const { color, dash, marker } = LOOK[name];
    const shape = SHAPES[marker];
    const r = 4;
    const mark = shape
      ? `<polygon points="${shape.map(([x, y]) => `${(17 + x * r).toFixed(2)},${(7 + y * r).toFixed(2)}`).join(" ")}"/>`
      : `<circle cx="17" cy="7" r="${r}"/>`;
    return `<svg class="swatch" width="34" height="14" viewBox="0 0 34 14" aria-hidden="true" focusable="false">` +
      `<line x1="1" y1="7" x2="33" y2="7" stroke="${color}" stroke-width="2" stroke-dasharray="${dash.join(" ")}"/>` +
      `<g fill="${color}" stroke="#fff" stroke-width="1">${mark}</g></svg>`;
  }

  // ------------------------------------------------------------------- slider scales
  // A range input holds an integer position 0…N; a scale maps it to a value and back.
  const N = 200;
  function scaleFor(kind, lo, hi, { zero = false, integer = false } = {}) {
    if (kind === "log") {
      const a = Math.log10(lo), b = Math.log10(hi), off = zero ? 1 : 0, span = N - off;
      return {
        to: (v) => (zero && v <= 0 ? 0 : off + Math.round(((Math.log10(Math.max(v, lo)) - a) / (b - a)) * span)),
        from: (p) => {
          if (zero && p === 0) return 0;
          const v = 10 ** (a + ((p - off) / span) * (b - a));
          return integer ? Math.round(v) : roundSig(v, 3);
        },
      };
    }
    if (kind === "one-minus-log") {
      // β and γ live near 1 (0.9, 0.99, 0.999): the slider moves 1 − β over 1 … 1e-4.
      return {
        to: (v) => Math.round((-Math.log10(Math.max(1 - v, 1e-4)) / 4) * N),
        from: (p) => Number((1 - roundSig(10 ** ((-4 * p) / N), 2)).toFixed(6)),
      };
    }
    const steps = integer ? Math.min(N, hi - lo) : N;
    return {
      steps,
      to: (v) => Math.round(((v - lo) / (hi - lo)) * steps),
      from: (p) => {
        const v = lo + (p / steps) * (hi - lo);
        return integer ? Math.round(v) : roundSig(v, 3);
      },
    };
  }

  function hpScale(name, key) {
    const check = SPEC[name].checks[key];
    if (key === "lr") return scaleFor("log", 1e-4, 10);
    if (key === "eps") return scaleFor("log", 1e-10, 1, { zero: check.low === 0 });
    if (check.high === 1) return scaleFor("one-minus-log");
    return scaleFor("log", 1e-4, 10);
  }

  function surfaceScale(p) {
    const log = p.scale === "log" || (p.min > 0 && p.max / p.min >= 100);
    return scaleFor(log ? "log" : "linear", p.min, p.max, { integer: !!p.integer });
  }

  // ------------------------------------------------------------------------ the state
  let state = defaultState();
  let surface = null; // lab.surface(...) for state.surface and state.params
  let runs = {}; // name → lab.run(...) result, or {error}

  const surfaceSpec = () => Object.assign({ name: state.surface }, state.params);
  const startOf = () => state.start || surface.start;
  const shownStep = () => (state.step === null ? state.steps : Math.min(state.step, state.steps));

  // The URL hash: every field of the view, as `key=value` pairs joined by `&`.
  function encode(s) {
    const parts = [["surface", s.surface]];
    for (const [k, v] of Object.entries(s.params)) parts.push([k, v]);
    const start = s.start || (surface && surface.name === s.surface ? surface.start : null);
    if (start) parts.push(["start", `${start[0]},${start[1]}`]);
    parts.push(["steps", s.steps]);
    parts.push(["on", NAMES.filter((n) => s.on.has(n)).join(",") || "none"]);
    for (const n of NAMES) for (const [k, v] of Object.entries(s.hp[n])) parts.push([`${n}.${k}`, v]);
    parts.push(["show", s.show]);
    if (s.step !== null) parts.push(["step", s.step]);
    return "#" + parts.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v)).replace(/%2C/g, ",")}`).join("&");
  }

  function parseValue(check, text) {
    if (check.kind === "flag") return text === "true" || text === "1" ? true : text === "false" || text === "0" ? false : text;
    if (check.kind === "choice") return text;
    return parseNumber(text);
  }

  // The hash as a state, and a short message for every field that had to fall back.
  function decode(hash) {
    const s = defaultState();
    const problems = [];
    const fields = new Map();
    for (const part of hash.replace(/^#/, "").split("&")) {
      if (!part) continue;
      const i = part.indexOf("=");
      try {
        fields.set(decodeURIComponent(i < 0 ? part : part.slice(0, i)), decodeURIComponent(i < 0 ? "" : part.slice(i + 1)));
      } catch (e) {
        problems.push(`could not read “${part}” in the address; it is ignored`);
      }
    }
    const take = (key) => {
      const value = fields.get(key);
      fields.delete(key);
      return value;
    };
    if (fields.has("surface")) {
      const name = take("surface");
      if (name in SURFACES) Object.assign(s, { surface: name, params: surfaceDefaults(name) });
      else problems.push(`unknown surface “${name}”; showing the ${SURFACES[HOME].label || HOME}`);
    }
    for (const key of Object.keys(SURFACES[s.surface].parameters)) {
      if (!fields.has(key)) continue;
      const value = parseNumber(take(key));
      try {
        lab.surface(Object.assign({ name: s.surface }, s.params, { [key]: value }));
        s.params[key] = value;
      } catch (e) {
        problems.push(`${e.message}; using ${key} = ${fmt(s.params[key])}`);
      }
    }
    if (fields.has("start")) {
      const text = take("start");
      const xy = text.split(",").map(parseNumber);
      if (xy.length === 2 && xy.every(Number.isFinite)) s.start = xy;
      else problems.push(`invalid start “${text}”; valid: two finite numbers x,y; using the surface's start`);
    }
    if (fields.has("steps")) {
      const text = take("steps"), n = parseNumber(text);
      if (Number.isInteger(n) && n >= 1 && n <= MAX_STEPS) s.steps = n;
      else problems.push(`invalid steps=${text}; valid: an integer from 1 to ${MAX_STEPS}; using ${DEFAULT_STEPS}`);
    }
    if (fields.has("on")) {
      // "none" (all switched off) is a valid view; a list with no known name is not
      const text = take("on");
      const on = new Set();
      const names = text.split(",").filter((n) => n);
      for (const name of names.filter((n) => n !== "none")) {
        if (name in SPEC) on.add(name);
        else problems.push(`unknown optimizer “${name}”; valid: ${NAMES.join(", ")}`);
      }
      if (on.size || (names.length && names.every((n) => n === "none"))) s.on = on;
      else problems.push(`invalid on=${text}; valid: optimizer names separated by commas, or none; showing all ${NAMES.length}`);
    }
    for (const key of [...fields.keys()]) {
      const dot = key.indexOf(".");
      if (dot < 0) continue;
      const name = key.slice(0, dot), hpKey = key.slice(dot + 1), text = take(key);
      if (!(name in SPEC)) {
        problems.push(`unknown optimizer “${name}” in “${key}”; it is ignored`);
        continue;
      }
      if (!SPEC[name].controls.includes(hpKey)) {
        problems.push(`${name} has no setting “${hpKey}” on this page; it is ignored`);
        continue;
      }
      const value = parseValue(SPEC[name].checks[hpKey], text);
      try {
        lab.hyperparameters(name, { [hpKey]: value });
        s.hp[name][hpKey] = value;
      } catch (e) {
        problems.push(`${e.message}; using ${hpKey} = ${fmtValue(s.hp[name][hpKey])}`);
      }
    }
    if (fields.has("show")) {
      const name = take("show");
      if (name in SPEC) s.show = name;
      else problems.push(`unknown optimizer “${name}” for the internals; showing ${s.show}`);
    }
    if (fields.has("step")) {
      const text = take("step"), k = parseNumber(text);
      if (Number.isInteger(k) && k >= 0 && k <= s.steps) s.step = k === s.steps ? null : k;
      else problems.push(`invalid step=${text}; valid: an integer from 0 to ${s.steps}; showing the last step`);
    }
    for (const key of fields.keys()) problems.push(`unknown field “${key}” in the address; it is ignored`);
    return { state: s, problems };
  }

  // ------------------------------------------------------------------------ messages
  function notify(messages) {
    const list = $("notice-list");
    if (!messages.length) return;
    for (const m of messages) {
      const li = document.createElement("li");
      li.textContent = m;
      list.appendChild(li);
    }
    $("notice").hidden = false;
  }
  function clearNotice() {
    $("notice-list").textContent = "";
    $("notice").hidden = true;
  }
  $("notice-close").addEventListener("click", clearNotice);

  // ------------------------------------------------------------------------ history
  // Each control's gesture is one history entry: a drag or a run of arrow keys on one
  // control replaces its own entry; another control, or a pause, pushes a new one. Writes
  // are throttled (Chrome warns about more than a few hundred history calls in 10 s).
  let appliedHash = "";
  let lastEntry = { key: null, time: -Infinity };
  let pendingKey = null, historyTimer = 0;

  function record(key) {
    if (pendingKey !== null && pendingKey !== key) writeHistory();
    pendingKey = key;
    if (!historyTimer) historyTimer = setTimeout(writeHistory, 250);
  }
  function writeHistory() {
    clearTimeout(historyTimer);
    historyTimer = 0;
    if (pendingKey === null) return;
    const key = pendingKey;
    pendingKey = null;
    const hash = encode(state);
    if (hash === location.hash) return;
    const now = performance.now();
    if (key === lastEntry.key && now - lastEntry.time < 1500) history.replaceState(null, "", hash);
    else history.pushState(null, "", hash);
    lastEntry = { key, time: now };
    appliedHash = hash;
  }

  function loadHash() {
    stopPlaying();
    const { state: s, problems } = decode(location.hash);
    clearNotice();
    if (problems.length) notify(problems.map((p) => `Address: ${p}.`.replace(/\.\.$/, ".")));
    state = s;
    rebuildSurfaceControls();
    syncControls();
    invalidate(SURFACE | RUN);
    frame(); // draw now, so the page is never blank while the first frame waits
    const hash = encode(state);
    if (hash !== location.hash) history.replaceState(null, "", hash); // the address shows what is drawn
    appliedHash = hash;
    lastEntry = { key: null, time: -Infinity };
  }
  window.addEventListener("popstate", () => location.hash !== appliedHash && loadHash());
  window.addEventListener("hashchange", () => location.hash !== appliedHash && loadHash());

  // ------------------------------------------------------------------------ controls
  function numericControl({ id, label, spoken, hint, scale, get, set, check }) {
    const row = document.createElement("div");
    row.className = "row ctl";
    row.innerHTML = `<label for="${id}" title="${hint || ""}">${label}</label>` +
      `<input id="${id}" type="range" min="0" max="${scale.steps || N}" step="1">` +
      `<input id="${id}-value" class="value" type="text" inputmode="decimal" autocomplete="off" spellcheck="false">`;
    const range = row.children[1], text = row.children[2];
    range.setAttribute("aria-label", spoken);
    text.setAttribute("aria-label", `${spoken}, exact value`);
    const show = (v) => {
      range.value = scale.to(v);
      range.setAttribute("aria-valuetext", fmt(v));
      text.value = fmt(v, 5, true);
      text.removeAttribute("aria-invalid");
    };
    range.addEventListener("input", () => {
      const v = scale.from(Number(range.value));
      range.setAttribute("aria-valuetext", fmt(v));
      text.value = fmt(v, 5, true);
      text.removeAttribute("aria-invalid");
      set(v);
    });
    text.addEventListener("change", () => {
      const v = parseNumber(text.value);
      const problem = check(v);
      if (problem) {
        text.setAttribute("aria-invalid", "true");
        notify([problem]);
        text.value = fmt(get(), 5, true);
        return;
      }
      text.removeAttribute("aria-invalid");
      set(v);
      show(v);
    });
    return { row, sync: () => show(get()) };
  }

  const syncers = [];

  function buildSurfaceSelect() {
    const select = $("surface");
    for (const name of SURFACE_NAMES) {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = SURFACES[name].label || name;
      select.appendChild(option);
    }
    select.addEventListener("change", () => {
      state.surface = select.value;
      state.params = surfaceDefaults(select.value);
      state.start = null;
      state.step = null;
      rebuildSurfaceControls();
      syncControls();
      invalidate(SURFACE | RUN);
      record("surface");
    });
  }

  let surfaceSyncers = [];
  function rebuildSurfaceControls() {
    const box = $("surface-params");
    box.textContent = "";
    surfaceSyncers = [];
    for (const [key, p] of Object.entries(SURFACES[state.surface].parameters)) {
      const ctl = numericControl({
        id: `param-${key}`,
        label: p.label || (key === "kappa" ? "κ" : key.replace(/_/g, " ")),
        spoken: `${SURFACES[state.surface].label || state.surface} ${key.replace(/_/g, " ")}`,
        hint: p.description || "",
        scale: surfaceScale(p),
        get: () => state.params[key],
        set: (v) => {
          state.params[key] = v;
          draftContours();
          invalidate(SURFACE | RUN);
          record(`param-${key}`);
        },
        check: (v) => {
          try {
            lab.surface(Object.assign(surfaceSpec(), { [key]: v }));
            return null;
          } catch (e) {
            return e.message;
          }
        },
      });
      box.appendChild(ctl.row);
      surfaceSyncers.push(ctl.sync);
    }
  }

  function buildOptimizerCards() {
    const box = $("optimizers");
    for (const name of NAMES) {
      const spec = SPEC[name];
      const card = document.createElement("div");
      card.className = "opt";
      card.id = `opt-${name}`;
      card.innerHTML = `<div class="opt-head"><input type="checkbox" id="on-${name}">` +
        `<label for="on-${name}" class="opt-name" title="${spec.variant}">${swatch(name)}<span>${name}</span></label>` +
        `<span class="family">${spec.family}</span></div><div class="opt-body"></div>`;
      const toggle = card.querySelector("input");
      toggle.addEventListener("change", () => {
        if (toggle.checked) state.on.add(name);
        else state.on.delete(name);
        card.classList.toggle("off", !toggle.checked);
        invalidate(DRAW);
        record(`on-${name}`);
      });
      syncers.push(() => {
        toggle.checked = state.on.has(name);
        card.classList.toggle("off", !toggle.checked);
      });
      const body = card.querySelector(".opt-body");
      for (const key of spec.controls) body.appendChild(hpControl(name, key));
      box.appendChild(card);
    }
  }

  function hpControl(name, key) {
    const check = SPEC[name].checks[key];
    const id = `${name}-${key}`;
    const spoken = `${name} ${SPOKEN[key] || key}`;
    const commit = (value) => {
      state.hp[name][key] = value;
      invalidate(RUN);
      record(id);
    };
    if (check.kind === "interval") {
      const ctl = numericControl({
        id, label: LABELS[key] || key, spoken, hint: HINTS[key], scale: hpScale(name, key),
        get: () => state.hp[name][key],
        set: commit,
        check: (v) => {
          try {
            lab.hyperparameters(name, { [key]: v });
            return null;
          } catch (e) {
            return e.message;
          }
        },
      });
      syncers.push(ctl.sync);
      return ctl.row;
    }
    const row = document.createElement("div");
    row.className = "row ctl";
    if (check.kind === "flag") {
      row.innerHTML = `<span class="flag"><input type="checkbox" id="${id}"><label for="${id}" title="${HINTS[key] || ""}">${LABELS[key] || key}</label></span>`;
      const box = row.querySelector("input");
      box.setAttribute("aria-label", `${spoken}: ${HINTS[key] || key}`);
      box.addEventListener("change", () => commit(box.checked));
      syncers.push(() => (box.checked = !!state.hp[name][key]));
    } else {
      row.innerHTML = `<label for="${id}" title="${HINTS[key] || ""}">${LABELS[key] || key}</label><select id="${id}"></select>`;
      const select = row.querySelector("select");
      select.setAttribute("aria-label", spoken);
      for (const v of check.values) {
        const option = document.createElement("option");
        option.value = option.textContent = v;
        select.appendChild(option);
      }
      select.addEventListener("change", () => commit(select.value));
      syncers.push(() => (select.value = state.hp[name][key]));
    }
    return row;
  }

  function buildLegend() {
    const list = $("legend");
    for (const name of NAMES) {
      const li = document.createElement("li");
      li.id = `legend-${name}`;
      li.innerHTML = `${swatch(name)}<span class="legend-name">${name}</span><span class="legend-status"></span>`;
      list.appendChild(li);
    }
    const show = $("show");
    for (const name of NAMES) {
      const option = document.createElement("option");
      option.value = option.textContent = name;
      show.appendChild(option);
    }
    show.addEventListener("change", () => {
      state.show = show.value;
      invalidate(DRAW);
      record("show");
    });
  }

  function syncControls() {
    $("surface").value = state.surface;
    surfaceSyncers.forEach((f) => f());
    syncers.forEach((f) => f());
    $("show").value = state.show;
    $("steps").value = state.steps;
    syncStart();
    syncScrubber();
  }

  function syncStart() {
    if (!surface) return;
    const [x, y] = startOf();
    for (const [input, v] of [[$("start-x"), x], [$("start-y"), y]]) {
      if (document.activeElement !== input) input.value = fmt(v, 4, true);
    }
  }

  // ------------------------------------------------------------------------ geometry
  const plot = $("plot");
  const contourCanvas = $("contours"), pathCanvas = $("paths"), handle = $("handle");
  const geo = { W: 0, H: 0, dpr: 1, x0: -1, x1: 1, y0: -1, y1: 1 };

  // The window: the surface's bounds at one scale on both axes when that wastes little
  // room (so the valley looks as narrow as it is), stretched to fill otherwise.
  function fitView() {
    const [[a, b], [c, d]] = surface.bounds;
    let x0 = a, x1 = b, y0 = c, y1 = d;
    const sx = geo.W / (b - a), sy = geo.H / (d - c);
    if (Math.max(sx, sy) / Math.min(sx, sy) <= 2.5) {
      const s = Math.min(sx, sy), cx = (a + b) / 2, cy = (c + d) / 2;
      x0 = cx - geo.W / s / 2;
      x1 = cx + geo.W / s / 2;
      y0 = cy - geo.H / s / 2;
      y1 = cy + geo.H / s / 2;
    }
    Object.assign(geo, { x0, x1, y0, y1 });
  }
  const clampPx = (v) => (v < -1e4 ? -1e4 : v > 1e4 ? 1e4 : v);
  const toX = (x) => clampPx(((x - geo.x0) / (geo.x1 - geo.x0)) * geo.W);
  const toY = (y) => clampPx(geo.H - ((y - geo.y0) / (geo.y1 - geo.y0)) * geo.H);
  const fromX = (px) => geo.x0 + (px / geo.W) * (geo.x1 - geo.x0);
  const fromY = (py) => geo.y0 + ((geo.H - py) / geo.H) * (geo.y1 - geo.y0);

  function sizeCanvas(canvas, W, H) {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(W * dpr), h = Math.round(H * dpr);
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
      canvas.style.width = `${W}px`;
      canvas.style.height = `${H}px`;
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return ctx;
  }

  // Widths come from a ResizeObserver, not from clientWidth in the frame: reading layout
  // after the last frame's text updates would force a synchronous layout every frame.
  const widths = new WeakMap();
  const widthOf = (node) => {
    if (!widths.has(node)) widths.set(node, Math.floor(node.clientWidth));
    return widths.get(node);
  };
  const resizer = new ResizeObserver((entries) => {
    let changed = false;
    for (const entry of entries) {
      const w = Math.floor(entry.contentRect.width);
      if (widths.get(entry.target) !== w) changed = true;
      widths.set(entry.target, w);
    }
    if (changed) invalidate(CONTOUR);
  });

  function measure() {
    const W = widthOf(plot);
    if (!W || W === geo.W) return false;
    const H = Math.round(W * (W < 600 ? 0.62 : 0.56));
    Object.assign(geo, { W, H, dpr: window.devicePixelRatio || 1 });
    plot.style.height = `${H}px`;
    return true;
  }

  // ------------------------------------------------------------------------ contours
  // f − f_min on a coarse grid, shaded per pixel by bilinear interpolation into bands of a
  // third of a decade, with a darker line where the band changes: a filled contour plot.
  // Recomputed only when the surface or the window changes.
  const BAND = Math.log(10) / 3;
  const RAMP_UP = [[253, 252, 247], [234, 239, 244], [203, 214, 227]];
  const RAMP_DOWN = [[253, 252, 247], [248, 234, 219], [232, 200, 170]];

  function ramp(stops, t) {
    const u = Math.min(Math.max(t, 0), 1) * (stops.length - 1), i = Math.min(Math.floor(u), stops.length - 2), w = u - i;
    return stops[i].map((c, k) => Math.round(c + (stops[i + 1][k] - c) * w));
  }

  // rough: while a surface slider is dragged, a grid twice as coarse drawn at half the
  // resolution and scaled up (a quarter of the work); the full picture follows once the
  // input settles (CONTOUR_SETTLE_MS after the last one).
  const CONTOUR_SETTLE_MS = 180;
  let roughContours = false, settleTimer = 0;
  function draftContours() {
    roughContours = true;
    clearTimeout(settleTimer);
    settleTimer = setTimeout(() => invalidate(CONTOUR), CONTOUR_SETTLE_MS);
  }
  let roughCanvas = null;
  function drawContours(rough = false) {
    const { W, H } = geo;
    const ctx = sizeCanvas(contourCanvas, W, H);
    const dpr = rough ? 0.5 : geo.dpr;
    const cell = rough ? 6 : 3, gw = Math.ceil(W / cell) + 2, gh = Math.ceil(H / cell) + 2;
    const gap = new Float64Array(gw * gh);
    let big = 0;
    for (let j = 0; j < gh; j++) {
      const y = fromY(j * cell);
      for (let i = 0; i < gw; i++) {
        const v = surface.f([fromX(i * cell), y]) - surface.fMin;
        gap[j * gw + i] = v;
        if (Number.isFinite(v) && Math.abs(v) > big) big = Math.abs(v);
      }
    }
    // asinh(gap/δ) is logarithmic far from f_min and linear near it (also below it: the
    // saddle), so four decades of level sets show without a log of zero.
    const delta = (big || 1) * 1e-4;
    let lo = Infinity, hi = -Infinity;
    for (let k = 0; k < gap.length; k++) {
      const v = Number.isFinite(gap[k]) ? Math.asinh(gap[k] / delta) : Math.asinh(big / delta);
      gap[k] = v;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    // one packed RGBA word per band, and a darker one for its edge (little-endian: ABGR)
    const bandLo = Math.floor(lo / BAND), bandHi = Math.ceil(hi / BAND);
    const fill = new Uint32Array(bandHi - bandLo + 1), line = new Uint32Array(bandHi - bandLo + 1);
    const pack = (c, f) => (255 << 24) | (Math.round(c[2] * f) << 16) | (Math.round(c[1] * f) << 8) | Math.round(c[0] * f);
    for (let b = bandLo; b <= bandHi; b++) {
      const c = b >= 0 ? ramp(RAMP_UP, b / Math.max(bandHi, 1)) : ramp(RAMP_DOWN, -b / Math.max(-bandLo, 1));
      fill[b - bandLo] = pack(c, 1);
      line[b - bandLo] = pack(c, 0.82);
    }
    const pw = Math.round(W * dpr), ph = Math.round(H * dpr);
    const image = new ImageData(pw, ph);
    const out = new Uint32Array(image.data.buffer);
    let bands = new Int32Array(pw), above = new Int32Array(pw);
    const scale = 1 / (dpr * cell);
    for (let y = 0; y < ph; y++) {
      const gy = y * scale, j = Math.min(gy | 0, gh - 2), wy = gy - j, row = j * gw;
      for (let x = 0; x < pw; x++) {
        const gx = x * scale, i = Math.min(gx | 0, gw - 2), wx = gx - i, k = row + i;
        const v = (gap[k] * (1 - wx) + gap[k + 1] * wx) * (1 - wy) + (gap[k + gw] * (1 - wx) + gap[k + gw + 1] * wx) * wy;
        const band = Math.min(Math.max(Math.floor(v / BAND), bandLo), bandHi) - bandLo;
        bands[x] = band;
        const edge = (x > 0 && bands[x - 1] !== band) || (y > 0 && above[x] !== band);
        out[y * pw + x] = edge ? line[band] : fill[band];
      }
      [above, bands] = [bands, above];
    }
    if (rough) {
      roughCanvas = roughCanvas || document.createElement("canvas");
      roughCanvas.width = pw;
      roughCanvas.height = ph;
      roughCanvas.getContext("2d").putImageData(image, 0, 0);
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(roughCanvas, 0, 0, W, H);
    } else ctx.putImageData(image, 0, 0);
    drawAxes(ctx);
  }

  function niceStep(span, count) {
    const raw = span / count, mag = 10 ** Math.floor(Math.log10(raw)), r = raw / mag;
    return (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * mag;
  }

  function drawAxes(ctx) {
    const { W, H } = geo;
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "rgba(30, 40, 55, 0.75)";
    ctx.strokeStyle = "rgba(30, 40, 55, 0.35)";
    ctx.lineWidth = 1;
    const sx = niceStep(geo.x1 - geo.x0, W / 90), sy = niceStep(geo.y1 - geo.y0, H / 70);
    ctx.textAlign = "center";
    ctx.textBaseline = "bottom";
    for (let v = Math.ceil(geo.x0 / sx) * sx; v <= geo.x1; v += sx) {
      const x = Math.round(toX(v)) + 0.5;
      if (x < 14 || x > W - 14) continue;
      ctx.beginPath();
      ctx.moveTo(x, H);
      ctx.lineTo(x, H - 5);
      ctx.stroke();
      ctx.fillText(fmt(roundSig(v, 6)), x, H - 6);
    }
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    for (let v = Math.ceil(geo.y0 / sy) * sy; v <= geo.y1; v += sy) {
      const y = Math.round(toY(v)) + 0.5;
      if (y < 24 || y > H - 22) continue;
      ctx.beginPath();
      ctx.moveTo(0, y);
      ctx.lineTo(5, y);
      ctx.stroke();
      ctx.fillText(fmt(roundSig(v, 6)), 7, y);
    }
    ctx.textAlign = "right";
    ctx.textBaseline = "bottom";
    ctx.fillText("θ[0] →", W - 6, H - 20);
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    ctx.fillText("θ[1] ↑", 7, 6);
    // the minimum (f_min)
    const mx = toX(surface.minimum[0]), my = toY(surface.minimum[1]);
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 4;
    cross(ctx, mx, my, 6);
    ctx.strokeStyle = "#1d2330";
    ctx.lineWidth = 1.5;
    cross(ctx, mx, my, 6);
  }

  function cross(ctx, x, y, r) {
    ctx.beginPath();
    ctx.moveTo(x - r, y - r);
    ctx.lineTo(x + r, y + r);
    ctx.moveTo(x + r, y - r);
    ctx.lineTo(x - r, y + r);
    ctx.stroke();
  }

  // ------------------------------------------------------------------------ the runs
  // Every optimizer's run for the current view; a run whose inputs did not change is kept
  // (an lr slider re-runs one optimizer, the start point or the surface all nine).
  const runKeys = {};
  let runSerial = 0;
  function runAll() {
    const start = startOf(), spec = surfaceSpec();
    for (const name of NAMES) {
      const key = JSON.stringify([state.hp[name], spec, start, state.steps]);
      if (runKeys[name] === key) continue;
      try {
        runs[name] = lab.run({ optimizer: name, surface: spec, hyperparameters: state.hp[name], start, steps: state.steps });
      } catch (e) {
        runs[name] = { error: e.message };
      }
      runs[name].serial = ++runSerial;
      runKeys[name] = key;
    }
  }

  // The last step with a finite θ and loss (a diverged run is drawn up to it).
  const lastFinite = (r) => (r.diverged === null ? r.theta.length - 1 : r.diverged - 1);

  // ------------------------------------------------------------------------ drawing
  let drawn = [];

  // Lines are 1 px wide on purpose: Chromium's software canvas draws those as hairlines,
  // several times faster than any wider stroke (measured: 7 ms → 1.3 ms for the loss chart).
  function drawPaths() {
    const { W, H } = geo;
    const ctx = sizeCanvas(pathCanvas, W, H);
    ctx.clearRect(0, 0, W, H);
    const k = shownStep();
    drawn = [];
    const labels = [];
    ctx.lineJoin = "bevel";
    ctx.lineWidth = 1;
    for (const name of NAMES) {
      const r = runs[name];
      if (!state.on.has(name) || !r || r.error) continue;
      drawn.push(name);
      const { color, dash, marker } = LOOK[name];
      const th = r.theta, last = lastFinite(r), upto = Math.min(k, last);
      if (last < 0) {
        // not finite at the start: nothing to draw but the label, at the (clamped) start
        const [sx, sy] = startOf();
        const x = Math.min(Math.max(toX(sx), 0), geo.W), y = Math.min(Math.max(toY(sy), 0), geo.H);
        labels.push([`${name} diverged at step 0`, x, y, color]);
        continue;
      }
      const px = new Float64Array(last + 1), py = new Float64Array(last + 1);
      for (let i = 0; i <= last; i++) {
        px[i] = toX(th[i][0]);
        py[i] = toY(th[i][1]);
      }
      const X = (i) => px[i], Y = (i) => py[i];
      ctx.strokeStyle = ctx.fillStyle = color;
      ctx.setLineDash(dash);
      if (upto < last) {
        // the rest of the run, faint, while the scrubber is before its end
        ctx.globalAlpha = 0.25;
        ctx.beginPath();
        trace(ctx, upto, last, X, Y);
        ctx.stroke();
        ctx.globalAlpha = 1;
      }
      ctx.beginPath();
      trace(ctx, 0, upto, X, Y);
      ctx.stroke();
      ctx.setLineDash([]);
      // a dot per step; dots that would cover the previous one are left out (a converged
      // run stacks hundreds on one pixel)
      ctx.beginPath();
      let lx = Infinity, ly = Infinity;
      for (let i = 0; i <= upto; i++) {
        if (Math.abs(px[i] - lx) + Math.abs(py[i] - ly) < 2.5) continue;
        lx = px[i];
        ly = py[i];
        ctx.rect(lx - 1.5, ly - 1.5, 3, 3);
      }
      ctx.fill();
      // the step shown, large, in the optimizer's own marker
      ctx.beginPath();
      addMarker(ctx, marker, px[upto], py[upto], 5.5);
      ctx.fill();
      ctx.strokeStyle = "#fff";
      ctx.stroke();
      if (r.diverged !== null && k >= r.diverged) {
        labels.push([`${name} diverged at step ${r.diverged}`, px[last], py[last], color]);
      }
    }
    // labels last, on top, stacked so that runs diverging to the same edge stay readable
    const taken = [];
    for (const [text, x, y, color] of labels) taken.push(label(ctx, text, x, y, color, taken));
    placeHandle();
  }

  // A polyline through points from…to, leaving out points within a pixel of the last one
  // drawn (the same picture, a fraction of the rasterizing).
  function trace(ctx, from, to, px, py) {
    let lx = px(from), ly = py(from);
    ctx.moveTo(lx, ly);
    for (let i = from + 1; i <= to; i++) {
      const x = px(i), y = py(i);
      if (i < to && Math.abs(x - lx) < 0.75 && Math.abs(y - ly) < 0.75) continue;
      ctx.lineTo(x, y);
      lx = x;
      ly = y;
    }
  }

  // A boxed label near (x, y), inside the plot, moved down past the boxes in `taken`.
  function label(ctx, text, x, y, color, taken) {
    ctx.font = "600 12px system-ui, sans-serif";
    const w = ctx.measureText(text).width + 10;
    const bx = Math.min(Math.max(x + 8, 4), geo.W - w - 4);
    let by = Math.min(Math.max(y - 22, 4), geo.H - 24);
    while (taken.some(([tx, ty, tw]) => bx < tx + tw && tx < bx + w && Math.abs(by - ty) < 20)) by += 20;
    ctx.fillStyle = "rgba(255,255,255,0.92)";
    ctx.fillRect(bx, by, w, 18);
    ctx.strokeStyle = color;
    ctx.lineWidth = 1;
    ctx.strokeRect(bx + 0.5, by + 0.5, w - 1, 17);
    ctx.fillStyle = "#1d2330";
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    ctx.fillText(text, bx + 5, by + 9);
    return [bx, by, w];
  }

  function placeHandle() {
    const [x, y] = startOf();
    handle.style.left = `${Math.min(Math.max(toX(x), 0), geo.W)}px`;
    handle.style.top = `${Math.min(Math.max(toY(y), 0), geo.H)}px`;
    handle.setAttribute("aria-label", `Start point θ₀ = (${fmt(x)}, ${fmt(y)})`);
  }

  // A line chart on a canvas: x is the step, y linear or log; `series` are
  // {values, color, dash}; `cursor` marks the step shown.
  function chart(canvas, { series, steps, log, cursor, floorLine, height }) {
    const W = Math.max(widthOf(canvas.parentElement), 120);
    const ctx = sizeCanvas(canvas, W, height);
    ctx.clearRect(0, 0, W, height);
    const left = 46, right = 14, top = 8, bottom = 20;
    const pw = W - left - right, ph = height - top - bottom;
    let lo = Infinity, hi = -Infinity;
    const finite = [];
    for (const s of series) {
      for (const v of s.values) {
        if (!Number.isFinite(v) || (log && v <= 0)) continue;
        finite.push(v);
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
    if (!log && finite.length > 20) {
      // a few spikes (a step divided by a gradient near 0) must not flatten the rest
      finite.sort((p, q) => p - q);
      const qlo = finite[Math.floor(finite.length * 0.02)], qhi = finite[Math.ceil(finite.length * 0.98) - 1];
      if (hi - lo > 4 * (qhi - qlo) && qhi > qlo) {
        lo = qlo;
        hi = qhi;
      }
    }
    if (!(lo <= hi)) {
      lo = log ? 1e-3 : -1;
      hi = log ? 1 : 1;
    }
    if (log) {
      // a diverging run must not squash the others: cap the axis 4 decades above the start
      const first = Math.max(...series.map((s) => (Number.isFinite(s.values[0]) && s.values[0] > 0 ? s.values[0] : 0)));
      if (first > 0) hi = Math.min(hi, first * 1e4);
      lo = Math.max(lo, hi * 1e-24);
      lo = 10 ** Math.floor(Math.log10(lo));
      hi = 10 ** Math.ceil(Math.log10(hi));
      if (hi <= lo) hi = lo * 10;
    } else if (hi - lo < 1e-12 * Math.max(1, Math.abs(hi))) {
      lo -= 1;
      hi += 1;
    } else {
      const pad = (hi - lo) * 0.06;
      lo -= pad;
      hi += pad;
    }
    const fy = log ? (v) => Math.log10(v) : (v) => v;
    const a = fy(lo), b = fy(hi);
    const X = (k) => left + (k / Math.max(steps, 1)) * pw;
    const Y = (v) => {
      const u = log && !(v > 0) ? a : Number.isFinite(v) ? fy(v) : v > 0 ? b : a;
      return top + ph - ((Math.min(Math.max(u, a - 1), b + 1) - a) / (b - a)) * ph;
    };
    // grid and labels
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "#5b6472";
    ctx.strokeStyle = "#e3e6ea";
    ctx.lineWidth = 1;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    if (log) {
      const decades = Math.round(b - a), every = Math.max(1, Math.ceil(decades / Math.max(2, ph / 26)));
      for (let e = Math.round(a); e <= Math.round(b); e += every) {
        const y = Math.round(Y(10 ** e)) + 0.5;
        ctx.beginPath();
        ctx.moveTo(left, y);
        ctx.lineTo(W - right, y);
        ctx.stroke();
        ctx.fillText(power(e), left - 5, y);
      }
    } else {
      const step = niceStep(hi - lo, Math.max(2, ph / 30));
      for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) {
        const y = Math.round(Y(v)) + 0.5;
        ctx.strokeStyle = Math.abs(v) < step / 1e6 ? "#b9bfc8" : "#e3e6ea";
        ctx.beginPath();
        ctx.moveTo(left, y);
        ctx.lineTo(W - right, y);
        ctx.stroke();
        ctx.fillText(fmt(roundSig(v, 6)), left - 5, y);
      }
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const xs = niceStep(steps, Math.max(2, pw / 70));
    for (let k = 0; k <= steps; k += xs) ctx.fillText(String(k), X(k), top + ph + 4);
    if (floorLine && floorLine > lo && floorLine < hi) {
      const y = Math.round(Y(floorLine)) + 0.5;
      ctx.strokeStyle = "#7d8794";
      ctx.setLineDash([3, 3]);
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(W - right, y);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.textAlign = "right";
      ctx.textBaseline = "bottom";
      ctx.fillText(`tolerance ${power(Math.round(Math.log10(floorLine)))}`, W - right - 2, y - 2);
    }
    // series
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top - 1, pw, ph + 2);
    ctx.clip();
    ctx.lineJoin = "bevel";
    for (const s of series) {
      ctx.beginPath();
      // runs of numbers, each traced; NaN (an effective step where g = 0) breaks the line
      const values = s.values;
      for (let k = 0; k < values.length; k++) {
        if (Number.isNaN(values[k])) continue;
        let end = k;
        while (end + 1 < values.length && !Number.isNaN(values[end + 1])) end++;
        trace(ctx, k, end, X, (i) => Y(values[i]));
        k = end;
      }
      ctx.setLineDash(s.dash);
      ctx.strokeStyle = s.color;
      ctx.lineWidth = 1;
      ctx.stroke();
    }
    ctx.setLineDash([]);
    series.forEach((s, j) => {
      if (!s.marker) return;
      // eight markers a line, staggered so that lines on top of each other still show theirs
      ctx.beginPath();
      for (let m = 0; m < 8; m++) {
        const k = Math.round(((m + (j + 0.5) / series.length) / 8) * steps);
        if (k < s.values.length && Number.isFinite(s.values[k])) addMarker(ctx, s.marker, X(k), Y(s.values[k]), 3.2);
      }
      ctx.fillStyle = s.color;
      ctx.fill();
      ctx.strokeStyle = "#fff";
      ctx.lineWidth = 1;
      ctx.stroke();
    });
    ctx.restore();
    if (cursor !== undefined) {
      const x = Math.round(X(cursor)) + 0.5;
      ctx.strokeStyle = "rgba(29, 35, 48, 0.55)";
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + ph);
      ctx.stroke();
    }
    ctx.strokeStyle = "#b9bfc8";
    ctx.strokeRect(left + 0.5, top + 0.5, pw - 1, ph - 1);
  }

  function gaps(r) {
    const out = new Float64Array(lastFinite(r) + 1);
    for (let k = 0; k < out.length; k++) out[k] = r.loss[k] - r.fMin;
    return out;
  }

  function drawLoss() {
    const series = [];
    for (const name of drawn) {
      // solid lines with the optimizer's marker every so often: a dash pattern on a loss
      // that zig-zags every step costs more to rasterize than all the rest of the frame
      const { color, marker } = LOOK[name];
      series.push({ values: gaps(runs[name]), color, dash: [], marker });
    }
    chart($("loss"), { series, steps: state.steps, log: true, cursor: shownStep(), floorLine: TOL, height: geo.W < 600 ? 190 : 230 });
  }

  // The chosen optimizer's state per coordinate, and its effective step −Δθ/g.
  let internalsKey = "", internalsDrawn = "";
  function drawInternals() {
    const box = $("internals");
    const name = state.show, r = runs[name];
    const drawnKey = `${name}:${r && r.serial}:${shownStep()}:${widthOf(box)}`;
    if (drawnKey === internalsDrawn) return; // nothing it shows has changed
    internalsDrawn = drawnKey;
    if (!r || r.error) {
      box.textContent = r ? r.error : "";
      internalsKey = "";
      return;
    }
    if (lastFinite(r) < 0) {
      // the loss is not finite at the start itself: there is no step to show
      box.textContent = `${name} diverged at step 0: the loss is not finite at the start point, so there are no internals to draw.`;
      internalsKey = "";
      return;
    }
    const fields = Object.keys(r.internals).filter((f) => Array.isArray(r.internals[f][0]));
    const panels = [...fields, "step"];
    const key = name + ":" + panels.join(",");
    if (key !== internalsKey) {
      box.textContent = "";
      for (const f of panels) {
        const fig = document.createElement("div");
        fig.className = "panel-chart";
        const title = f === "step" ? "effective step −Δθ/g" : fieldTitle(name, f);
        fig.innerHTML = `<div class="panel-title"><span>${title}</span> <output></output></div><div class="panel-canvas"><canvas role="img"></canvas></div>`;
        fig.querySelector("canvas").setAttribute("aria-label", `${name}: ${title}, by step`);
        box.appendChild(fig);
        resizer.observe(fig.querySelector(".panel-canvas"));
      }
      internalsKey = key;
    }
    const { color } = LOOK[name];
    const last = lastFinite(r), k = Math.min(shownStep(), last);
    // row k: the state after step k; for the effective step, step k's (none before step 1)
    const eff = [[NaN, NaN], ...effectiveStep(r, last)];
    [...box.children].forEach((fig, i) => {
      const f = panels[i];
      const rows = f === "step" ? eff : r.internals[f].slice(0, last + 1);
      const xs = new Float64Array(rows.length), ys = new Float64Array(rows.length);
      rows.forEach((v, j) => {
        xs[j] = v[0];
        ys[j] = v[1];
      });
      // log scale when the values are positive and span a range: G's and the effective
      // step's fall over orders of magnitude is the seed's Adagrad story
      const positive = [...xs.subarray(1), ...ys.subarray(1)].filter(Number.isFinite);
      const min = Math.min(...positive), max = Math.max(...positive);
      const log = positive.length > 0 && min > 0 && max / min > 30;
      chart(fig.querySelector("canvas"), {
        series: [{ values: xs, color, dash: [] }, { values: ys, color, dash: [4, 3] }],
        steps: state.steps, log, cursor: k, height: 120,
      });
      const at = rows[Math.min(k, rows.length - 1)];
      setText(fig.querySelector("output"), `step ${k}: (${fmt(at[0])}, ${fmt(at[1])})`);
    });
  }

  function effectiveStep(r, last) {
    const out = [];
    for (let k = 0; k < Math.min(last, r.grads.length); k++) {
      const g = r.grads[k], a = r.theta[k], b = r.theta[k + 1];
      out.push([0, 1].map((i) => (g[i] === 0 ? NaN : -(b[i] - a[i]) / g[i])));
    }
    return out;
  }

  // ------------------------------------------------------------------------ legend, captions
  const setText = (node, text) => node.textContent !== text && (node.textContent = text);

  function updateLegend() {
    for (const name of NAMES) {
      const li = $(`legend-${name}`), r = runs[name];
      li.classList.toggle("off", !state.on.has(name));
      let status = "";
      if (!state.on.has(name)) status = "off";
      else if (!r || r.error) status = r ? r.error : "";
      else if (r.diverged !== null) status = `diverged at step ${r.diverged}`;
      else if (escaped(r)) status = "escaped < fₘᵢₙ";
      else {
        const k = stepsToTol(r);
        status = k === null ? `gap ${fmt(r.loss[r.loss.length - 1] - r.fMin, 2)}` : `within ${power(-6)} at ${k}`;
      }
      setText(li.querySelector(".legend-status"), status);
      li.title = status === "escaped < fₘᵢₙ" ? "escaped below fₘᵢₙ, the saddle point's value" : status;
    }
  }

  // Metrics come from analysis.js (ravine.lab.metrics' definitions), once per run: the
  // legend and the captions ask for the same numbers every frame. Without analysis.js
  // they read "—".
  const measured = new WeakMap();
  function metric(r, name, compute) {
    if (!measured.has(r)) measured.set(r, {});
    const cache = measured.get(r);
    if (!(name in cache)) {
      const A = analysis();
      try {
        cache[name] = A ? compute(A) : undefined;
      } catch (e) {
        cache[name] = undefined;
      }
    }
    return cache[name];
  }
  const stepsToTol = (r) => metric(r, "tol", (A) => A.stepsToTolerance(r, TOL, { stay: true })) ?? null;
  const zigzag = (r) => metric(r, "zigzag", (A) => (surface.steep ? A.zigzagIndex(r, surface.steep) : NaN)) ?? NaN;
  const stalledAt = (r) => metric(r, "stall", (A) => A.stall(r, TOL));

  // On the saddle f_min is the saddle's value: a run that leaves it ends below it.
  const escaped = (r) => r.loss[r.loss.length - 1] - r.fMin < -TOL;
  // Himmelblau has four minima (the cross marks (3, 2)): distances are to the nearest
  const MINIMA = {
    himmelblau: [[3, 2], [-2.805118, 3.131312], [-3.77931, -3.283186], [3.584428, -1.848126]],
  };
  const minima = () => MINIMA[state.surface] || [surface.minimum];
  const distance = (r, k) => Math.min(...minima().map((m) => Math.hypot(r.theta[k][0] - m[0], r.theta[k][1] - m[1])));
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  // "k× smaller", only where it says something (finite and clearly above 1)
  const times = (v) => (Number.isFinite(v) && v >= 1.05 ? `${fmt(v, 2)}×` : null);

  function captions() {
    const out = [];
    const ok = (n) => runs[n] && !runs[n].error && state.on.has(n);
    const need = (names, what) => {
      const off = names.filter((n) => !state.on.has(n));
      return off.length ? `Switch on ${off.join(" and ")} to see ${what}.` : null;
    };
    const hp = (n, k) => fmt(state.hp[n][k]);
    // 1. Zig-zag: GD against Momentum along the steep direction.
    const zigNeed = need(["SGD", "Momentum"], "how momentum damps plain gradient descent's zig-zag");
    if (zigNeed && runs.SGD && runs.Momentum && surface.steep) out.push(`<strong>Zig-zag.</strong> ${zigNeed}`);
    else if (ok("SGD") && ok("Momentum")) {
      if (surface.steep) {
        const g = zigzag(runs.SGD), m = zigzag(runs.Momentum);
        const pct = (v) => (Number.isFinite(v) ? `${fmt(100 * v, 2)} %` : "—");
        let text = `<strong>Zig-zag.</strong> On this surface, plain gradient descent (SGD, lr ${hp("SGD", "lr")}) `;
        if (runs.SGD.diverged !== null) text += `diverges at step ${runs.SGD.diverged}: lr is past its limit across the valley.`;
        else text += `takes back ${pct(g)} of its travel across the valley with its next step (zig-zag index ${fmt(g)}).`;
        if (runs.Momentum.diverged !== null) text += ` Momentum diverges at step ${runs.Momentum.diverged}.`;
        else if (Number.isFinite(g) && Number.isFinite(m)) {
          const who = `Momentum (lr ${hp("Momentum", "lr")}, β ${hp("Momentum", "beta")})`;
          if (!(g > 0)) text += ` Here it does not bounce, so there is nothing for momentum to damp: ${who} has index ${fmt(m)}.`;
          else if (m < g) {
            const k = m > 0 ? times(g / m) : null;
            text += ` ${who} damps the bounce: its index is ${fmt(m)}${k ? `, ${k} smaller` : ""}.`;
          } else text += ` ${who} does not damp it at this setting: its index is ${fmt(m)}, no smaller.`;
        }
        out.push(text);
      } else {
        out.push(`<strong>Zig-zag.</strong> This surface has no single steep direction, so the zig-zag index is not defined here; the valley shows it best.`);
      }
    }
    // 2. Steps to tolerance, fastest first.
    const reached = [], never = [], away = [];
    for (const n of NAMES) {
      if (!state.on.has(n) || !ok(n)) continue;
      const k = runs[n].diverged === null ? stepsToTol(runs[n]) : null;
      if (runs[n].diverged === null && escaped(runs[n])) away.push(n);
      else if (k === null) never.push(runs[n].diverged !== null ? `${n} (diverged)` : n);
      else reached.push([k, n]);
    }
    if (reached.length || never.length || away.length) {
      reached.sort((a, b) => a[0] - b[0]);
      let text = `<strong>Steps to tolerance.</strong> Within ${power(-6)} of f<sub>min</sub> for good: `;
      text += reached.length ? reached.map(([k, n]) => `${n} after ${k}`).join(", ") : "none of them";
      if (never.length) text += `; not within ${plural(state.steps, "step")}: ${never.join(", ")}`;
      if (away.length) text += `; escaped below f<sub>min</sub> (the saddle point's value): ${away.join(", ")}`;
      out.push(text + ".");
    }
    // 3. Adagrad's ever-shrinking step against RMSProp's, and where each stalls.
    const stallNeed = need(["Adagrad", "RMSProp"], "where Adagrad stalls and RMSProp does not");
    if (stallNeed && runs.Adagrad && runs.RMSProp) out.push(`<strong>Where Adagrad stalls.</strong> ${stallNeed}`);
    else if (ok("Adagrad") && ok("RMSProp") && runs.Adagrad.diverged === null && state.steps >= 2) {
      const a = runs.Adagrad, last = lastFinite(a), eff = effectiveStep(a, last);
      const fall = [0, 1].map((i) => times(eff[0][i] / eff[eff.length - 1][i]));
      const r = runs.RMSProp, rl = lastFinite(r);
      const sa = stalledAt(a), sr = r.diverged === null ? stalledAt(r) : undefined;
      let text = `<strong>Where Adagrad stalls.</strong> Adagrad divides lr by the root of <em>all</em> past squared gradients, so its effective step only shrinks`;
      if (fall[0] && fall[1]) text += `: after ${plural(last, "step")} it is ${fall[0]} (θ[0]) and ${fall[1]} (θ[1]) smaller than at the first step. `;
      else if (fall[0] || fall[1]) text += `: after ${plural(last, "step")} it is ${fall[0] || fall[1]} smaller along θ[${fall[0] ? 0 : 1}] than at the first step. `;
      else text += `. `;
      const stalled = sa !== null && sa !== undefined;
      if (stalled) text += `From step ${sa} on it is stalled (50 more steps no longer halve its loss gap, though it still heads the same way); `;
      const from = MINIMA[state.surface] ? "the nearest minimum" : "the minimum";
      text += `${stalled ? "it" : "It"} ends ${fmt(distance(a, last))} from ${from} (it started ${fmt(distance(a, 0))} away).`;
      if (r.diverged !== null) text += ` RMSProp diverges at step ${r.diverged}.`;
      else {
        text += ` RMSProp forgets old gradients (γ ${hp("RMSProp", "gamma")})`;
        if (sr === null) text += `, does not stall`;
        else if (sr !== undefined) text += `, stalls from step ${sr}`;
        text += ` and ends ${fmt(distance(r, rl))} away.`;
      }
      out.push(text);
    }
    return out.map((t) => `<p>${t}</p>`).join("");
  }

  let captionsHtml = "";
  function updateCaptions() {
    const html = captions();
    if (html !== captionsHtml) {
      $("captions").innerHTML = html;
      captionsHtml = html;
    }
  }

  // ------------------------------------------------------------------------ the frame
  // Inputs only mark what is stale; one animation frame re-runs and redraws, so a burst
  // of slider events costs one run of the nine.
  const SURFACE = 1, RUN = 2, DRAW = 4, CONTOUR = 8;
  let pending = 0, rafId = 0;
  const timings = [];

  function invalidate(flags) {
    pending |= flags;
    if (!rafId) rafId = requestAnimationFrame(frame);
  }

  function frame() {
    if (rafId) cancelAnimationFrame(rafId);
    rafId = 0;
    const flags = pending;
    pending = 0;
    const t0 = performance.now();
    if (flags & SURFACE || !surface) {
      try {
        surface = lab.surface(surfaceSpec());
      } catch (e) {
        notify([`${e.message}; using the defaults`]);
        state.params = surfaceDefaults(state.surface);
        surface = lab.surface(surfaceSpec());
      }
      geo.W = 0; // refit the window
    }
    const resized = measure();
    if (resized || flags & (SURFACE | CONTOUR)) {
      fitView();
      drawContours(roughContours && !resized && !(flags & CONTOUR));
      roughContours = false;
    }
    const phases = {};
    const phase = (name, f) => {
      const t = performance.now();
      f();
      phases[name] = performance.now() - t;
    };
    phases.surface = performance.now() - t0;
    if (flags & (SURFACE | RUN)) phase("runs", runAll);
    phase("paths", drawPaths);
    phase("loss", drawLoss);
    phase("internals", drawInternals);
    phase("text", () => {
      updateTuneNote();
      updateLegend();
      updateCaptions();
      syncStart();
      syncScrubber();
    });
    phase("map", drawMapMarks);
    const t1 = performance.now();
    timings.push({ flags, work: t1 - t0, phases });
    if (timings.length > 2000) timings.splice(0, 1000);
  }

  resizer.observe(plot);
  resizer.observe($("loss").parentElement);

  // ------------------------------------------------------------------------ start point
  function moveStart(x, y, key) {
    const span = Math.min(geo.x1 - geo.x0, geo.y1 - geo.y0);
    const q = 10 ** Math.floor(Math.log10(span / 400)); // round to about a pixel
    state.start = [Math.round(x / q) * q, Math.round(y / q) * q].map((v) => Number(v.toPrecision(10)));
    invalidate(RUN);
    record(key);
  }

  let dragging = null;
  function pointerToStart(event) {
    const box = plot.getBoundingClientRect();
    moveStart(fromX(event.clientX - box.left), fromY(event.clientY - box.top), "drag");
  }
  // A mouse or pen moves the start at once and drags it. A finger on the plot may be
  // scrolling the page (touch-action lets it pan), so it moves the start only on a tap;
  // a drag that starts on the handle (touch-action: none) moves it along.
  let tap = null; // {id, x, y, time} of a touch that may become a tap
  function beginDrag(event) {
    dragging = event.pointerId;
    try {
      plot.setPointerCapture(event.pointerId);
    } catch (e) {
      // a pointer the browser no longer tracks: the drag still follows plot's events
    }
    plot.classList.add("dragging");
    pointerToStart(event);
    event.preventDefault();
    handle.focus({ preventScroll: true });
  }
  plot.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    if (event.pointerType === "touch" && event.target !== handle) {
      tap = { id: event.pointerId, x: event.clientX, y: event.clientY, time: performance.now() };
      return;
    }
    beginDrag(event);
  });
  plot.addEventListener("pointermove", (event) => {
    if (event.pointerId === dragging) pointerToStart(event);
    else if (tap && event.pointerId === tap.id && Math.hypot(event.clientX - tap.x, event.clientY - tap.y) > 10) tap = null;
  });
  const endDrag = (event) => {
    if (tap && event.pointerId === tap.id) {
      const still = Math.hypot(event.clientX - tap.x, event.clientY - tap.y) <= 10;
      if (event.type === "pointerup" && still && performance.now() - tap.time < 800) {
        pointerToStart(event);
        handle.focus({ preventScroll: true });
      }
      tap = null;
    }
    if (event.pointerId !== dragging) return;
    dragging = null;
    plot.classList.remove("dragging");
  };
  plot.addEventListener("pointerup", endDrag);
  plot.addEventListener("pointercancel", endDrag);

  handle.addEventListener("keydown", (event) => {
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] };
    const move = moves[event.key];
    if (!move) return;
    event.preventDefault();
    const [x, y] = startOf(), f = event.shiftKey ? 10 : 1;
    moveStart(x + move[0] * f * (geo.x1 - geo.x0) / 100, y + move[1] * f * (geo.y1 - geo.y0) / 100, "keys");
  });

  for (const [id, i] of [["start-x", 0], ["start-y", 1]]) {
    $(id).addEventListener("change", (event) => {
      const v = parseNumber(event.target.value);
      if (!Number.isFinite(v)) {
        notify([`invalid start θ₀[${i}]=${event.target.value}; valid: a finite number`]);
        event.target.value = fmt(startOf()[i], 4, true);
        return;
      }
      const xy = startOf().slice();
      xy[i] = v;
      state.start = xy;
      invalidate(RUN);
      record(id);
    });
  }
  $("start-reset").addEventListener("click", () => {
    state.start = null;
    invalidate(RUN);
    record("start-reset");
  });
  $("steps").addEventListener("change", (event) => {
    const n = parseNumber(event.target.value);
    if (!Number.isInteger(n) || n < 1 || n > MAX_STEPS) {
      notify([`invalid steps=${event.target.value}; valid: an integer from 1 to ${MAX_STEPS}`]);
      event.target.value = state.steps;
      return;
    }
    state.steps = n;
    state.step = null;
    invalidate(RUN);
    record("steps");
  });

  // ------------------------------------------------------------------------ scrubber
  const scrub = $("scrub"), play = $("play");
  function syncScrubber() {
    if (Number(scrub.max) !== state.steps) scrub.max = state.steps;
    const k = shownStep();
    if (Number(scrub.value) !== k) scrub.value = k;
    const text = `step ${k} of ${state.steps}`;
    setText($("scrub-out"), text);
    scrub.setAttribute("aria-valuetext", text);
  }
  scrub.addEventListener("input", () => {
    stopPlaying();
    const k = Number(scrub.value);
    state.step = k >= state.steps ? null : k;
    invalidate(DRAW);
    record("step");
  });

  let playing = 0; // the pending animation frame while playing, 0 when paused
  function showPlaying(on) {
    play.innerHTML = `<span aria-hidden="true">${on ? "❚❚" : "▶"}</span>`;
    play.setAttribute("aria-label", on ? "Pause" : "Play the runs step by step");
  }
  function stopPlaying() {
    if (!playing) return;
    cancelAnimationFrame(playing);
    playing = 0;
    showPlaying(false);
    record("step");
  }
  play.addEventListener("click", () => {
    if (playing) return stopPlaying();
    if (shownStep() >= state.steps) state.step = 0;
    showPlaying(true);
    const rate = Math.max(state.steps / 360, 0.25); // about six seconds for any run length
    let at = shownStep();
    const tick = () => {
      at += rate;
      const k = Math.floor(at);
      state.step = k >= state.steps ? null : k;
      invalidate(DRAW);
      playing = state.step === null ? 0 : requestAnimationFrame(tick);
      if (!playing) {
        showPlaying(false);
        record("step");
      }
    };
    playing = requestAnimationFrame(tick);
  });

  // ------------------------------------------------------------------------ tuning
  const nextFrame = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
  // The lab's lr search (RAVINE_ANALYSIS.tune: ravine.lab.tune.tune_lr's grid, tolerance and
  // ranking), run here for the view as set, one optimizer a frame so that progress shows.
  // the note as the template wrote it, with its exponents in the page's own form (10⁻⁶)
  const TUNE_NOTE = $("tune-note").textContent.replace(/\b\d+(?:\.\d+)?e[+-]?\d+\b/g, (m) => {
    const v = Number(m), e = Math.log10(v);
    return Number.isInteger(e) ? power(e) : fmt(v);
  });
  $("tune-note").textContent = TUNE_NOTE;
  let tunedFor = null; // the view the note's numbers are for, with the lr it lists
  const tuneView = () => JSON.stringify([surfaceSpec(), startOf(), state.steps, NAMES.map((n) => state.hp[n].lr)]);
  $("tune").addEventListener("click", async () => {
    const A = analysis(), button = $("tune"), note = $("tune-note");
    if (!A || !A.tune) {
      notify(["tuning is not available in this build of the page (analysis.js is missing)"]);
      return;
    }
    stopPlaying();
    button.disabled = true;
    const spec = surfaceSpec(), start = startOf(), steps = state.steps;
    const found = [];
    for (const [i, name] of NAMES.entries()) {
      note.textContent = `Tuning ${name} (${i + 1} of ${NAMES.length}) in this page…`;
      await nextFrame();
      try {
        const rest = Object.assign({}, state.hp[name]);
        delete rest.lr;
        const result = A.tune({ optimizer: name, surface: spec, start, steps, hyperparameters: rest });
        state.hp[name].lr = result.lr;
        found.push(`${name} ${fmt(result.lr)}${result.note ? " (kept: no lr to tune)" : result.atEdge ? " (at the grid's edge)" : ""}`);
      } catch (e) {
        notify([`tuning ${name}: ${e.message}`]);
      }
    }
    button.disabled = false;
    note.textContent = `Tuned lr, computed in this page for the surface as set, from (${fmt(start[0])}, ${fmt(start[1])}), ${steps} steps, other settings as set: ${found.join(", ")}.`;
    tunedFor = tuneView();
    syncControls();
    invalidate(RUN);
    record("tune");
  });
  // once the view or any lr it lists changes (a slider, the map, Back), the note goes
  // back to saying what the button does
  function updateTuneNote() {
    if (tunedFor !== null && tunedFor !== tuneView()) {
      tunedFor = null;
      $("tune-note").textContent = TUNE_NOTE;
    }
  }

  // ------------------------------------------------------------------------ the (α, β) map
  // Distill's map for Momentum and NAG on the valley as set (κ), measured pixel by pixel by
  // RAVINE_ANALYSIS.rateMapPixels from real runs of the page's engine. It takes about a
  // second, so it fills in over many frames (a few ms each) and shows its progress; any
  // change of κ or of the map's other hyperparameters (ema, look-ahead) starts it again.
  const MAP_LRS = Array.from({ length: 48 }, (_, j) => 10 ** (-3 + (4 * j) / 47));
  const MAP_BETAS = Array.from({ length: 36 }, (_, i) => (0.98 * i) / 35);
  const MAP_STEPS = 150;
  const MAP_BUDGET_MS = 8;
  const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const maps = {}; // name → {canvas, map: rateMapPixels' result so far, layer, painted}
  let mapJob = null;

  const mapPad = { left: 40, right: 14, top: 8, bottom: 30 };
  function mapGeometry(canvas) {
    const W = Math.max(widthOf(canvas.parentElement), 200), H = Math.round(Math.min(W * 0.7, 280));
    const pw = W - mapPad.left - mapPad.right, ph = H - mapPad.top - mapPad.bottom;
    const a = Math.log10(MAP_LRS[0]), b = Math.log10(MAP_LRS[MAP_LRS.length - 1]);
    const top = MAP_BETAS[MAP_BETAS.length - 1];
    return {
      W, H, pw, ph,
      x: (lr) => mapPad.left + ((Math.log10(lr) - a) / (b - a)) * pw,
      y: (beta) => mapPad.top + ph - (beta / top) * ph,
      lr: (px) => 10 ** (a + ((px - mapPad.left) / pw) * (b - a)),
      beta: (py) => ((mapPad.top + ph - py) / ph) * top,
    };
  }

  function buildMaps() {
    const box = $("maps");
    $("map-intro").innerHTML = `For each lr (across, log scale) and β (up), ${MAP_STEPS} steps on the valley as set; the colour is the measured rate at which the distance to the minimum shrinks per step (brighter is faster), grey where the run diverges, with the divergence edge drawn. The ring is the optimizer's current setting; click the map, or focus it and use the arrow keys, to set its lr and β.`;
    for (const name of MAP_OPTIMIZERS) {
      const fig = document.createElement("figure");
      fig.className = "map-figure";
      fig.innerHTML = `<figcaption>${swatch(name)} ${name}</figcaption><div class="map-canvas"><canvas tabindex="0"></canvas></div>`;
      const canvas = fig.querySelector("canvas");
      canvas.setAttribute("role", "img");
      box.appendChild(fig);
      resizer.observe(canvas.parentElement);
      maps[name] = { canvas, map: null };
      canvas.addEventListener("click", (event) => {
        const rect = canvas.getBoundingClientRect(), g = mapGeometry(canvas);
        // a click on the margins counts as the nearest edge of the drawn range
        const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);
        const lr = g.lr(clamp(event.clientX - rect.left, mapPad.left, mapPad.left + g.pw));
        const beta = g.beta(clamp(event.clientY - rect.top, mapPad.top, mapPad.top + g.ph));
        setMapHp(name, clamp(lr, MAP_LRS[0], MAP_LRS[MAP_LRS.length - 1]), clamp(beta, 0, MAP_BETAS[MAP_BETAS.length - 1]));
      });
      canvas.addEventListener("keydown", (event) => {
        const d = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] }[event.key];
        if (!d) return;
        event.preventDefault();
        const ratio = MAP_LRS[1] / MAP_LRS[0], cell = MAP_BETAS[1];
        // one cell along the drawn range; a key never moves a value the other way (β = 0.995
        // is above the map: ArrowUp keeps it), nor past the range
        const along = (v, to, lo, hi, dir) =>
          dir > 0 ? Math.max(v, Math.min(to, hi)) : dir < 0 ? Math.min(v, Math.max(to, lo)) : v;
        const { lr, beta } = state.hp[name];
        setMapHp(
          name,
          along(lr, lr * ratio ** d[0], MAP_LRS[0], MAP_LRS[MAP_LRS.length - 1], d[0]),
          along(beta, beta + d[1] * cell, 0, MAP_BETAS[MAP_BETAS.length - 1], d[1]),
        );
      });
    }
  }

  function setMapHp(name, lr, beta) {
    const hp = state.hp[name]; // a value a key left where it was is kept exactly (β 0.9995)
    if (lr !== hp.lr) hp.lr = roundSig(lr, 3);
    if (beta !== hp.beta) hp.beta = Number(beta.toFixed(3));
    syncControls();
    invalidate(RUN);
    record(`map-${name}`);
  }

  const mapOptions = (name) => {
    const rest = Object.assign({}, state.hp[name]);
    delete rest.lr;
    delete rest.beta;
    return rest;
  };

  // Start (or restart) the computation when what the map shows changed; draw the marks.
  function drawMapMarks() {
    const A = analysis();
    const onValley = state.surface === "valley";
    $("maps").hidden = $("map-key").hidden = !onValley || !A || !A.rateMapPixels;
    if (!A || !A.rateMapPixels) {
      setText($("map-status"), "The map needs analysis.js, which this build of the page lacks.");
      return;
    }
    if (!onValley) {
      // nothing to show: stop measuring (it starts again, from scratch, on the valley)
      if (mapJob) mapJob.cancelled = true;
      mapJob = null;
      setText($("map-status"), "The map is drawn for the valley: choose the valley to see it.");
      return;
    }
    // the rate does not depend on the rotation: the map is measured unrotated, once per κ
    const key = JSON.stringify([mapSurface(), MAP_OPTIMIZERS.map(mapOptions)]);
    if (!mapJob || mapJob.key !== key) startMaps(key);
    for (const name of MAP_OPTIMIZERS) paintMap(name);
  }

  const mapSurface = () => Object.assign(surfaceSpec(), "rotation" in state.params ? { rotation: 0 } : {});

  function startMaps(key) {
    if (mapJob) mapJob.cancelled = true;
    const job = { key, cancelled: false, queue: MAP_OPTIMIZERS.slice(), pixels: null };
    mapJob = job;
    const surfaceNow = mapSurface(), kappa = fmt(surfaceNow.kappa);
    const total = MAP_OPTIMIZERS.length * MAP_LRS.length * MAP_BETAS.length;
    let done = 0;
    const work = () => {
      if (job.cancelled) return;
      const until = performance.now() + MAP_BUDGET_MS;
      while (performance.now() < until) {
        if (!job.pixels) {
          const name = job.queue[0];
          if (!name) break;
          job.name = name;
          job.pixels = analysis().rateMapPixels({
            optimizer: name, surface: surfaceNow, lrs: MAP_LRS, betas: MAP_BETAS, steps: MAP_STEPS,
            hyperparameters: mapOptions(name),
          });
        }
        const next = job.pixels.next();
        if (next.done) {
          maps[job.name].map = next.value;
          job.queue.shift();
          job.pixels = null;
          continue;
        }
        maps[job.name].map = next.value;
        done++;
      }
      for (const name of MAP_OPTIMIZERS) paintMap(name);
      if (job.queue.length) {
        setText($("map-status"), `Measuring the map for κ = ${kappa}: ${Math.floor((100 * done) / total)} %`);
        requestAnimationFrame(work);
      } else {
        setText($("map-status"), `Measured for κ = ${kappa}: ${total} runs of ${MAP_STEPS} steps, in this page.`);
      }
    };
    for (const name of MAP_OPTIMIZERS) maps[name].map = null;
    requestAnimationFrame(work);
  }

  // A map's picture: the cells (one pixel each, scaled up unsmoothed), the divergence edge
  // and the axes, redrawn only when the map has progressed or the width changed; each
  // frame then copies it and draws the ring at the current setting.
  function mapLayer(entry, g) {
    const { map } = entry;
    const done = map ? map.done : -1;
    if (entry.layer && entry.layerDone === done && entry.layer.width === g.W) return entry.layer;
    const layer = entry.layer || document.createElement("canvas");
    layer.width = g.W;
    layer.height = g.H;
    const ctx = layer.getContext("2d");
    ctx.fillStyle = "#f1f2f4";
    ctx.fillRect(mapPad.left, mapPad.top, g.pw, g.ph);
    const nl = MAP_LRS.length, nb = MAP_BETAS.length;
    if (map) {
      const cells = document.createElement("canvas");
      cells.width = nl;
      cells.height = nb;
      const cctx = cells.getContext("2d");
      const image = cctx.createImageData(nl, nb);
      for (let at = 0; at < map.done; at++) {
        const i = Math.floor(at / nl), j = at % nl, o = ((nb - 1 - i) * nl + j) * 4;
        let c = [217, 220, 223]; // diverged
        if (!map.diverged[at] && Number.isFinite(map.rate[at])) {
          // −log10(1 − rate): 1 at 0.9 a step, 2 at 0.99; three decades span the colours
          c = ramp(VIRIDIS, 1 - Math.min(-Math.log10(Math.max(1 - map.rate[at], 1e-12)) / 3, 1));
        }
        image.data.set([c[0], c[1], c[2], 255], o);
      }
      cctx.putImageData(image, 0, 0);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(cells, mapPad.left, mapPad.top, g.pw, g.ph);
      // the divergence edge: per β, the smallest lr that diverged
      const cw = g.pw / nl, ch = g.ph / nb;
      ctx.beginPath();
      let pen = false;
      map.edge.forEach((lr, i) => {
        if (!Number.isFinite(lr)) return (pen = false);
        const x = mapPad.left + MAP_LRS.indexOf(lr) * cw, y = mapPad.top + g.ph - (i + 0.5) * ch;
        if (pen) ctx.lineTo(x, y);
        else ctx.moveTo(x, y);
        pen = true;
      });
      ctx.strokeStyle = "#1d2330";
      ctx.lineWidth = 1.5;
      ctx.stroke();
    }
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "#5b6472";
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (let e = -3; e <= 1; e++) ctx.fillText(power(e), g.x(10 ** e), mapPad.top + g.ph + 3);
    ctx.fillText("lr →", mapPad.left + g.pw / 2, mapPad.top + g.ph + 15);
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const b of [0, 0.5, 0.9]) ctx.fillText(String(b), mapPad.left - 5, g.y(b));
    ctx.save();
    ctx.translate(10, mapPad.top + g.ph / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center";
    ctx.fillText("β →", 0, 0);
    ctx.restore();
    ctx.strokeStyle = "#b9bfc8";
    ctx.lineWidth = 1;
    ctx.strokeRect(mapPad.left + 0.5, mapPad.top + 0.5, g.pw - 1, g.ph - 1);
    entry.layer = layer;
    entry.layerDone = done;
    return layer;
  }

  function paintMap(name) {
    const entry = maps[name], { canvas } = entry;
    const g = mapGeometry(canvas);
    const hp = state.hp[name];
    const key = `${g.W}:${entry.map ? entry.map.done : -1}:${hp.lr}:${hp.beta}`;
    if (key === entry.painted) return;
    entry.painted = key;
    const ctx = sizeCanvas(canvas, g.W, g.H);
    ctx.clearRect(0, 0, g.W, g.H);
    ctx.drawImage(mapLayer(entry, g), 0, 0, g.W, g.H);
    // the current setting
    const x = g.x(Math.min(Math.max(hp.lr, MAP_LRS[0]), MAP_LRS[MAP_LRS.length - 1]));
    const y = g.y(Math.min(hp.beta, MAP_BETAS[MAP_BETAS.length - 1]));
    ctx.beginPath();
    ctx.arc(x, y, 6, 0, 2 * Math.PI);
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 4;
    ctx.stroke();
    ctx.strokeStyle = "#d0021b";
    ctx.lineWidth = 2;
    ctx.stroke();
    canvas.setAttribute("aria-label", `${name}'s (lr, β) map, now at lr ${fmt(hp.lr)}, β ${fmt(hp.beta)}. Click to set lr and β; arrow keys move them by one cell.`);
  }

  // ------------------------------------------------------------------------ start
  buildSurfaceSelect();
  buildOptimizerCards();
  buildLegend();
  buildMaps();
  loadHash();

  // For tests and the benchmark: the state, the runs, what was drawn and the frame times.
  window.ravineExplore = Object.freeze({
    state: () => JSON.parse(JSON.stringify(Object.assign({}, state, { on: [...state.on], start: startOf() }))),
    run: (name) => runs[name],
    drawn: () => drawn.slice(),
    hash: () => encode(state),
    timings,
    // run the pending frame now (the benchmark); flush also writes the address (tests)
    frame: () => (rafId || pending) && frame(),
    flush: () => {
      writeHistory();
      if (rafId || pending) frame();
    },
  });
})();
