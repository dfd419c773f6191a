"""A run's training and validation rows: held in memory, or streamed from disk when large.

Both kinds answer the trainer's questions the same way: the class names, the rows the
preprocessing adapts on, the batched `tf.data` pipelines, the rows the final metrics are
computed on, and what `run.yaml` records.
"""

import logging
from pathlib import Path

import numpy as np

from keras_bigmodel.data.labels import class_names_from, encode_labels
from keras_bigmodel.data.order import batches_per_pass, in_order
from keras_bigmodel.data.split import split_indices
from keras_bigmodel.data.stream import TableStream, in_validation, text_columns
from keras_bigmodel.data.tables import expand_paths, fingerprint
from keras_bigmodel.errors import UserError

log = logging.getLogger(__name__)

#: rows a streamed table's preprocessing adapts on, and its final metrics are computed on.
SAMPLE_ROWS = 100_000
#: files named in run.yaml; the fingerprint covers them all.
MAX_FILES_LISTED = 20
#: consecutive rows a streamed pipeline shuffles among.
SHUFFLE_BLOCK = 10_000


def open_training_data(recipe, settings, options):
    """Reads the data a run trains on, streaming tables above `--stream-above-mb`.

    Returns:
        An `InMemoryData` or a `StreamedData`.
    """
    if recipe.streams and _is_table(settings.data):
        size = sum(p.stat().st_size for p in expand_paths(settings.data))
        if size > settings.stream_above_mb * 2**20:
            log.info("Streaming %s (%.0f MB) from disk.", settings.data, size / 2**20)
            return StreamedData(recipe, settings, options)
    return InMemoryData(recipe, settings, options)


class InMemoryData:
    """Rows read whole into memory, split by a stratified, seeded draw."""

    def __init__(self, recipe, settings, options):
        self.recipe, self.settings, self.options = recipe, settings, options
        examples = recipe.read_examples(settings.data, options, settings.format)
        self.paths = examples.paths
        if settings.val_data:
            self.train = examples
            self.validation = recipe.read_examples(settings.val_data, options, settings.format)
        elif settings.val_split == 0:
            self.train, self.validation = examples, None
        else:
            labels = None
            if recipe.task == "classification":
                labels = np.unique(examples.targets, return_inverse=True)[1]
            train_rows, val_rows = split_indices(
                len(examples), settings.val_split, settings.seed, labels
            )
            if len(val_rows) == 0 or len(train_rows) == 0:
                empty = "validation" if len(val_rows) == 0 else "training"
                raise UserError(
                    f"--val-split {settings.val_split} leaves no rows for {empty} out of "
                    f"{len(examples)}; change it or pass --val-data."
                )
            self.train, self.validation = examples.take(train_rows), examples.take(val_rows)
        self.rows = len(examples)
        self.train_rows = len(self.train)
        self.validation_rows = len(self.validation) if self.validation else 0
        self.class_names = None
        if recipe.task == "classification":
            self.class_names = class_names_from(
                self.train.targets, self.train.source, self.train.target_name
            )

    @property
    def adapt_examples(self):
        return self.train

    def metric_examples(self):
        """The examples `metrics.json` reports on, by split name."""
        found = {"train": self.train}
        if self.validation:
            found["validation"] = self.validation
        return found

    def datasets(self, preprocessing, order, workers=1, worker_index=0):
        """Returns the endless training pipeline, in `order`, and one pass of the validation
        rows (`None` without any); with several workers, each takes its share of every
        batch."""
        batch_size = self.settings.batch_size

        def pipeline(examples, batches):
            targets = _targets(self.recipe, examples, self.class_names)
            return self.recipe.network_dataset(
                examples, targets, preprocessing, self.options, batches
            )

        train = pipeline(self.train, order.batches(len(self.train), batch_size))
        validation = None
        if self.validation:
            validation = pipeline(self.validation, in_order(len(self.validation), batch_size))
        return _shard_by_data(train), validation and _shard_by_data(validation)

    def describe(self):
        """What `run.yaml` records of the data."""
        return _describe(
            self.settings,
            self.paths,
            self.rows,
            self.train_rows,
            self.validation_rows,
            val_paths=self.validation.paths if self.settings.val_data else None,
        )


class StreamedData:
    """A table streamed from disk: statistics from one chunked pass and a bounded sample,
    validation rows chosen by a keyed hash of each row."""

    def __init__(self, recipe, settings, options):
        self.recipe, self.settings, self.options = recipe, settings, options
        self.stream = TableStream(settings.data, settings.format)
        self.columns = recipe.stream_columns(options)
        self.stream.require_columns(self.columns[:-1], recipe.input_option)
        self.stream.require_columns(self.columns[-1:], recipe.target_option)
        self.paths = self.stream.paths
        self.val_stream = None
        held_out = 0.0 if settings.val_data else settings.val_split
        counts = {"validation": 0, "labels": {}}

        def tally(chunk, first_row):
            values = text_columns(chunk, self.columns)
            if held_out:
                counts["validation"] += int(np.sum(in_validation(values, held_out, settings.seed)))
            if recipe.task == "classification":
                labels = _chunk_labels(chunk, self.columns[-1], first_row, self.stream.name)
                for label, count in zip(*np.unique(labels, return_counts=True), strict=True):
                    counts["labels"][label] = counts["labels"].get(label, 0) + int(count)

        sample, self.rows = self.stream.sample(
            self.columns, SAMPLE_ROWS, settings.seed, on_chunk=tally
        )
        self.validation_rows = counts["validation"]
        self.train_rows = self.rows - self.validation_rows
        self.class_names = None
        if recipe.task == "classification":
            self.class_names = class_names_from(
                np.asarray(list(counts["labels"]), dtype=object),
                self.stream.name,
                self.columns[-1],
            )
        examples = recipe.examples_from_frame(sample, self.stream.name, self.paths, options)
        held = np.zeros(len(examples), dtype=bool)
        if held_out:
            values = text_columns(sample, self.columns)
            held = np.asarray(in_validation(values, held_out, settings.seed))
        self.sample_train = examples.take(np.flatnonzero(~held))
        self.sample_validation = examples.take(np.flatnonzero(held)) if held.any() else None
        if settings.val_data:
            self.val_stream = TableStream(settings.val_data, settings.format)
            self.val_stream.require_columns(self.columns, recipe.input_option)

            def check_labels(chunk, first_row):
                # The streamed pipeline could only map an unknown label to nothing: name it
                # now, before training starts, as the in-memory path does.
                name, column = self.val_stream.name, self.columns[-1]
                labels = _chunk_labels(chunk, column, first_row, name)
                encode_labels(labels, self.class_names, name, column, first_row=first_row)

            val_sample, self.validation_rows = self.val_stream.sample(
                self.columns, SAMPLE_ROWS, settings.seed, on_chunk=check_labels
            )
            self.sample_validation = recipe.examples_from_frame(
                val_sample, self.val_stream.name, self.val_stream.paths, options
            )
        if self.train_rows == 0 or (held_out and self.validation_rows == 0):
            empty = "training" if self.train_rows == 0 else "validation"
            raise UserError(
                f"--val-split {settings.val_split} leaves no rows for {empty} out of "
                f"{self.rows}; change it or pass --val-data."
            )

    @property
    def adapt_examples(self):
        return self.sample_train

    def metric_examples(self):
        """Bounded samples of the training and validation rows, for `metrics.json`."""
        found = {"train": self.sample_train}
        if self.sample_validation:
            found["validation"] = self.sample_validation
        return found

    def datasets(self, preprocessing, order, workers=1, worker_index=0):
        """Streams the training rows endlessly, pass after pass from `order`'s start, each
        pass shuffled in blocks of consecutive rows, and the validation rows once. With several
        workers and at least as many shards, each worker reads its own shards; otherwise
        each takes its share of every batch."""
        import tensorflow as tf

        settings = self.settings
        held_out = 0.0 if settings.val_data else settings.val_split
        train_stream = _Shard(self.stream, workers, worker_index)
        rows = train_stream.dataset(self.columns)
        if held_out:
            rows = rows.filter(lambda *row: ~in_validation(row, held_out, settings.seed))

        # A worker reading only its own shards does not know how many batches its passes
        # hold, so a resumed run reads its way to the start batch from the first pass.
        known = None
        if not train_stream.by_file:
            known = batches_per_pass(self.train_rows, settings.batch_size)
        batches = order.stream_batches(rows, settings.batch_size, SHUFFLE_BLOCK, known)
        train = self._to_network(batches, preprocessing)
        train = train_stream.with_policy(train)
        validation = None
        if self.val_stream or held_out:
            # Validation rows are few: a worker whose shards held none would have nothing
            # to give its replicas (which crashes TensorFlow 2.21), so every worker reads
            # them all and tf.distribute hands each its share of every batch.
            val_stream = _Shard(self.val_stream or self.stream, workers=1, worker_index=0)
            rows = val_stream.dataset(self.columns)
            if not self.val_stream:
                rows = rows.filter(lambda *row: in_validation(row, held_out, settings.seed))
            batches = rows.batch(settings.batch_size)
            if workers == 1:
                # The batch count is known from the first pass, so Keras can show progress.
                count = batches_per_pass(self.validation_rows, settings.batch_size)
                batches = batches.apply(tf.data.experimental.assert_cardinality(count))
            validation = val_stream.with_policy(self._to_network(batches, preprocessing))
        return train, validation

    def _to_network(self, batches, preprocessing):
        import tensorflow as tf

        encode = _target_encoder(self.recipe.task, self.class_names)

        def to_network(*columns):
            inputs = self.recipe.stream_network_inputs(columns[:-1], preprocessing, self.options)
            return inputs, encode(columns[-1])

        batches = batches.map(to_network, num_parallel_calls=tf.data.AUTOTUNE)
        return batches.prefetch(tf.data.AUTOTUNE)

    def describe(self):
        described = _describe(
            self.settings, self.paths, self.rows, self.train_rows, self.validation_rows
        )
        described["streamed"] = True
        return described


def _chunk_labels(chunk, column, first_row, source):
    """A streamed chunk's labels as strings, as the pipeline reads them.

    Raises:
        UserError: a row without a label, named by its number in the table.
    """
    (labels,) = text_columns(chunk, [column])
    empty = np.flatnonzero(labels == "")
    if len(empty):
        raise UserError(
            f"{source}: row {first_row + int(empty[0]) + 1} has no value in label column "
            f"'{column}'; fill or drop such rows."
        )
    return labels


def _targets(recipe, examples, class_names):
    if recipe.task == "classification":
        return encode_labels(examples.targets, class_names, examples.source, examples.target_name)
    return np.asarray(examples.targets, dtype=np.float32)


def _target_encoder(task, class_names):
    import tensorflow as tf

    if task != "classification":
        return lambda values: tf.strings.to_number(values, tf.float32)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(class_names), tf.range(len(class_names), dtype=tf.int32)
        ),
        default_value=-1,
    )
    return table.lookup


class _Shard:
    """This worker's part of a stream: its own shards when there are at least as many
    shards as workers, else every shard, of whose batches tf.distribute gives it a share."""

    def __init__(self, stream, workers, worker_index):
        self.stream = stream
        self.by_file = workers > 1 and len(stream.paths) >= workers
        self.paths = stream.paths[worker_index::workers] if self.by_file else stream.paths

    def dataset(self, columns):
        return self.stream.dataset(columns, paths=self.paths)

    def with_policy(self, dataset):
        import tensorflow as tf

        # Sharded by hand already, or split batch by batch by tf.distribute.
        policy = tf.data.experimental.AutoShardPolicy
        return _with_policy(dataset, policy.OFF if self.by_file else policy.DATA)


def _shard_by_data(dataset):
    import tensorflow as tf

    # Rows held in memory have no files to split by: every worker takes its share of
    # each batch.
    return _with_policy(dataset, tf.data.experimental.AutoShardPolicy.DATA)


def _with_policy(dataset, policy):
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = policy
    return dataset.with_options(options)


def _is_table(data):
    return not Path(data).is_dir()


def _describe(settings, paths, rows, train_rows, validation_rows, val_paths=None):
    described = {
        "path": settings.data,
        # A folder of images has thousands of files: name the first, count them all.
        "files": [str(p) for p in paths[:MAX_FILES_LISTED]],
        "file_count": len(paths),
        "sha256": fingerprint(paths),
        "rows": rows,
        "train_rows": train_rows,
        "validation_rows": validation_rows,
    }
    if settings.val_data:
        described["validation"] = {
            "path": settings.val_data,
            # The files read, which for a folder of images are not a glob's expansion.
            "sha256": fingerprint(val_paths or expand_paths(settings.val_data)),
        }
    return described
