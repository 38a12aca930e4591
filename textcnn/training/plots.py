"""PNG plots: training curves beside metrics.json, a confusion matrix beside an eval report.

matplotlib is an optional extra (`pip install 'textcnn[plots]'`): without it a plot is skipped
with a warning and the run goes on.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from textcnn import storage

log = logging.getLogger(__name__)


def _pyplot() -> Any:
    """pyplot with the Agg backend, or None without matplotlib. Imported here, not at the top: it is
    optional, and a module-level import would set the backend for every importer of training."""
    try:
        import matplotlib
    except ImportError:
        log.warning("matplotlib is not installed (pip install 'textcnn[plots]'): no plot written")
        return None
    matplotlib.use("Agg")   # files only: no display on cluster nodes
    import matplotlib.pyplot as plt
    return plt


def _save(fig: Any, plt: Any, uri: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    storage.write_bytes(uri, buf.getvalue())
    log.debug("plot written to %s", uri)
    return uri


def training_curves(history: list[dict[str, Any]], uri: str, chosen: int | None = None) -> str | None:
    """Train/validation loss and validation accuracy/macro-F1 per epoch, the chosen epoch (the one
    exported, or whose count the refit trained for) marked; the written uri or None."""
    plt = _pyplot()
    if plt is None or not history:
        return None
    epochs = [h["epoch"] + 1 for h in history]          # counted from 1, as people count them
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    loss_ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    loss_ax.plot(epochs, [h["val_loss"] for h in history], "o-", label="validation")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    acc_ax.plot(epochs, [h["val_acc"] for h in history], "o-", label="accuracy")
    acc_ax.plot(epochs, [h["val_macro_f1"] for h in history], "o-", label="macro-F1")
    acc_ax.set(xlabel="epoch", title="validation")
    for ax in (loss_ax, acc_ax):
        if chosen is not None:
            ax.axvline(chosen + 1, color="grey", linestyle="--", label=f"chosen (epoch {chosen + 1})")
        ax.legend()
        ax.grid(alpha=0.3)
        ax.set_xticks(epochs if len(epochs) <= 20 else epochs[::len(epochs) // 10])   # whole epochs only
    return _save(fig, plt, uri)


def confusion_matrix(report: dict[str, Any], uri: str) -> str | None:
    """The report's confusion matrix (rows: true class) as a heat map with counts."""
    plt = _pyplot()
    if plt is None or "confusion_matrix" not in report:
        return None
    cm, labels = report["confusion_matrix"], report["labels"]
    size = 1.0 + 0.6 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(cm, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title=f"accuracy {report['accuracy']:.4f}")
    peak = max(max(row) for row in cm) or 1
    for i, row in enumerate(cm):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center",
                    color="white" if count > peak / 2 else "black")
    return _save(fig, plt, uri)
