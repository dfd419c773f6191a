"""The training state a run checkpoints: what it holds, the callback that saves it, reading it.

Keras' `BackupAndRestore` keeps the weights, the optimizer and the epoch, and replays an
interrupted epoch from its start. A resumed run here must end bitwise equal to one that was
never interrupted, so a checkpoint holds everything the next batch depends on:

- every model variable, the random-seed states of dropout and augmentation included;
- every optimizer variable (moments, and the iteration count the learning-rate schedule
  reads);
- the running sums of the loss and metrics of an epoch stopped part-way, so its history
  row comes out as if it had not been;
- the epoch, and the batch within it, from which `keras_bigmodel.data.order` replays the
  very batches that were missed;
- early stopping's state: the best value, its epoch, the epochs waited, the best weights;
- the history so far, from which `history.csv` is written.

It is one `.npz` file (no pickled objects), written beside its final name and renamed onto
it, so a kill at any moment leaves either the previous checkpoint or the new one.
"""

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from keras_bigmodel.errors import TrainingInterrupted, UserError
from keras_bigmodel.runs import atomic_path, write_text

log = logging.getLogger(__name__)

STATE_FILE = "training_state.npz"


@dataclass
class Progress:
    """Where a run stands, and what early stopping knows so far.

    Attributes:
        epoch: epochs completed.
        step: batches completed in the epoch under way (0 between epochs).
        history: one mapping of logs per completed epoch.
        best: the best monitored value so far (`None` before the first epoch).
        best_epoch: the epoch (0-based) that reached it.
        wait: epochs since the last improvement.
        stopped: whether early stopping ended the run.
    """

    epoch: int = 0
    step: int = 0
    history: list = field(default_factory=list)
    best: float | None = None
    best_epoch: int = -1
    wait: int = 0
    stopped: bool = False


@dataclass
class Checkpoint:
    """A checkpoint read from disk: its progress and the saved variable values."""

    progress: Progress
    arrays: dict

    def values(self, group):
        """The saved values of one group (`model`, `optimizer`, `metrics`, `best`)."""
        count = self.arrays.get(f"{group}_count")
        if count is None:
            return None
        return [self.arrays[f"{group}/{i}"] for i in range(int(count))]


def state_path(directory):
    """The checkpoint file of a run's `checkpoints/` folder."""
    return Path(directory) / STATE_FILE


def read_checkpoint(directory):
    """Reads the checkpoint in `directory`, or returns `None` if there is none.

    Raises:
        UserError: the file exists but cannot be read.
    """
    path = state_path(directory)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        progress = Progress(**json.loads(str(arrays.pop("progress"))))
    except Exception as exc:  # a damaged file raises any of zipfile's, NumPy's or JSON's
        raise UserError(
            f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc}); "
            "train the run again with --overwrite."
        ) from exc
    return Checkpoint(progress=progress, arrays=arrays)


def restore_variables(variables, values, group, path):
    """Assigns saved values to variables, after checking that they fit one another.

    Raises:
        UserError: the checkpoint holds a different number or shape of values: it belongs
            to another model.
    """
    if len(values) != len(variables) or any(
        tuple(v.shape) != value.shape for v, value in zip(variables, values, strict=False)
    ):
        raise UserError(
            f"{path}: the checkpoint's {group} state does not fit this model "
            f"({len(values)} saved values for {len(variables)} variables); "
            "train the run again with --overwrite."
        )
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)


class TrainingCheckpoint(keras.callbacks.Callback):
    """Saves the training state at every epoch's end, every `every_steps` batches, and at
    the batch boundary where a stop signal arrived; gives a resumed epoch back its metric
    sums (the trainer restores the weights and the optimizer before `fit()`); and does
    early stopping, whose state it saves with the rest.

    Args:
        directory: the run's `checkpoints/` folder.
        progress: where training starts (a fresh `Progress`, or the checkpoint's).
        steps_per_epoch: batches in a whole epoch.
        stop: a `keras_bigmodel.signals.StopRequest`, polled at each batch boundary.
        every_steps: also save every this many batches (0: only at epochs' ends).
        patience: early stopping's patience in epochs (0: off).
        monitor: the logged value early stopping watches (lower is better).
        restored: the checkpoint being resumed, whose metric sums an epoch stopped
            part-way needs back.
        write: whether this process writes (the chief of a multi-worker run does; the
            other workers compute the same state and keep it to themselves).
        history_file: where the history is written at each epoch's end.
        on_save: called with the `Progress` after each checkpoint is written.
    """

    def __init__(
        self,
        directory,
        progress,
        *,
        steps_per_epoch,
        stop,
        every_steps=0,
        patience=0,
        monitor="val_loss",
        restored=None,
        write=True,
        history_file=None,
        on_save=None,
    ):
        super().__init__()
        self.directory = Path(directory)
        self.progress = progress
        self.steps_per_epoch = steps_per_epoch
        self.stop = stop
        self.every_steps = every_steps
        self.patience = patience
        self.monitor = monitor
        self.write = write
        self.history_file = history_file
        self.on_save = on_save
        self.best_weights = restored.values("best") if restored else None
        #: ends the `fit()` under way after this epoch: the one a resumed run finishes on
        #: its remaining batches, before whole epochs go on in a `fit()` of their own.
        self.end_fit_after = None
        self._metric_sums = restored.values("metrics") if restored else None

    @property
    def global_step(self):
        """Batches trained since the run began."""
        return self.progress.epoch * self.steps_per_epoch + self.progress.step

    def on_epoch_begin(self, epoch, logs=None):
        if self._metric_sums is not None and self.progress.step:
            # `fit()` has just reset the metrics: give back the sums of the batches this
            # epoch had already trained on before the interruption.
            restore_variables(
                self.model.metrics_variables, self._metric_sums, "metrics", self.directory
            )
        self._metric_sums = None
        self._stop_if_asked()

    def on_train_batch_end(self, batch, logs=None):
        self.progress.step += 1
        if self.progress.step >= self.steps_per_epoch:
            # The epoch's last batch: its end, which follows, checkpoints and stops. A
            # checkpoint here would hold a whole epoch without its validation and history.
            return
        due = bool(self.every_steps) and self.global_step % self.every_steps == 0
        if due:
            self.save()
        self._stop_if_asked(saved=due)

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}}
        self.progress.history.append(row)
        self._early_stopping(epoch, row)
        self.progress.epoch, self.progress.step = epoch + 1, 0
        if self.end_fit_after == epoch:
            self.model.stop_training, self.end_fit_after = True, None
        self.save()
        if self.write and self.history_file:
            write_history(self.history_file, self.progress.history)
        self._stop_if_asked(saved=True)

    def _early_stopping(self, epoch, row):
        if not self.patience:
            return
        current = row.get(self.monitor)
        if current is None:
            raise RuntimeError(f"early stopping watches '{self.monitor}', which is not logged")
        state = self.progress
        state.wait += 1
        if state.best is None or current < state.best:
            state.best, state.best_epoch, state.wait = current, epoch, 0
            self.best_weights = self.model.get_weights()
        elif state.wait >= self.patience and epoch > 0:
            state.stopped = True
            self.model.stop_training = True

    def _stop_if_asked(self, saved=False):
        signum = self.stop.agreed()
        if signum is None:
            return
        if not saved:
            self.save()
        raise TrainingInterrupted(signum, epoch=self.progress.epoch, step=self.progress.step)

    def save(self):
        """Writes the training state as it is now (all workers compute it; one writes)."""
        arrays = {}
        groups = {
            "model": self.model.variables,
            "optimizer": self.model.optimizer.variables,
        }
        if self.progress.step:
            groups["metrics"] = self.model.metrics_variables
        for group, variables in groups.items():
            _add_group(arrays, group, [np.array(v) for v in variables])
        if self.best_weights is not None:
            _add_group(arrays, "best", self.best_weights)
        arrays["progress"] = np.array(json.dumps(asdict(self.progress)))
        with self.stop.deferred():
            if self.write:
                _write_npz(state_path(self.directory), arrays)
                if self.on_save:
                    self.on_save(self.progress)


def _add_group(arrays, group, values):
    arrays[f"{group}_count"] = np.array(len(values))
    for i, value in enumerate(values):
        arrays[f"{group}/{i}"] = np.asarray(value)


def _write_npz(path, arrays):
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        np.savez(file, **arrays)


def write_history(path, history):
    """Writes the per-epoch history as CSV: `epoch`, then the logged values by name."""
    frame = pd.DataFrame(history)
    columns = ["epoch"] + sorted(c for c in frame.columns if c != "epoch")
    write_text(path, frame[columns].to_csv(index=False))
