"""The order training rows are visited in: shuffled anew each epoch, and the same order
under every `tf.distribute` strategy.

`Dataset.shuffle(seed=...)` does not give that: distributing a dataset rewrites its graph,
and the rewritten shuffle draws another order (seen with MirroredStrategy on TensorFlow
2.21), so a run on two devices would not see the batches a run on one device sees. Here
each epoch's order is a stateless permutation keyed by (seed, epoch): it depends on nothing
but those two numbers, and a resumed run replays exactly the epochs it missed.
"""


class EpochOrder:
    """Per-epoch permutations of row indices; `callback()` tells it which epoch runs."""

    def __init__(self, seed):
        import tensorflow as tf

        self.seed = seed
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="data_epoch")

    def indices(self, num_rows):
        """Returns a dataset of `0 .. num_rows - 1` in the order of the current epoch.

        The permutation is drawn when an epoch's iteration starts, so one dataset serves
        every epoch of `fit()`.
        """
        import tensorflow as tf

        def permutation(_):
            key = tf.stack([tf.constant(self.seed, tf.int64), self.epoch.read_value()])
            rows = tf.random.experimental.stateless_shuffle(
                tf.range(num_rows, dtype=tf.int64), seed=key
            )
            return tf.data.Dataset.from_tensor_slices(rows)

        rows = tf.data.Dataset.range(1).flat_map(permutation)
        return rows.apply(tf.data.experimental.assert_cardinality(num_rows))

    def callback(self):
        """Returns the Keras callback that moves the order on at each epoch's start."""
        import keras

        epoch = self.epoch

        class NextEpochOrder(keras.callbacks.Callback):
            def on_epoch_begin(self, index, logs=None):
                epoch.assign(index)

        return NextEpochOrder()
