"""Where a training run's time goes: before the first batch, each epoch, and after."""

import time

import keras


class EpochTimer(keras.callbacks.Callback):
    """Times each epoch's training batches and its validation, in seconds of wall time.

    `epochs` gets one `{"epoch", "train", "validation"}` mapping per epoch that ends. The
    times are not part of `history.csv`, which a resumed run reproduces to the last digit.
    """

    def __init__(self):
        super().__init__()
        self.epochs = []
        self.first_batch_at = None
        self._began = self._validating = None

    def on_epoch_begin(self, epoch, logs=None):
        self._began, self._validating = time.perf_counter(), None

    def on_train_batch_begin(self, batch, logs=None):
        if self.first_batch_at is None:
            self.first_batch_at = time.perf_counter()

    def on_test_begin(self, logs=None):
        if self._began is not None:
            self._validating = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        ended = time.perf_counter()
        validating = self._validating or ended
        self.epochs.append(
            {
                "epoch": epoch,
                "train": round(validating - self._began, 3),
                "validation": round(ended - validating, 3),
            }
        )
        self._began = None


class OnFirstEpochEnd(keras.callbacks.Callback):
    """Calls `action()` once, when the first epoch this process trains ends."""

    def __init__(self, action):
        super().__init__()
        self.action = action

    def on_epoch_end(self, epoch, logs=None):
        if self.action is not None:
            action, self.action = self.action, None
            action()
