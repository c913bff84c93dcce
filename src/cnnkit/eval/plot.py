"""The ROC curve as a PNG (matplotlib, imported only here and only when called)."""
from __future__ import annotations

import os
from typing import Any


def plot_roc(far: Any, tar: Any, path: str | os.PathLike[str], *, title: str) -> None:
    """Write the ROC curve (false vs true acceptance rate, symlog FAR axis) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=120)
    ax.plot(far, tar, lw=1.5)
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false acceptance rate")
    ax.set_ylabel("true acceptance rate")
    ax.set_title(title, fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
