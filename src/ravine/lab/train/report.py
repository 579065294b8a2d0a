"""Tables (Markdown), figures (PNG) and JSON of the experiments in :mod:`.experiments`.

Figures use matplotlib's object API with the Agg canvas, like the rest of the lab.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..._doc import markdown_table
from . import state_formats
from .experiments import BIAS_BETAS, BIAS_GAMMAS, ZEILER_EPS, ZEILER_LRS, ZEILER_RHOS, fmt


def _save(fig: Any, path: str | Path) -> Path:
    """Lay the figure out and write it (PNG at 110 dpi)."""
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def _claims(out: dict[str, Any]) -> str:
    return "\n".join(
        f"- {'held' if c['held'] else 'did NOT hold'}: {c['claim']}" for c in out["claims"]
    )


def kingma_table(out: dict[str, Any]) -> str:
    """One row per optimizer and feature set: tuned lr, area under the loss curve, final
    training loss, test accuracy and seconds per epoch (mean ± std over seeds)."""
    rows = []
    for kind in ("dense", "sparse"):
        for r in out[kind]["results"]:
            s, t = r["summary"], r["tuning"]
            lr = "—" if t["lr"] is None else f"{t['lr']:g}" + (" (edge)" if t["at_edge"] else "")
            rows.append(
                [
                    kind,
                    r["label"],
                    lr,
                    f"{np.mean(s['train_loss_mean']):.4f}",
                    fmt(s["final_train_loss"], 4),
                    fmt([100 * x for x in s["test_acc"]], 4),
                    fmt([1e3 * x for x in s["seconds_per_epoch"]], 3),
                ]
            )
    header = ["features", "optimizer", "tuned lr", "mean train loss (area)", "final train loss",
              "test acc %", "ms / epoch"]  # fmt: skip
    return markdown_table(header, rows) + "\n\n" + _claims(out)


def kingma_plot(out: dict[str, Any], path: str | Path) -> Path:
    """Training loss per epoch, mean ± std over seeds, dense and sparse side by side."""
    fig = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(fig)
    for i, kind in enumerate(("dense", "sparse")):
        ax = fig.add_subplot(1, 2, i + 1)
        for j, r in enumerate(out[kind]["results"]):
            mean = np.array(r["summary"]["train_loss_mean"], dtype=float)
            std = np.array(r["summary"]["train_loss_std"], dtype=float)
            epochs = np.arange(1, len(mean) + 1)
            torch_baseline = "(torch)" in r["label"]
            color = f"C{j // 2}"
            ax.plot(epochs, mean, color=color, ls="--" if torch_baseline else "-", label=r["label"])
            if not torch_baseline:
                ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.2)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss (mean of the epoch's mini-batches)")
        ax.set_title(f"logistic regression, {kind} features ({out[kind]['features']})")
        ax.legend(fontsize=8)
    return _save(fig, path)


def zeiler_table(out: dict[str, Any]) -> str:
    """Zeiler's two tables: test error % by lr, and AdaDelta's by ρ × ε."""
    cells = out["cells"]

    def error(name: str, **hp: float) -> str:
        cell = next(
            c for c in cells if c["optimizer"] == name and all(c[k] == v for k, v in hp.items())
        )
        mean, std = cell["test_error"]
        return f"{mean:.1f} ± {std:.1f}" + (
            f" ({cell['diverged']} diverged)" if cell["diverged"] else ""
        )

    lr_rows = [
        [name] + [error(name, lr=lr) for lr in ZEILER_LRS]
        for name in ("SGD", "Momentum", "Adagrad")
    ]
    first = markdown_table(["test error %", *(f"lr={lr:g}" for lr in ZEILER_LRS)], lr_rows)
    rho_rows = [
        [f"AdaDelta ρ={rho:g}"] + [error("AdaDelta", rho=rho, eps=e) for e in ZEILER_EPS]
        for rho in ZEILER_RHOS
    ]
    second = markdown_table(["test error %", *(f"ε={e:g}" for e in ZEILER_EPS)], rho_rows)
    return f"{first}\n\n{second}\n\n{_claims(out)}"  # fmt: skip


def zeiler_plot(out: dict[str, Any], path: str | Path) -> Path:
    """Test error against lr for SGD, Momentum and Adagrad; AdaDelta's 12 settings as a band."""
    fig = Figure(figsize=(6.5, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name in ("SGD", "Momentum", "Adagrad"):
        row = [c for c in out["cells"] if c["optimizer"] == name]
        ax.errorbar(
            [c["lr"] for c in row],
            [c["test_error"][0] for c in row],
            yerr=[c["test_error"][1] for c in row],
            marker="o",
            capsize=3,
            label=name,
        )
    ada = [c["test_error"][0] for c in out["cells"] if c["optimizer"] == "AdaDelta"]
    ax.axhspan(min(ada), max(ada), color="k", alpha=0.15, label="AdaDelta, all ε × ρ (min–max)")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("test error % after training")
    ax.set_title("Zeiler (2012) sensitivity, tanh MLP on digits")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _results_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for r in results:
        s, t = r["summary"], r["tuning"]
        lr = "—" if t["lr"] is None else f"{t['lr']:g}" + (" (edge)" if t["at_edge"] else "")
        rows.append(
            [
                r["label"],
                lr,
                "—" if s["diverged"] else f"{np.mean(s['train_loss_mean']):.4g}",
                fmt(s["final_train_loss"], 4),
                str(s["diverged"]),
            ]
        )
    return rows


def fig2_table(out: dict[str, Any]) -> str:
    """Tuned lr, area under the training-loss curve, final training loss and test
    accuracy of each optimizer (mean ± std over seeds)."""
    rows = _results_rows(out["results"])
    for row, r in zip(rows, out["results"], strict=True):
        row.insert(4, fmt([100 * x for x in r["summary"]["test_acc"]], 4))
    header = ["optimizer", "tuned lr", "mean train loss (area)", "final train loss",
              "test acc %", "diverged seeds"]  # fmt: skip
    return markdown_table(header, rows) + "\n\n" + _claims(out)


def sutskever_table(out: dict[str, Any]) -> str:
    """Each (method, β) with its tuned lr, area and final training error; then the
    Momentum / NAG ratio of final errors per β."""
    header = ["optimizer", "tuned lr", "mean train MSE (area)", "final train MSE",
              "diverged seeds"]  # fmt: skip
    first = markdown_table(header, _results_rows(out["results"]))
    ratio = out["claims"][1]["ratio"]
    second = markdown_table(
        ["β", "Momentum / NAG final MSE"], [[b, f"{v:.3g}"] for b, v in ratio.items()]
    )
    return f"{first}\n\n{second}\n\n{_claims(out)}"


def _curves(ax: Any, results: list[dict[str, Any]], styles: Any = None) -> None:
    for j, r in enumerate(results):
        mean = np.array(r["summary"]["train_loss_mean"], dtype=float)
        std = np.array(r["summary"]["train_loss_std"], dtype=float)
        epochs = np.arange(1, len(mean) + 1)
        color, ls = (f"C{j}", "-") if styles is None else styles(j)
        ax.plot(epochs, mean, color=color, ls=ls, label=r["label"])
        ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.15)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.legend(fontsize=8)


def fig2_plot(out: dict[str, Any], path: str | Path) -> Path:
    """Training loss per epoch, mean ± std over seeds, one line per optimizer."""
    fig = Figure(figsize=(6.5, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    _curves(ax, out["results"])
    ax.set_ylabel("training loss (mean of the epoch's mini-batches)")
    ax.set_title(f"MLP 64-256-256-10, dropout {out['settings']['dropout']:g}, digits")
    return _save(fig, path)


def sutskever_plot(out: dict[str, Any], path: str | Path) -> Path:
    """Training MSE per epoch: one colour per β, solid NAG, dashed Momentum."""
    fig = Figure(figsize=(6.5, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    _curves(ax, out["results"], lambda j: (f"C{j // 2}", "-" if j % 2 else "--"))
    ax.set_ylabel("training MSE (mean of the epoch's mini-batches)")
    ax.set_title("deep autoencoder on digits: NAG (solid) vs Momentum (dashed)")
    return _save(fig, path)


def _bias_cell(out: dict[str, Any], **hp: Any) -> dict[str, Any]:
    return next(c for c in out["cells"] if all(c[k] == v for k, v in hp.items()))


def bias_table(out: dict[str, Any]) -> str:
    """Final training loss (mean ± std over seeds) for each correction × β × γ (rows) and
    lr (columns); "diverged" where a seed's loss stopped being finite."""
    lrs = out["settings"]["lrs"]

    def text(c: dict[str, Any]) -> str:
        if c["diverged"]:
            return f"diverged ({c['diverged']})"
        return fmt(c["final_loss"], 3)

    rows = [
        [f"{'with' if correct else 'without'}", f"{beta:g}", f"{gamma:g}"]
        + [text(_bias_cell(out, correct=correct, beta=beta, gamma=gamma, lr=lr)) for lr in lrs]
        for correct in (True, False)
        for beta in BIAS_BETAS
        for gamma in BIAS_GAMMAS
    ]
    header = ["correction", "β", "γ", *(f"lr={lr:g}" for lr in lrs)]
    return markdown_table(header, rows) + "\n\n" + _claims(out)


def bias_plot(out: dict[str, Any], path: str | Path) -> Path:
    """Kingma & Ba's Fig. 4 layout: final loss against lr, one panel per β, one colour per
    γ, solid with correction, dashed without; diverged cells are left out."""
    lrs = out["settings"]["lrs"]
    fig = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(fig)
    for i, beta in enumerate(BIAS_BETAS):
        ax = fig.add_subplot(1, 2, i + 1)
        for j, gamma in enumerate(BIAS_GAMMAS):
            for correct in (True, False):
                cells = [
                    _bias_cell(out, correct=correct, beta=beta, gamma=gamma, lr=lr) for lr in lrs
                ]
                y = [np.nan if c["final_loss"][0] is None else c["final_loss"][0] for c in cells]
                ax.plot(
                    lrs,
                    y,
                    color=f"C{j}",
                    ls="-" if correct else "--",
                    marker="o" if correct else "x",
                    label=f"γ={gamma:g}, {'with' if correct else 'without'} correction",
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel(f"training MSE after {out['settings']['epochs']} epochs")
        ax.set_title(f"Adam on the autoencoder, β = {beta:g}")
        ax.legend(fontsize=7)
    return _save(fig, path)


RENDER: dict[str, tuple[Any, Any]] = {
    "kingma-fig1": (kingma_table, kingma_plot),
    "zeiler": (zeiler_table, zeiler_plot),
    "kingma-fig2": (fig2_table, fig2_plot),
    "sutskever": (sutskever_table, sutskever_plot),
    "bias-correction": (bias_table, bias_plot),
    "state-formats": (state_formats.table, state_formats.plot),
}
"""Experiment name → (table, figure) renderers."""


def write(out: dict[str, Any], out_dir: str | Path) -> tuple[str, list[Path]]:
    """Write ``NAME.json``, ``NAME.png`` and ``NAME.md`` into ``out_dir``; return the table
    text and the paths written."""
    name = out["experiment"]
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    table, plot = RENDER[name]
    text = table(out)
    paths = [folder / f"{name}.json", folder / f"{name}.md", plot(out, folder / f"{name}.png")]
    paths[0].write_text(json.dumps(out, indent=1, default=list) + "\n", encoding="utf-8")
    paths[1].write_text(text + "\n", encoding="utf-8")
    return text, paths
