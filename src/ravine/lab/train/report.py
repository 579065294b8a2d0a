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
from .experiments import ZEILER_EPS, ZEILER_LRS, ZEILER_RHOS, fmt


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
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


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
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def write(out: dict[str, Any], out_dir: str | Path) -> tuple[str, list[Path]]:
    """Write ``NAME.json``, ``NAME.png`` and ``NAME.md`` into ``out_dir``; return the table
    text and the paths written."""
    name = out["experiment"]
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    table, plot = (
        (kingma_table, kingma_plot) if name == "kingma-fig1" else (zeiler_table, zeiler_plot)
    )
    text = table(out)
    paths = [folder / f"{name}.json", folder / f"{name}.md", plot(out, folder / f"{name}.png")]
    paths[0].write_text(json.dumps(out, indent=1, default=list) + "\n", encoding="utf-8")
    paths[1].write_text(text + "\n", encoding="utf-8")
    return text, paths
