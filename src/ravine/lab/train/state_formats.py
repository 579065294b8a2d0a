"""Training with compact optimizer state: float32, bfloat16 and 8-bit side by side (issue 14).

Four of the reproductions, each with the ravine optimizers of its comparison that keep
state (plain SGD keeps none):

* ``kingma-fig1``: softmax logistic regression on the dense digits; Adam, SGD-Nesterov,
  Adagrad;
* ``kingma-fig2``: the dropout MLP; Adam, SGD-Nesterov, Adagrad, RMSProp, AdaDelta;
* ``zeiler``: the tanh MLP, Zeiler's 6 epochs; Momentum, Adagrad (lr from Zeiler's five)
  and AdaDelta at ρ = 0.95, ε = 1e-6;
* ``sutskever``: the deep autoencoder; Momentum and NAG at β = 0.99.

Each optimizer's lr is tuned once, with float32 state, by the comparison's own protocol
(:func:`.protocol.tune`: one seed-0 run per lr of the grid, lowest validation loss), then it
runs seeds 1 … n with each state format at that lr. Every tensor takes the compact format
(``min_compact_size=0``): the digits models are small (the logistic regression has 640
weights, under the default threshold of 4096), and the point is to measure the rounding.

A format *matches* float32 when, for both the final training loss and the final test
accuracy, its seed mean lies within the larger of the two seeds' standard deviations of
float32's. Separately, :func:`valley_paths` runs the optimizers on the lab's valley with
each format, for the figure.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..export import clean
from ..progress import Progress
from . import experiments
from .protocol import Candidate, Setup, mean_std, tune

FORMATS: dict[str, Any] = {"float32": None, "bfloat16": torch.bfloat16, "8bit": "8bit"}
"""Column label → ``state_dtype``."""


def _studies(quick: bool) -> list[tuple[str, Setup, list[Candidate], tuple[float, ...]]]:
    """(name, setup, candidates, lr grid) of each study, at the experiment's own budget."""
    mode = "quick" if quick else "full"
    fig1 = experiments.SETTINGS["kingma-fig1"][mode]
    fig2 = experiments.SETTINGS["kingma-fig2"][mode]
    zeiler = experiments.SETTINGS["zeiler"][mode]
    sutskever = experiments.SETTINGS["sutskever"][mode]
    stateful = [c for c in experiments.KINGMA_CANDIDATES if c.library == "ravine"]
    zeiler_candidates = [c for c in experiments.ZEILER_BASELINES if c.name != "SGD"]
    zeiler_candidates.append(
        Candidate("AdaDelta", "ravine", "AdaDelta", {"gamma": 0.95, "eps": 1e-6}, tuned=False)
    )
    lrs = experiments.ZEILER_LRS if not quick else experiments.ZEILER_LRS[1:3]
    return [
        ("kingma-fig1", experiments.kingma_fig1_setup("dense", fig1), stateful, fig1["grid"]),
        (
            "kingma-fig2",
            experiments.fig2_setup(fig2),
            list(experiments.FIG2_CANDIDATES),
            fig2["grid"],
        ),
        ("zeiler", experiments.zeiler_setup(zeiler), zeiler_candidates, lrs),
        (
            "sutskever",
            experiments.sutskever_setup(sutskever),
            experiments.sutskever_candidates((0.99,)),
            sutskever["grid"],
        ),
    ]


def _with_format(candidate: Candidate, state_dtype: Any) -> Candidate:
    fixed = {**candidate.fixed, "state_dtype": state_dtype, "min_compact_size": 0}
    return Candidate(candidate.label, candidate.library, candidate.name, fixed, candidate.tuned)


def matches(reference: dict[str, Any], row: dict[str, Any]) -> bool:
    """Whether ``row``'s final loss and test accuracy (where the task has one: not the
    autoencoder) lie within the larger seed std of ``reference``'s (see the module
    docstring); a diverged seed never matches."""
    if row["diverged"] or reference["diverged"]:
        return False
    for key in ("final_train_loss", "test_acc"):
        (mean, std), (ref_mean, ref_std) = row[key], reference[key]
        if key == "test_acc" and not math.isfinite(ref_mean):
            continue  # reconstruction: no accuracy
        if not abs(mean - ref_mean) <= max(std, ref_std):
            return False
    return True


def state_formats(quick: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run every study (see the module docstring); a JSON-ready dict with claims."""
    cfg = experiments.SETTINGS["state-formats"]["quick" if quick else "full"]
    seeds = range(1, cfg["seeds"] + 1)
    studies = _studies(quick)
    runs = sum(
        len(c) * ((len(grid) if any(x.tuned for x in c) else 0) + len(FORMATS) * len(seeds))
        for _, _, c, grid in studies
    )
    out: dict[str, Any] = {
        "experiment": "state-formats",
        "quick": quick,
        "settings": {"seeds": len(seeds), "formats": list(FORMATS), "min_compact_size": 0},
        "studies": [],
    }
    with Progress("state-formats", runs, enabled=progress) as bar:
        for name, setup, candidates, grid in studies:
            rows = []
            for candidate in candidates:
                tuning = tune(candidate, setup, grid, on_run=bar.update)
                for label, state_dtype in FORMATS.items():
                    factory = _with_format(candidate, state_dtype).factory(tuning.lr)
                    histories = []
                    for seed in seeds:
                        histories.append(setup.run(factory, seed))
                        bar.update()
                    curve = np.mean([h.train_loss for h in histories], axis=0)
                    rows.append(
                        {
                            "optimizer": candidate.label,
                            "format": label,
                            "lr": tuning.lr,
                            "final_train_loss": list(
                                mean_std([h.train_loss[-1] for h in histories])
                            ),
                            "test_acc": list(mean_std([h.test_acc[-1] for h in histories])),
                            "diverged": sum(h.diverged for h in histories),
                            "train_loss_mean": curve,
                        }
                    )
            for row in rows:
                reference = next(
                    r
                    for r in rows
                    if r["optimizer"] == row["optimizer"] and r["format"] == "float32"
                )
                row["matches_float32"] = matches(reference, row)
            out["studies"].append({"name": name, "setup": setup.name, "rows": clean(rows)})
    out["valley"] = clean(valley_paths(steps=60 if quick else 300))
    out["claims"] = claims(out)
    return out


def claims(out: dict[str, Any]) -> list[dict[str, Any]]:
    """Per compact format: in how many (study, optimizer) cases it matches float32, and
    which do not."""
    result = []
    for label in FORMATS:
        if label == "float32":
            continue
        cases = [
            (study["name"], row["optimizer"], row["matches_float32"])
            for study in out["studies"]
            for row in study["rows"]
            if row["format"] == label
        ]
        missed = [f"{s}: {o}" for s, o, ok in cases if not ok]
        result.append(
            {
                "claim": f"{label} state matches float32 within the seed spread in every case",
                "matched": len(cases) - len(missed),
                "cases": len(cases),
                "not_matched": missed,
                "held": not missed,
            }
        )
    return result


VALLEY_OPTIMIZERS = ("Momentum", "NAG", "Adagrad", "RMSProp", "AdaDelta", "Adam", "NAdam")


def valley_paths(steps: int = 300) -> list[dict[str, Any]]:
    """θ after each step on the demo's valley (κ = 50, from (−9, 2) in its axes), lr tuned
    as the demo tunes it, for each optimizer with state and each format: the two
    coordinates share one 8-bit block, so the small one is coded relative to the large."""
    from ... import torch as rt
    from ..demo import GRID, START_ACROSS, START_ALONG, TOL
    from ..surfaces import valley, valley_axes
    from ..tune import tune_lr

    surface = valley(50.0)
    steep, shallow = valley_axes(0.0)
    x0 = START_ALONG * shallow + START_ACROSS * steep
    paths = []
    for name in VALLEY_OPTIMIZERS:
        lr = tune_lr(name, surface, x0, steps, TOL, GRID).lr
        for label, state_dtype in FORMATS.items():
            torch.manual_seed(0)
            p = torch.tensor(x0, dtype=torch.float32, requires_grad=True)
            opt = rt.OPTIMIZERS[name]([p], lr=lr, state_dtype=state_dtype, min_compact_size=0)
            thetas = [opt.theta(p).numpy().copy()]
            for _ in range(steps):
                p.grad = torch.from_numpy(
                    np.asarray(surface.grad(p.detach().double().numpy()))
                ).float()
                opt.step()
                thetas.append(opt.theta(p).numpy().copy())
            final = float(surface.f(thetas[-1].astype(np.float64)) - surface.f(surface.minimum))
            paths.append(
                {
                    "optimizer": name,
                    "format": label,
                    "lr": lr,
                    "thetas": np.array(thetas),
                    "final_gap": final,
                }
            )
    return paths


def table(out: dict[str, Any]) -> str:
    """Markdown: per study, each optimizer's rows for the three formats."""
    lines = []
    for study in out["studies"]:
        lines += [
            f"### {study['name']} ({study['setup']})",
            "",
            "| optimizer | state | lr | final train loss | test accuracy | matches float32 |",
            "|---|---|---:|---:|---:|---|",
        ]
        for row in study["rows"]:
            lines.append(
                f"| {row['optimizer']} | {row['format']} | {_lr(row['lr'])} | "
                f"{experiments.fmt(row['final_train_loss'], 4)} | "
                f"{experiments.fmt(row['test_acc'], 4)} | "
                f"{'yes' if row['matches_float32'] else '**no**'} |"
            )
        lines.append("")
    lines += [
        "### The valley (κ = 50, lr tuned on float32)",
        "",
        "| optimizer | " + " | ".join(f"f − f* after, {f}" for f in FORMATS) + " |",
        "|---|" + "---:|" * len(FORMATS),
    ]
    for name in VALLEY_OPTIMIZERS:
        gaps = [p["final_gap"] for p in out["valley"] if p["optimizer"] == name]
        lines.append(f"| {name} | " + " | ".join(f"{g:.2e}" for g in gaps) + " |")
    return "\n".join(lines)


def _lr(lr: float | None) -> str:
    return "—" if lr is None else f"{lr:g}"


def plot(out: dict[str, Any], path: Any) -> Any:
    """Training-loss curves per study (float32 solid, bfloat16 dashed, 8-bit dotted) and
    the valley paths per format."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    studies = out["studies"]
    fig = Figure(figsize=(18, 8.5))
    axes = fig.subplots(2, 4)
    styles = {"float32": "-", "bfloat16": "--", "8bit": ":"}
    for ax, study in zip(axes[0], studies, strict=False):
        labels = list(dict.fromkeys(r["optimizer"] for r in study["rows"]))
        colors = {label: colormaps["tab10"](i % 10) for i, label in enumerate(labels)}
        for row in study["rows"]:
            curve = np.array(row["train_loss_mean"], dtype=float)
            label = row["optimizer"] if row["format"] == "float32" else None
            ax.plot(
                np.arange(1, len(curve) + 1), curve, styles[row["format"]],
                color=colors[row["optimizer"]], label=label,
            )  # fmt: skip
        ax.set_yscale("log")
        ax.set_title(f"{study['name']}: {study['setup']}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss (mean over seeds)")
        ax.legend(fontsize=7)
    _valley_panels(axes[1], out["valley"], styles)
    fig.suptitle("State formats: float32 (solid), bfloat16 (dashed), 8-bit (dotted)")
    fig.tight_layout()
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)
    return path


def _valley_panels(axes: Any, paths: list[dict[str, Any]], styles: dict[str, str]) -> None:
    from ..surfaces import valley

    surface = valley(50.0)
    (x0, x1), (y0, y1) = surface.bounds
    X, Y = np.meshgrid(np.linspace(x0, x1, 100), np.linspace(y0, y1, 100))
    Z = np.array([surface.f(p) for p in np.stack([X.ravel(), Y.ravel()], 1)]).reshape(X.shape)
    shown = ("Momentum", "Adagrad", "AdaDelta", "Adam")
    for ax, name in zip(axes, shown, strict=True):
        ax.contour(X, Y, Z, levels=np.geomspace(1e-3, Z.max(), 14), colors="0.8", linewidths=0.6)
        for p in paths:
            if p["optimizer"] == name:
                thetas = np.array(p["thetas"], dtype=float)
                ax.plot(thetas[:, 0], thetas[:, 1], styles[p["format"]], lw=1.2, label=p["format"])
        ax.set_title(f"valley: {name}")
        ax.set_aspect("equal", adjustable="datalim")
        ax.legend(fontsize=7)
