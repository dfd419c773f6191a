"""Stopping a run cleanly on SIGINT (Ctrl-C) and SIGTERM (what CI runners, Kubernetes, Slurm
and preemptible machines send first).

While training runs, a signal only asks it to stop: the checkpoint callback saves at the
next batch boundary and raises `TrainingInterrupted` there. Before and after training, a
signal raises `TrainingInterrupted` at once, since nothing is being checkpointed then.
A signal never interrupts a checkpoint being written: it waits for the write to finish.
"""

import contextlib
import logging
import signal
import threading

from keras_bigmodel.errors import TrainingInterrupted

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """The signal that asked this run to stop, if any, and how to act on it."""

    def __init__(self):
        self.signum = None
        self._deferred = 0
        self._strategy = None

    @contextlib.contextmanager
    def deferred(self):
        """Within the block a signal only records its request; leaving the outermost such
        block with a request pending raises `TrainingInterrupted`."""
        self._deferred += 1
        try:
            yield
        finally:
            self._deferred -= 1
        if not self._deferred and self.signum is not None:
            raise TrainingInterrupted(self.signum)

    @contextlib.contextmanager
    def shielded(self):
        """Within the block signals are recorded and then dropped: for the last steps of a
        run, after which there is nothing left to stop."""
        self._deferred += 1
        try:
            yield
        finally:
            self._deferred -= 1
            self.signum = None

    @contextlib.contextmanager
    def during_training(self, strategy=None):
        """Within the block signals are acted on at batch boundaries, by the checkpoint
        callback, which all workers of a multi-worker `strategy` do at the same step."""
        self._strategy = strategy
        try:
            with self.deferred():
                yield
        finally:
            self._strategy = None

    def agreed(self):
        """The signal to stop on now, or `None`. Under a multi-worker strategy every worker
        calls this at every batch boundary, and all stop if any one was signalled."""
        import tensorflow as tf

        strategy = self._strategy
        if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return self.signum
        flag = tf.constant(0 if self.signum is None else int(self.signum), tf.int32)
        total = strategy.reduce("SUM", strategy.run(lambda: tf.identity(flag)), axis=None)
        if int(total) == 0:
            return None
        return self.signum or signal.SIGTERM

    def install(self):
        """Makes this request the handler of SIGINT and SIGTERM (again).

        TensorFlow's coordination service, which MultiWorkerMirroredStrategy starts, sets a
        SIGTERM handler of its own in C++ that hides Python's: installing again after
        creating a strategy puts this one back in front.
        """
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                signal.signal(signum, self._handle)

    def _handle(self, signum, frame):
        again = self.signum is not None
        self.signum = self.signum or signum
        if not self._deferred:
            raise TrainingInterrupted(signum)
        if again:
            log.warning("Still stopping: the checkpoint is written at the end of this batch.")
        else:
            log.warning(
                "%s: stopping at the end of this batch, after saving a checkpoint.",
                signal.Signals(signum).name,
            )


@contextlib.contextmanager
def stop_signals():
    """Handles SIGINT and SIGTERM for the block; yields its `StopRequest`.

    The previous handlers come back afterwards. Off the main thread (where Python cannot
    set handlers) signals keep their usual effect.
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    request.install()
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
