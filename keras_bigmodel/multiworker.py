"""Two corrections that let Keras 3's `fit()` run under MultiWorkerMirroredStrategy.

Keras 3.15's TensorFlow trainer fails under `tf.distribute.MultiWorkerMirroredStrategy`
in two places (reported upstream as tensorflow#72388 and keras#20585):

1. Before the first step, `TensorFlowTrainer._maybe_symbolic_build` builds the model from
   the first distributed batch by reducing it across workers with
   `strategy.reduce("MEAN", batch, axis=None)`; the collective reduction of a `PerReplica`
   input batch raises "Attempt to convert a value (PerReplica...) ... to a Tensor". The
   build needs only shapes and dtypes, which any one replica's batch has.
2. After each step, `reduce_per_replica` reduces every output under a multi-worker
   strategy with `strategy.reduce("MEAN", value, axis=0)`, but the loss and metric results
   are scalars: "Invalid reduction dimension 0 for input with 0 dimensions". A scalar
   must be reduced with `axis=None`.

`keras_multiworker_fixes` applies both corrections while `fit()` runs, only under a
multi-worker strategy, and restores Keras as it was afterwards. `tests/test_multiworker.py`
shows that training fails without them, so the day Keras fixes the bugs that test says
this module can go.
"""

import contextlib

#: the corrections, by name: the model build and the per-step reduction.
CORRECTIONS = ("build", "reduce")


@contextlib.contextmanager
def keras_multiworker_fixes(strategy, corrections=CORRECTIONS):
    """Corrects Keras' two multi-worker reductions for the duration of the block.

    Args:
        strategy: the run's strategy; anything but a `MultiWorkerMirroredStrategy` leaves
            Keras untouched.
        corrections: which corrections to apply; the tests leave one out to show that
            each is needed.
    """
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        yield
        return
    original_reduce = tf_trainer.reduce_per_replica
    original_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not isinstance(
            strategy, tf.distribute.MultiWorkerMirroredStrategy
        ):
            return original_reduce(values, strategy, reduction)

        def mean(value):
            first = strategy.experimental_local_results(value)[0]
            return strategy.reduce("MEAN", value, axis=0 if first.shape.rank else None)

        return tf.nest.map_structure(mean, values)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None and data_batch is None and self._distribute_strategy:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda x: self.distribute_strategy.experimental_local_results(x)[0],
                    next(batches),
                )
                break
        return original_build(self, data_batch=data_batch)

    if "reduce" in corrections:
        tf_trainer.reduce_per_replica = reduce_per_replica
    if "build" in corrections:
        tf_trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    try:
        yield
    finally:
        tf_trainer.reduce_per_replica = original_reduce
        tf_trainer.TensorFlowTrainer._maybe_symbolic_build = original_build
