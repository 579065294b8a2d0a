"""``ravine lab report``: one self-contained HTML page telling the seed's story with numbers.

Compute first (:func:`compute`: searches, runs, metrics, theory checks, claims, all plain
data), then draw (:func:`draw`: figures from that data), then write the page
(:func:`write`: tables and embedded figures). Long parts show a progress bar on stderr.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..numpy import OPTIMIZERS
from ..rules import SPECS
from . import animate, claims, export, figures, metrics, minibatch, plot, surfaces, theory
from .html import figure, page, table, verdict
from .progress import Progress
from .run import Trajectory, run, run_seeds
from .tune import tune, tune_lr

TOL = 1e-6
GALLERY: dict[str, tuple[surfaces.Surface, tuple[float, float]]] = {
    "rosenbrock": (surfaces.rosenbrock(), (-1.5, 2.0)),
    "beale": (surfaces.beale(), (1.0, 1.4)),
    "booth": (surfaces.booth(), (-8.0, 8.0)),
    "himmelblau": (surfaces.himmelblau(), (0.0, -4.0)),
    "rastrigin": (surfaces.rastrigin(), (3.3, -2.6)),
    "saddle": (surfaces.saddle(), (1.5, 1e-3)),
    "plateau": (surfaces.plateau(), (2.5, 2.0)),
}
"""Surface and start point of the gallery."""
GALLERY_OPTIMIZERS = ("SGD", "Momentum", "RMSProp", "Adam")
GALLERY_GRID = tuple(float(v) for v in 10 ** np.linspace(-4, 0.5, 10))


def compute(
    kappa: float = 50.0,
    rotation: float = 0.5,
    steps: int = 300,
    trials: int = 40,
    seeds: int = 10,
    show: bool = True,
) -> dict[str, Any]:
    """Every number of the report, as plain data (and the trajectories behind them)."""
    data: dict[str, Any] = {"kappa": kappa, "rotation": rotation, "steps": steps, "tol": TOL}
    valley = surfaces.valley(kappa, rotation)
    steep, shallow = surfaces.valley_axes(rotation)
    x0 = -9.0 * shallow + 2.0 * steep
    data["x0"] = x0
    searches, trajs = {}, {}
    with Progress("tuning on the valley", trials * len(OPTIMIZERS), enabled=show) as bar:
        for name in OPTIMIZERS:
            search = tune(name, valley, x0, steps, TOL, trials=trials, on_trial=bar.update)
            searches[name] = search
            trajs[name] = run(OPTIMIZERS[name](**search.best), valley, x0, steps)
    data["valley"] = valley
    data["searches"] = searches
    data["trajectories"] = trajs
    data["rows"] = [
        {
            "optimizer": n,
            "hp": s.best,
            "steps_to_tol": metrics.steps_to_tolerance(trajs[n], TOL, stay=True),
            "final_loss": metrics.final_loss(trajs[n]),
            "zigzag": metrics.zigzag_index(trajs[n], steep),
            "path_ratio": metrics.path_ratio(trajs[n]),
            "rate": metrics.fitted_rate(trajs[n].losses - trajs[n].f_min, 0, steps // 3),
        }
        for n, s in searches.items()
    ]
    data["claims"] = claims.all_claims()
    data["rates"] = [theory.rate_check(k) for k in theory.KAPPAS]
    lit = theory.nag_literal(valley, x0, 0.036, 0.9, steps)
    rep = theory.nag_reparametrized(valley, x0, 0.036, 0.9, steps)
    data["nag_max_abs_diff"] = float(np.max(np.abs(lit - rep)))
    data["map"] = theory.convergence_map(np.linspace(0.01, 4.0, 100), np.linspace(0, 0.98, 50))
    data["gallery"] = _gallery(steps, show)
    data["minibatch"] = _minibatch(seeds, show)
    return data


def _gallery(steps: int, show: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with Progress("gallery", len(GALLERY) * len(GALLERY_OPTIMIZERS), enabled=show) as bar:
        for key, (surface, x0) in GALLERY.items():
            runs = {}
            for name in GALLERY_OPTIMIZERS:
                t = tune_lr(name, surface, x0, steps, 1e-4, GALLERY_GRID)
                runs[name] = run(OPTIMIZERS[name](lr=t.lr), surface, x0, steps)
                bar.update()
            out[key] = runs
    return out


def _minibatch(seeds: int, show: bool) -> dict[str, Any]:
    """Final loss gap over seeds, per batch size, for SGD and Adam at fixed lrs."""
    out: dict[str, Any] = {"seeds": seeds, "rows": [], "lr": {"SGD": 0.03, "Adam": 0.1}}
    batches = (2, 16, 128, 512)
    with Progress("mini-batch seeds", len(batches) * 2, enabled=show) as bar:
        for b in batches:
            s = minibatch.least_squares(batch_size=b)
            for name, lr in out["lr"].items():
                trajs = run_seeds(OPTIMIZERS[name](lr=lr), s, [0.0, 0.0], 400, range(seeds))
                gaps = [float(t.losses[-50:].mean() - t.f_min) for t in trajs]
                out["rows"].append({"batch": b, "optimizer": name, **metrics.spread(gaps)})
                bar.update()
    return out


def draw(data: dict[str, Any], out: Path, animation: bool = True) -> dict[str, Path]:
    """Every figure of the report, written under ``out``; their paths by key."""
    trajs: dict[str, Trajectory] = data["trajectories"]
    valley = data["valley"]
    title = f"{valley.name}, rotated {data['rotation']:g} rad: {data['steps']} steps, tuned"
    figs = {
        "genealogy": figures.genealogy(out / "genealogy.svg"),
        "valley": plot.contour_with_trajectories(
            valley, list(trajs.values()), out / "valley.png", title=title
        ),
        "valley_svg": plot.contour_with_trajectories(
            valley, list(trajs.values()), out / "valley.svg", title=title
        ),
        "losses": plot.loss_curves(list(trajs.values()), out / "losses.png", tol=TOL),
        "internals": figures.internals(
            [trajs[n] for n in ("SGD", "Momentum", "Adagrad", "RMSProp", "Adam")],
            out / "internals.png",
        ),
        "rates": figures.rate_bars(data["rates"], out / "rates.png"),
        "map": figures.convergence_map(data["map"], out / "convergence_map.png"),
        "surface3d": figures.surface_3d(
            GALLERY["rosenbrock"][0],
            out / "rosenbrock_3d.png",
            data["gallery"]["rosenbrock"]["Adam"],
        ),
    }
    for key, runs in data["gallery"].items():
        figs[f"gallery_{key}"] = plot.contour_with_trajectories(
            GALLERY[key][0], list(runs.values()), out / f"gallery_{key}.png"
        )
    if animation:
        picks = [trajs[n] for n in ("SGD", "Momentum", "RMSProp", "Adam")]
        figs["animation"] = animate.animate(valley, picks, out / "valley.gif", frames=50)
        if animate.has_ffmpeg():
            figs["animation_mp4"] = animate.animate(valley, picks, out / "valley.mp4", frames=50)
    return figs


def exports(data: dict[str, Any], out: Path) -> list[Path]:
    """CSV per tuned valley run and one JSON with all of them and the search records."""
    folder = out / "runs"
    folder.mkdir(exist_ok=True)
    paths = [export.to_csv(t, folder / f"valley_{n}.csv") for n, t in data["trajectories"].items()]
    paths.append(
        export.to_json(
            list(data["trajectories"].values()),
            folder / "valley.json",
            searches={n: s.to_dict() for n, s in data["searches"].items()},
            rows=data["rows"],
            claims=data["claims"],
            rate_checks=data["rates"],
        )
    )
    return paths


def _claims_html(c: dict[str, Any]) -> list[str]:
    z, a, n, d, m = (
        c[k]
        for k in (
            "zigzag",
            "adagrad_stalls",
            "normalized_hovers",
            "adadelta_without_lr",
            "adam_combines",
        )
    )
    return [
        "<h2>3. The seed's claims, measured</h2>",
        f"<h3>GD zig-zags; Momentum and NAG damp it — {verdict(z['holds'])}</h3>",
        f"<p>Same lr = {z['lr']:g} (1.8/κ), β = 0.9, {z['steps']} steps on the valley (κ = "
        f"{claims.KAPPA:g}, θ₀ = {claims.X0}). Zig-zag index: the share of travel across the "
        "valley that the next step takes straight back.</p>",
        table(
            ["optimizer", "zig-zag index", "path / straight line", "GD's index over this"],
            [[k, v, z["path_ratio"][k], z["gd_over"].get(k)] for k, v in z["zigzag_index"].items()],
        ),
        f"<h3>Adagrad's effective step decays and it stalls; RMSProp keeps going — "
        f"{verdict(a['holds'])}</h3>",
        f"<p>Same lr = {a['lr']:g}, {a['steps']} steps. Effective step = −Δθ/g per coordinate "
        f"(θ[0] along the floor, θ[1] across). Start distance {a['start_distance']:.3g}.</p>",
        table(
            ["optimizer", "effective step, first", "effective step, last", "end distance"],
            [
                [k, a["effective_lr_first"][k], a["effective_lr_last"][k], a["end_distance"][k]]
                for k in ("Adagrad", "RMSProp")
            ],
        ),
        f"<p>Adagrad's effective step never grows (monotone: {a['adagrad_monotone']}) and "
        f"falls by {a['adagrad_decay'][0]:.3g}× and {a['adagrad_decay'][1]:.3g}×.</p>",
        f"<h3>Normalized GD moves exactly lr and hovers within about lr — {verdict(n['holds'])}"
        "</h3>",
        f"<p>lr = {n['lr']:g}: every step's length equals lr to a relative "
        f"{n['step_length_max_rel_error']:.1e}; over the last 100 steps the distance to the "
        f"minimum stays in [{n['last100_distance_over_lr'][0]:.3g}, "
        f"{n['last100_distance_over_lr'][1]:.3g}]·lr, fitted rate {n['last100_rate']:.5f} "
        "(no convergence).</p>",
        f"<h3>AdaDelta makes progress with no learning rate — {verdict(d['holds'])}</h3>",
        f"<p>Hyperparameters {d['hyperparameters']} (the seed's: no lr to tune).</p>",
        table(
            ["step", "distance to minimum", "loss"],
            [[k, d["distance"][k], d["loss"][k]] for k in d["distance"]],
        ),
        f"<h3>Adam = RMSProp's equalised steps + Momentum's damping — {verdict(m['holds'])}</h3>",
        "<p>Axis step ratio: mean |move across| / mean |move along| over the first 10 steps "
        "(1: equal steps per axis).</p>",
        table(
            ["optimizer", "lr", "axis step ratio", "zig-zag index", "final loss"],
            [
                [k, m["lr"][k], m["axis_step_ratio"][k], m["zigzag_index"][k], m["final_loss"][k]]
                for k in m["lr"]
            ],
        ),
    ]


def write(data: dict[str, Any], figs: dict[str, Path], out: Path, files: list[Path]) -> Path:
    """The HTML page (figures embedded), written to ``out/report.html``."""
    s = data["searches"]["SGD"]
    rows = data["rows"]
    mb = data["minibatch"]
    sections = [
        "<h1>ravine lab: optimizers on pathological curvature</h1>",
        "<p>The seed's story end to end, every number from a run made for this page. "
        "Gradients are used as computed: nothing is clipped.</p>",
        "<h2>1. The family</h2>",
        figure(
            figs["genealogy"],
            "The seed's summary figure, drawn from the registry "
            "(Spec.parents, Spec.family): the direction branch SGD → Momentum → NAG, the "
            "step-size branch Adagrad → RMSProp → AdaDelta, Adam = RMSProp + Momentum, "
            "NAdam = Adam + NAG, normalized GD the fixed-stride extreme.",
        ),
        "<h2>2. The valley, every optimizer tuned the same way</h2>",
        f"<p>f = ½ θᵀAθ, eigenvalues 1 and κ = {data['kappa']:g}, valley rotated "
        f"{data['rotation']:g} rad (so no coordinate axis is the steep one), θ₀ = "
        f"({data['x0'][0]:.3g}, {data['x0'][1]:.3g}). Each optimizer: random log-scale search, "
        f"{s.trials} trials of {s.steps} steps (budget {s.trials * s.steps} steps each, trial 0 "
        f"the seed's defaults, seed {s.seed}); space: lr log-uniform in [1e-4, 10], 1 − β in "
        "[1e-3, 0.5], 1 − γ in [1e-4, 0.5], each only where the optimizer has it (AdaDelta: no "
        f"lr). Objective: fewest steps after which f − f* stays ≤ {TOL:g}, ties by final loss.</p>",
        table(
            [
                "optimizer",
                "best hyperparameters",
                "steps to tol",
                "final loss",
                "zig-zag",
                "path / straight",
                "fitted loss rate (first third)",
            ],
            [
                [
                    r["optimizer"],
                    ", ".join(f"{k}={v:.3g}" for k, v in r["hp"].items()),
                    r["steps_to_tol"],
                    r["final_loss"],
                    r["zigzag"],
                    r["path_ratio"],
                    r["rate"],
                ]
                for r in rows
            ],
        ),
        figure(figs["valley_svg"], "Trajectories of the tuned optimizers (SVG; PNG alongside)."),
        figure(figs["losses"], "Loss gap per step, log scale."),
        figure(
            figs["internals"],
            "Internals per step: effective per-coordinate step and the "
            "state buffers m and G (steep coordinate).",
        ),
    ]
    if "animation" in figs:
        sections.append(figure(figs["animation"], "The paths step by step (GIF)."))
    sections += _claims_html(data["claims"])
    sections += [
        "<h2>4. Theory checks</h2>",
        "<p>On valley(κ), GD at lr = 2/(1 + κ) and heavy ball at Polyak's optimal (α, β), run "
        "as ravine's Momentum with lr = α/(1 − β). Rate fitted to ‖θ_k − θ*‖ over the second "
        "half of the run. Error of the rate and (stricter) of its exponent ln r.</p>",
        table(
            ["κ", "method", "theory", "measured", "rate error", "exponent error", "steps"],
            [
                [
                    c["kappa"],
                    name,
                    c[name]["theory"],
                    c[name]["measured"],
                    c[name]["rel_error"],
                    c[name]["exponent_rel_error"],
                    c[name]["steps"],
                ]
                for c in data["rates"]
                for name in ("GD", "heavy ball")
            ],
        ),
        figure(figs["rates"], "1 − rate, measured (bars) and theory (black ticks)."),
        f"<p>NAG: the literal look-ahead form and ravine's stored-look-ahead form differ by at "
        f"most {data['nag_max_abs_diff']:.1e} over {data['steps']} steps on the valley.</p>",
        figure(
            figs["map"],
            "Distill's map from 50 real runs (one per β, every h at once): "
            "divergence beyond h = 2 + 2β, ripples of modulus √β between the cyan lines, "
            "monotone convergence left of them.",
        ),
        "<h2>5. Other surfaces</h2>",
        f"<p>{', '.join(GALLERY_OPTIMIZERS)}, each at its best lr on a 10-point log grid "
        f"(1e-4 … 3.2), {data['steps']} steps, objective tolerance 1e-4.</p>",
        table(
            ["surface", *GALLERY_OPTIMIZERS],
            [
                [k, *[metrics.final_loss(t) - t.f_min for t in runs.values()]]
                for k, runs in data["gallery"].items()
            ],
        ),
        figure(figs["surface3d"], "Rosenbrock in 3-D with Adam's path."),
    ]
    sections += [figure(figs[f"gallery_{k}"], k) for k in data["gallery"]]
    sections += [
        "<h2>6. Mini-batches: noise set by the batch size</h2>",
        f"<p>Least squares on 512 generated samples (κ ≈ 50); gradient = mean over a batch "
        f"drawn without replacement; {mb['seeds']} seeds; loss gap averaged over the last 50 "
        f"of 400 steps; lr {mb['lr']}.</p>",
        table(
            ["batch", "optimizer", "mean gap", "std", "min", "max"],
            [
                [r["batch"], r["optimizer"], r["mean"], r["std"], r["min"], r["max"]]
                for r in mb["rows"]
            ],
        ),
        "<h2>7. Data</h2><ul>"
        + "".join(f"<li><code>{p.relative_to(out)}</code></li>" for p in files)
        + "</ul>",
        f"<p>Registry: {len(SPECS)} optimizers.</p>",
    ]
    path = out / "report.html"
    path.write_text(page("ravine lab report", sections))
    return path


def build(
    out_dir: str | Path = "out/report",
    *,
    kappa: float = 50.0,
    steps: int = 300,
    trials: int = 40,
    seeds: int = 10,
    animation: bool = True,
    show: bool = True,
) -> Path:
    """Compute, draw, export and write the report; returns the HTML's path."""
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = compute(kappa=kappa, steps=steps, trials=trials, seeds=seeds, show=show)
    figs = draw(data, out, animation=animation)
    files = exports(data, out)
    path = write(data, figs, out, files)
    if show:
        print(f"report: {path} ({time.perf_counter() - started:.1f} s)")
    return path
