"""Merging concurrent predict requests into one model call, as TensorFlow Serving's
`--enable_batching` does.

A model call has a fixed cost (Python, graph dispatch) that a batch of 8 rows pays once
instead of 8 times. Requests wait in one queue; a worker thread takes the first, then
every request already queued for the same servable and signature (and, with a timeout,
those arriving within it) up to `max_batch_size` rows, concatenates their inputs along
the batch axis, runs the model once and splits the outputs back by rows. With a timeout
of 0 nothing waits: requests merge only while the model is busy, so a lone request pays
no added latency. A request larger than `max_batch_size` runs alone and whole.

A merged call that fails with a `ServingError` (one request's image does not decode, say)
is run again request by request, so only the request at fault gets the error. Requests
merge only when their inputs agree in every dimension but the batch.
"""

import asyncio
import collections
import queue
import threading
import time

import numpy as np

from keras_bigmodel.servables import ServingError

_STOP = object()


class _Task:
    __slots__ = ("servable", "signature", "inputs", "rows", "future", "loop")

    def __init__(self, servable, signature, inputs, rows, future, loop):
        self.servable = servable
        self.signature = signature
        self.inputs = inputs
        self.rows = rows
        self.future = future
        self.loop = loop

    def same_call(self, other):
        """Whether `other` can join this request's model call."""
        return (
            self.servable is other.servable
            and self.signature == other.signature
            and all(
                values.shape[1:] == other.inputs[name].shape[1:]
                for name, values in self.inputs.items()
            )
        )


class Batcher:
    """Runs model calls on one worker thread, off the event loop, merging concurrent
    requests when `enabled`. One call at a time: TensorFlow runs each on every core.

    Args:
        enabled: merge concurrent requests; when False each request is one model call.
        max_batch_size: the most rows one merged call takes.
        timeout_ms: how long the first request of a batch waits for others when the
            queue holds fewer rows than `max_batch_size`; 0 merges only what is queued.
    """

    def __init__(self, enabled=True, max_batch_size=64, timeout_ms=0.0):
        self.enabled = enabled
        self.max_batch_size = max_batch_size
        self.timeout = timeout_ms / 1000.0
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="model-calls", daemon=True)
        #: how many model calls ran and how many requests they answered.
        self.calls = 0
        self.requests = 0

    def start(self):
        self._thread.start()

    def stop(self, timeout=5):
        """Lets the worker finish the calls queued so far, then ends it."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    async def predict(self, servable, signature, inputs, rows):
        """The outputs of `servable`'s `signature` (its resolved name) on `inputs` (name to
        array, `rows` rows each), computed on the worker thread, possibly together with
        other requests."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Task(servable, signature, inputs, rows, future, loop))
        return await future

    def _work(self):
        held = collections.deque()
        while True:
            task = held.popleft() if held else self._queue.get()
            if task is _STOP:
                return
            batch = [task]
            stop = self._gather(batch, held) if self.enabled else False
            try:
                self._run(batch)
            except Exception as error:  # a bug: answer every request, keep the worker
                failure = ServingError(500, f"internal error: {type(error).__name__}: {error}")
                for task in batch:
                    _answer(task, None, failure)
            if stop:
                return

    def _gather(self, batch, held):
        """Adds queued requests for the same call to `batch`; returns True when the stop
        sentinel was met (the batch still runs)."""
        rows = batch[0].rows
        deadline = time.monotonic() + self.timeout
        while rows < self.max_batch_size:
            try:
                if held:
                    task = held.popleft()
                else:
                    remaining = deadline - time.monotonic()
                    task = (
                        self._queue.get(timeout=remaining)
                        if remaining > 0
                        else self._queue.get_nowait()
                    )
            except queue.Empty:
                break
            if task is _STOP:
                return True
            if not task.same_call(batch[0]) or rows + task.rows > self.max_batch_size:
                held.appendleft(task)
                break
            batch.append(task)
            rows += task.rows
        return False

    def _run(self, batch):
        self.calls += 1
        self.requests += len(batch)
        if len(batch) == 1:
            _answer(batch[0], *_call(batch[0]))
            return
        first = batch[0]
        merged = {
            name: np.concatenate([task.inputs[name] for task in batch]) for name in first.inputs
        }
        outputs, error = _call(first, merged)
        if isinstance(error, ServingError) and error.status == 400:
            # One request's bad value fails the whole call: run them one by one.
            for task in batch:
                _answer(task, *_call(task))
            return
        if error is not None:
            for task in batch:
                _answer(task, None, error)
            return
        total = sum(task.rows for task in batch)
        for name, values in outputs.items():
            if values.ndim == 0 or len(values) != total:
                error = ServingError(
                    500,
                    f"output '{name}' of shape {list(values.shape)} does not have the "
                    f"{total} input rows first, so merged requests cannot be split back; "
                    "serve with --no-batching",
                )
                for task in batch:
                    _answer(task, None, error)
                return
        start = 0
        for task in batch:
            end = start + task.rows
            _answer(task, {name: values[start:end] for name, values in outputs.items()}, None)
            start = end


def _call(task, inputs=None):
    try:
        return task.servable.predict(
            task.signature, task.inputs if inputs is None else inputs
        ), None
    except ServingError as error:
        return None, error
    except Exception as error:  # a bug: the request gets a 500, the worker keeps going
        return None, ServingError(500, f"internal error: {type(error).__name__}: {error}")


def _answer(task, outputs, error):
    try:
        task.loop.call_soon_threadsafe(_settle, task.future, outputs, error)
    except RuntimeError:  # the event loop has closed: the server stopped, nobody waits
        pass


def _settle(future, outputs, error):
    # The client may have gone (its request task cancelled) while the model ran.
    if future.done():
        return
    if error is None:
        future.set_result(outputs)
    else:
        future.set_exception(error)
