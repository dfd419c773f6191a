"""The order training rows are visited in: a stream of batches that depends on nothing but
the seed and the batch's place in the run, so a resumed run sees the very batches it missed.

Pass `p` over the data (one epoch, unless `--steps-per-epoch` says otherwise) visits the rows
in a stateless permutation keyed by `(seed, p)` (for a stream too large to hold, of each
block of rows). `Dataset.shuffle(seed=...)` would not do:
its order depends on how often the dataset was iterated in this process, and distributing a
dataset rewrites its graph so that the rewritten shuffle draws another order (seen with
MirroredStrategy on TensorFlow 2.21). The stream starts at `start_at(batch)`, read when an
iterator over it begins, so one dataset serves a fresh run and a resumed one.

Given each row's length (the tokens of a text), a pass groups rows of similar length into
batches: its permutation is cut into windows of `LENGTH_WINDOW_BATCHES` batches, each window
sorted by length (rows of equal length keep their random order), and the full batches of
the pass shuffled (keyed by the same seed and pass). Batches padded to their longest row
then carry little padding, while each batch still holds rows drawn from across the data.
"""

import math

from keras_bigmodel.graph import plain

INT64_MAX = 2**63 - 1
#: batches whose rows are sorted by length together: the larger, the less padding, and the
#: more each batch's rows resemble each other in length.
LENGTH_WINDOW_BATCHES = 32


class TrainingOrder:
    """An endless stream of training batches, pass after pass, from a chosen start."""

    def __init__(self, seed):
        import tensorflow as tf

        self.seed = seed
        # Created outside any distribution strategy's scope: the input pipeline reads it on
        # the host.
        self.start = tf.Variable(0, dtype=tf.int64, trainable=False, name="data_start_batch")

    def start_at(self, batch):
        """Makes iterators created from now on begin at this batch of the run (0-based)."""
        self.start.assign(batch)

    def passes(self, one_pass, batches_per_pass=None):
        """Chains `one_pass(p)` for `p = 0, 1, 2, ...` from the start batch.

        Args:
            one_pass: returns the dataset of batches of pass `p` (an int64 scalar tensor).
            batches_per_pass: the batches in each pass, if known: the stream then begins at
                the start batch's pass instead of reading the passes before it.

        Returns:
            An endless `tf.data.Dataset` of batches.
        """
        import tensorflow as tf

        @plain
        def from_start(_):
            start = self.start.read_value()
            if batches_per_pass:
                first, skip = start // batches_per_pass, start % batches_per_pass
            else:
                first, skip = tf.constant(0, tf.int64), start
            return tf.data.Dataset.range(first, INT64_MAX).flat_map(one_pass).skip(skip)

        return tf.data.Dataset.range(1).flat_map(from_start)

    def batches(self, num_rows, batch_size, lengths=None):
        """Returns the endless stream of row-index batches (int64 vectors) over `num_rows`
        rows: every pass a new permutation, its last batch possibly short.

        Args:
            num_rows: the rows.
            batch_size: rows per batch.
            lengths: each row's length (NumPy integers), to batch rows of similar length
                together; `None` batches the permutation as it is.
        """
        import tensorflow as tf

        if lengths is not None:
            lengths = tf.constant(lengths, tf.int64)

        @plain
        def one_pass(index):
            key = tf.stack([tf.constant(self.seed, tf.int64), index])
            rows = tf.random.experimental.stateless_shuffle(
                tf.range(num_rows, dtype=tf.int64), seed=key
            )
            if lengths is not None:
                rows = tf.gather(rows, by_length(tf.gather(lengths, rows), batch_size, key))
            return tf.data.Dataset.from_tensor_slices(rows).batch(batch_size)

        return self.passes(one_pass, batches_per_pass(num_rows, batch_size))

    def stream_batches(self, rows, batch_size, block_rows, batches_in_pass=None, length_of=None):
        """Returns the endless stream of batches of a dataset of rows too large to permute
        whole: each pass permutes every block of `block_rows` consecutive rows, keyed by
        `(seed, pass, block)`.

        Args:
            rows: a dataset of rows, each a tuple of scalars.
            batch_size: rows per batch.
            block_rows: rows permuted together; memory holds one block.
            batches_in_pass: the batches in one pass, if known.
            length_of: given a block's columns (a tuple of vectors), each row's length, to
                batch rows of similar length together within the block; or `None`.
        """
        import tensorflow as tf

        if length_of is not None:
            # Whole batches in every block but the last, so batching the rows again after
            # the blocks keeps the batches `by_length` made.
            block_rows = max(batch_size, block_rows // batch_size * batch_size)

        @plain
        def one_pass(index):
            key = tf.stack([tf.constant(self.seed, tf.int64), index])

            @plain
            def permute(block, columns):
                block_key = tf.random.experimental.stateless_fold_in(key, block)
                count = tf.shape(columns[0], out_type=tf.int64)[0]
                order = tf.random.experimental.stateless_shuffle(tf.range(count), seed=block_key)
                columns = tuple(tf.gather(column, order) for column in columns)
                if length_of is not None:
                    grouped = by_length(length_of(columns), batch_size, block_key)
                    columns = tuple(tf.gather(column, grouped) for column in columns)
                return columns

            blocks = rows.batch(block_rows).map(plain(lambda *columns: columns)).enumerate()
            shuffled = blocks.map(permute).unbatch()
            return shuffled.batch(batch_size)

        return self.passes(one_pass, batches_in_pass)


def by_length(lengths, batch_size, key):
    """Returns an order of the rows (positions into `lengths`, an int64 vector in random
    order) whose consecutive batches hold rows of similar length.

    Each window of `LENGTH_WINDOW_BATCHES` batches is sorted by length, stably; the full
    batches are then shuffled, keyed by `key`, and a short one stays last, so batching the
    result in `batch_size` rows gives exactly these batches.
    """
    import tensorflow as tf

    lengths = tf.cast(lengths, tf.int64)
    count = tf.size(lengths, out_type=tf.int64)
    window = tf.range(count, dtype=tf.int64) // (batch_size * LENGTH_WINDOW_BATCHES)
    span = tf.reduce_max(tf.concat([lengths, [0]], axis=0)) + 1
    positions = tf.argsort(window * span + lengths, stable=True)
    full = count // batch_size
    batch_key = tf.random.experimental.stateless_fold_in(key, 1)
    batches = tf.concat(
        [
            tf.random.experimental.stateless_shuffle(tf.range(full), seed=batch_key),
            tf.range(full, -(-count // batch_size)),
        ],
        axis=0,
    )
    taken = tf.reshape(
        batches[:, None] * batch_size + tf.range(batch_size, dtype=tf.int64)[None, :], [-1]
    )
    return tf.gather(positions, tf.boolean_mask(taken, taken < count))


def in_order(num_rows, batch_size, lengths=None):
    """Returns one pass of row-index batches (validation, scoring): in row order, or, given
    each row's length, from the shortest rows to the longest."""
    import numpy as np
    import tensorflow as tf

    if lengths is None:
        return tf.data.Dataset.range(num_rows).batch(batch_size)
    rows = np.argsort(np.asarray(lengths), kind="stable").astype(np.int64)
    return tf.data.Dataset.from_tensor_slices(rows).batch(batch_size)


def batches_per_pass(num_rows, batch_size):
    """The batches one pass over `num_rows` rows takes, the last one possibly short."""
    return max(1, math.ceil(num_rows / batch_size))
