"""The PNG figures a run and an evaluation write."""

import threading

import numpy as np

from keras_bigmodel.runs import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def import_in_background():
    """Starts importing matplotlib (0.3-0.4 s on 2 cores) on a thread of its own, so that
    a figure drawn later does not wait for it: training calls this once its first epoch
    is done, and the epochs after it leave Python's lock free most of the time, while
    TensorFlow's kernels run. A figure drawn before the import is done waits for it."""

    def load():
        try:
            _pyplot()
        except Exception:  # noqa: BLE001 - drawing imports it again and reports the error
            pass

    threading.Thread(target=load, name="import-matplotlib", daemon=True).start()


def _figure(*args, **kwargs):
    return _pyplot().subplots(*args, **kwargs)


def _save(fig, path):
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def learning_curves(path, history):
    """Plots each metric per epoch, training beside validation.

    Args:
        path: the PNG to write.
        history: a mapping of metric name (`loss`, `val_loss`, ...) to per-epoch values.
    """
    names = [name for name in history if not name.startswith("val_") and name != "learning_rate"]
    fig, axes = _figure(1, len(names), figsize=(5 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        epochs = np.arange(1, len(history[name]) + 1)
        ax.plot(epochs, history[name], marker="o", label="training")
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], marker="o", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, path)


def confusion_matrix(path, matrix, class_names):
    """Draws a confusion matrix: rows are true classes, columns predicted ones."""
    matrix = np.asarray(matrix)
    size = max(4, 0.6 * len(class_names) + 2)
    fig, ax = _figure(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, col), count in np.ndenumerate(matrix):
        color = "white" if count > threshold else "black"
        ax.text(col, row, str(count), ha="center", va="center", color=color)
    _save(fig, path)


def predicted_vs_actual(path, actual, predicted):
    """Scatters predicted against actual values, with the line where they agree."""
    actual = np.asarray(actual, dtype=float)
    predicted = np.asarray(predicted, dtype=float).reshape(actual.shape)
    fig, ax = _figure(figsize=(5, 5))
    ax.scatter(actual, predicted, s=4, alpha=0.4)
    low, high = (
        np.nanmin([actual.min(), predicted.min()]),
        np.nanmax([actual.max(), predicted.max()]),
    )
    ax.plot([low, high], [low, high], color="black", linewidth=1)
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    _save(fig, path)
