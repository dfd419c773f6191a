"""Tables a run trains on: held in memory, or streamed from disk when large.

`TableReader` is the base of the readers of tables (`text_table`, `feature_table`): it
says which columns hold the inputs and the target and how a frame of them becomes
`Examples`; this module does the rest the same way for both. Both kinds of training data
answer the trainer the same way: the class names, the rows preprocessing adapts on, the
batched `tf.data` pipelines, the rows the final metrics are computed on, and what
`run.yaml` records.
"""

import logging
from pathlib import Path

import numpy as np

from keras_bigmodel.data.labels import class_names_from, encode_labels
from keras_bigmodel.data.order import batches_per_pass, in_order
from keras_bigmodel.data.reader import Reader, TrainingData, metric_rows
from keras_bigmodel.data.split import split_indices
from keras_bigmodel.data.stream import CHUNK_ROWS, TableStream, in_validation, text_columns
from keras_bigmodel.data.tables import expand_paths, fingerprint, read_table
from keras_bigmodel.errors import UserError
from keras_bigmodel.graph import plain

log = logging.getLogger(__name__)

#: rows a streamed table's preprocessing adapts on, and its final metrics are computed on.
SAMPLE_ROWS = 100_000
#: files named in run.yaml; the fingerprint covers them all.
MAX_FILES_LISTED = 20
#: consecutive rows a streamed pipeline shuffles among.
SHUFFLE_BLOCK = 10_000


class TableReader(Reader):
    """A reader of tables: subclasses say which columns are read and how."""

    def columns(self, options, layout):
        """The columns read: `(inputs, target)`, a list and a name."""
        raise NotImplementedError

    def infer_layout(self, frame, options, source):
        """What the training table's first rows say about the inputs (`None` if nothing)."""
        return None

    def examples_from_frame(
        self, frame, source, paths, options, layout, with_targets=True, first_row=0
    ):
        """Turns a frame holding `columns()` into `Examples`, checking every cell.

        `first_row` counts the table's rows before this frame (a chunk of a stream), so a
        message names the table's row. A regression's rows without a target stay, with
        NaN targets (see `without_missing_targets`).
        """
        raise NotImplementedError

    def stream_inputs(self, columns, options, layout):
        """Maps a batch of input columns (string tensors, in `columns()` order, as a
        stream reads them) to the inputs `Examples` holds for them, as tensors."""
        raise NotImplementedError

    def statistics(self, options, layout):
        """Returns an accumulator of statistics over every training row (see
        `feature_table.FeatureStatistics`), or `None` when this kind needs none."""
        return None

    def read_table_examples(
        self, data, options, layout=None, fmt=None, with_targets=True, nrows=None
    ):
        """Reads a table whole; returns `(examples, layout)`, the layout inferred from
        it when none is given."""
        table = read_table(data, fmt, nrows)
        if layout is None:
            layout = self.infer_layout(table.frame, options, table.name)
        inputs, target = self.columns(options, layout)
        table.require_columns(inputs, self.input_option)
        if with_targets:
            table.require_columns([target], self.target_option)
        examples = self.examples_from_frame(
            table.frame, table.name, table.paths, options, layout, with_targets
        )
        return without_missing_targets(examples) if with_targets else examples, layout

    def read(self, data, options, layout=None, fmt=None, with_targets=True, nrows=None):
        return self.read_table_examples(data, options, layout, fmt, with_targets, nrows)[0]

    def open_training(self, settings, options):
        if not settings.data or not _is_table_path(settings.data):
            return InMemoryTable(self, settings, options)
        size = sum(p.stat().st_size for p in expand_paths(settings.data))
        if size > settings.stream_above_mb * 2**20:
            log.info("Streaming %s (%.0f MB) from disk.", settings.data, size / 2**20)
            return StreamedTable(self, settings, options)
        return InMemoryTable(self, settings, options)


def without_missing_targets(examples, warn=True):
    """Drops the rows of a regression whose target is empty, saying how many in the log."""
    targets = examples.targets
    if targets is None or targets.dtype == object:
        return examples
    empty = np.isnan(targets)
    if empty.all():
        raise UserError(f"{examples.source}: target column '{examples.target_name}' is empty.")
    if not empty.any():
        return examples
    if warn:
        log.warning(
            "%s: skipping %d row(s) with an empty '%s' (the first is row %d).",
            examples.source,
            int(empty.sum()),
            examples.target_name,
            int(np.flatnonzero(empty)[0]) + 1,
        )
    return examples.take(np.flatnonzero(~empty))


class InMemoryTable(TrainingData):
    """Rows read whole into memory, split by a stratified, seeded draw."""

    def __init__(self, reader, settings, options):
        self.reader, self.settings, self.options = reader, settings, options
        examples, self.layout = reader.read_table_examples(
            settings.data, options, fmt=settings.format
        )
        self.paths = examples.paths
        if settings.val_data:
            self.train = examples
            self.validation = reader.read(settings.val_data, options, self.layout, settings.format)
        elif settings.val_split == 0:
            self.train, self.validation = examples, None
        else:
            labels = None
            if reader.targets == "classes":
                labels = np.unique(examples.targets, return_inverse=True)[1]
            train_rows, val_rows = split_indices(
                len(examples), settings.val_split, settings.seed, labels
            )
            check_split(settings, len(examples), len(train_rows), len(val_rows))
            self.train, self.validation = examples.take(train_rows), examples.take(val_rows)
        self.rows = len(examples)
        self.train_rows = len(self.train)
        self.validation_rows = len(self.validation) if self.validation else 0
        if reader.targets == "classes":
            self.class_names = class_names_from(
                self.train.targets, self.train.source, self.train.target_name
            )
        self.statistics = _statistics(reader, options, self.layout, [self.train])

    @property
    def adapt_examples(self):
        return self.train

    def metric_examples(self):
        found = {"train": _metric_sample(self.train, self.settings.seed)}
        if self.validation:
            found["validation"] = _metric_sample(self.validation, self.settings.seed)
        return found

    def datasets(self, order, batch_size, workers=1, worker_index=0, length_of=None):
        lengths = example_lengths(self.train, length_of)
        train = examples_dataset(
            self.train, self.class_names, order.batches(len(self.train), batch_size, lengths)
        )
        validation = None
        if self.validation:
            lengths = example_lengths(self.validation, length_of)
            batches = in_order(len(self.validation), batch_size, lengths)
            validation = examples_dataset(self.validation, self.class_names, batches)
        return train, validation

    def describe(self):
        return describe(
            self.settings,
            self.paths,
            self.rows,
            self.train_rows,
            self.validation_rows,
            val_paths=self.validation.paths if self.settings.val_data else None,
        )


def examples_dataset(examples, class_names, batches):
    """Maps a dataset of row-index batches to batches of `(inputs, targets)` gathered from
    examples held in memory; shared by every worker, each taking its share of a batch."""
    import tensorflow as tf

    # Object arrays of text become string tensors as they are: NumPy's own string dtype
    # would pad every text to the longest one.
    inputs = {name: tf.constant(values) for name, values in examples.inputs.items()}
    targets = tf.constant(encode_targets(examples, class_names))

    @plain
    def gather(rows):
        return {n: tf.gather(v, rows) for n, v in inputs.items()}, tf.gather(targets, rows)

    dataset = batches.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return with_shard_policy(dataset.prefetch(tf.data.AUTOTUNE), by_file=False)


def example_lengths(examples, length_of, chunk_rows=4096):
    """Each example's length by `length_of` (a function of a dict of input tensors), as a
    NumPy vector; `None` without `length_of`."""
    import tensorflow as tf

    if length_of is None:
        return None
    lengths = [
        np.asarray(length_of({name: tf.constant(part) for name, part in chunk.items()}))
        for start in range(0, len(examples), chunk_rows)
        for chunk in [{n: v[start : start + chunk_rows] for n, v in examples.inputs.items()}]
    ]
    return np.concatenate(lengths) if lengths else np.zeros(0, np.int64)


def encode_targets(examples, class_names):
    """Class indices (int32) for a classifier's examples, float32 values for a regression's."""
    if class_names is not None:
        return encode_labels(examples.targets, class_names, examples.source, examples.target_name)
    return np.asarray(examples.targets, dtype=np.float32)


class StreamedTable(TrainingData):
    """A table streamed from disk: statistics from one chunked pass and a bounded sample,
    validation rows chosen by a keyed hash of each row."""

    def __init__(self, reader, settings, options):
        self.reader, self.settings, self.options = reader, settings, options
        self.stream = TableStream(settings.data, settings.format)
        # What the first rows say, as a table read whole would say it from all of them.
        head = read_table(self.stream.paths[0], self.stream.format, nrows=CHUNK_ROWS)
        self.layout = reader.infer_layout(head.frame, options, self.stream.name)
        inputs, target = reader.columns(options, self.layout)
        self.columns = [*inputs, target]
        self.stream.require_columns(inputs, reader.input_option)
        self.stream.require_columns([target], reader.target_option)
        self.paths = self.stream.paths
        self.held_out = 0.0 if settings.val_data else settings.val_split
        counts = {"train": 0, "validation": 0, "skipped": 0, "first_skipped": None, "labels": {}}
        statistics = reader.statistics(options, self.layout)

        def tally(chunk, first_row):
            examples = self._examples(chunk, self.stream, first_row)
            held = self._held(chunk)
            usable = self._usable(examples, counts, first_row)
            counts["validation"] += int(np.sum(held & usable))
            counts["train"] += int(np.sum(~held & usable))
            if reader.targets == "classes":
                for label, count in zip(
                    *np.unique(examples.targets, return_counts=True), strict=True
                ):
                    counts["labels"][label] = counts["labels"].get(label, 0) + int(count)
            if statistics is not None:
                statistics.add(examples.take(np.flatnonzero(~held & usable)))

        sample, self.rows = self.stream.sample(
            self.columns, SAMPLE_ROWS, settings.seed, on_chunk=tally
        )
        if counts["skipped"]:
            log.warning(
                "%s: skipping %d row(s) with an empty '%s' (the first is row %d).",
                self.stream.name,
                counts["skipped"],
                target,
                counts["first_skipped"],
            )
        self.train_rows, self.validation_rows = counts["train"], counts["validation"]
        if reader.targets == "classes":
            self.class_names = class_names_from(
                np.asarray(list(counts["labels"]), dtype=object), self.stream.name, target
            )
        if statistics is not None and not statistics.complete:
            # More categories than one pass could follow: a second pass with the kept ones.
            statistics.restart()
            first_row = 0
            for chunk in self.stream.chunks(self.columns):
                examples = self._examples(chunk, self.stream, first_row)
                usable = ~self._held(chunk) & ~_missing_targets(examples)
                statistics.add(examples.take(np.flatnonzero(usable)))
                first_row += len(chunk)
        self.statistics = statistics and statistics.result()
        examples = self._examples(sample, self.stream, 0)
        usable = ~_missing_targets(examples)
        held = self._held(sample)
        self.sample_train = examples.take(np.flatnonzero(~held & usable))
        self.sample_validation = None
        if held.any():
            self.sample_validation = examples.take(np.flatnonzero(held & usable))
        self.val_stream = None
        if settings.val_data:
            self.val_stream = TableStream(settings.val_data, settings.format)
            self.val_stream.require_columns(self.columns, reader.input_option)
            val_counts = {"skipped": 0, "first_skipped": None}

            def check(chunk, first_row):
                # The streamed pipeline could only map an unknown label to nothing: name it
                # now, before training starts, as the in-memory path does.
                examples = self._examples(chunk, self.val_stream, first_row)
                self._usable(examples, val_counts, first_row)
                if self.class_names is not None:
                    encode_labels(
                        examples.targets,
                        self.class_names,
                        examples.source,
                        target,
                        first_row=first_row,
                    )

            val_sample, val_rows = self.val_stream.sample(
                self.columns, SAMPLE_ROWS, settings.seed, on_chunk=check
            )
            self.validation_rows = val_rows - val_counts["skipped"]
            self.sample_validation = without_missing_targets(
                self._examples(val_sample, self.val_stream, 0), warn=False
            )
        check_split(settings, self.rows, self.train_rows, self.validation_rows)

    def _examples(self, frame, stream, first_row):
        return self.reader.examples_from_frame(
            frame, stream.name, stream.paths, self.options, self.layout, first_row=first_row
        )

    def _held(self, frame):
        if not self.held_out:
            return np.zeros(len(frame), dtype=bool)
        values = text_columns(frame, self.columns)
        return np.asarray(in_validation(values, self.held_out, self.settings.seed))

    def _usable(self, examples, counts, first_row):
        missing = _missing_targets(examples)
        if missing.any():
            if counts["first_skipped"] is None:
                counts["first_skipped"] = first_row + int(np.flatnonzero(missing)[0]) + 1
            counts["skipped"] += int(missing.sum())
        return ~missing

    @property
    def adapt_examples(self):
        return self.sample_train

    def metric_examples(self):
        """Bounded samples of the training and validation rows, for `metrics.json`."""
        found = {"train": _metric_sample(self.sample_train, self.settings.seed)}
        if self.sample_validation:
            found["validation"] = _metric_sample(self.sample_validation, self.settings.seed)
        return found

    def datasets(self, order, batch_size, workers=1, worker_index=0, length_of=None):
        """Streams the training rows endlessly, pass after pass from `order`'s start, each
        pass shuffled in blocks of consecutive rows (and grouped by length within a block,
        given `length_of`), and the validation rows once, in file order. With
        several workers and at least as many shards, each worker reads its own shards;
        otherwise each takes its share of every batch."""
        import tensorflow as tf

        seed, held_out = self.settings.seed, self.held_out
        train_stream = _Shard(self.stream, workers, worker_index)
        rows = self._usable_rows(train_stream.dataset(self.columns))
        if held_out:
            rows = rows.filter(plain(lambda *row: ~in_validation(row, held_out, seed)))

        # A worker reading only its own shards does not know how many batches its passes
        # hold, so a resumed run reads its way to the start batch from the first pass.
        known = None
        if not train_stream.by_file:
            known = batches_per_pass(self.train_rows, batch_size)
        lengths_of_rows = None
        if length_of is not None:
            options, layout = self.options, self.layout

            def lengths_of_rows(columns):
                return length_of(self.reader.stream_inputs(columns[:-1], options, layout))

        batches = order.stream_batches(
            rows, batch_size, SHUFFLE_BLOCK, known, length_of=lengths_of_rows
        )
        train = with_shard_policy(self._to_inputs(batches), train_stream.by_file)
        validation = None
        if self.val_stream or held_out:
            # Validation rows are few: a worker whose shards held none would have nothing
            # to give its replicas (which crashes TensorFlow 2.21), so every worker reads
            # them all and tf.distribute hands each its share of every batch.
            val_stream = _Shard(self.val_stream or self.stream, workers=1, worker_index=0)
            rows = self._usable_rows(val_stream.dataset(self.columns))
            if not self.val_stream:
                rows = rows.filter(plain(lambda *row: in_validation(row, held_out, seed)))
            batches = rows.batch(batch_size)
            if workers == 1:
                # The batch count is known from the first pass, so Keras can show progress.
                count = batches_per_pass(self.validation_rows, batch_size)
                batches = batches.apply(tf.data.experimental.assert_cardinality(count))
            validation = with_shard_policy(self._to_inputs(batches), by_file=False)
        return train, validation

    def _usable_rows(self, rows):
        if self.reader.targets == "classes":
            return rows  # an empty label stopped the first pass already
        return rows.filter(plain(lambda *row: row[-1] != ""))

    def _to_inputs(self, batches):
        import tensorflow as tf

        encode = _target_encoder(self.class_names)

        def to_inputs(*columns):
            inputs = self.reader.stream_inputs(columns[:-1], self.options, self.layout)
            return inputs, encode(columns[-1])

        batches = batches.map(plain(to_inputs), num_parallel_calls=tf.data.AUTOTUNE)
        return batches.prefetch(tf.data.AUTOTUNE)

    def describe(self):
        described = describe(
            self.settings, self.paths, self.rows, self.train_rows, self.validation_rows
        )
        described["streamed"] = True
        return described


def _metric_sample(examples, seed):
    rows = metric_rows(len(examples), seed)
    return examples if len(rows) == len(examples) else examples.take(rows)


def _missing_targets(examples):
    if examples.targets.dtype == object:
        return np.zeros(len(examples), dtype=bool)
    return np.isnan(examples.targets)


def _statistics(reader, options, layout, parts):
    statistics = reader.statistics(options, layout)
    if statistics is None:
        return None
    for _ in range(2):
        for examples in parts:
            statistics.add(examples)
        if statistics.complete:
            break
        statistics.restart()
    return statistics.result()


def check_split(settings, rows, train_rows, validation_rows):
    """Refuses a split that leaves no training rows, or no validation rows where
    `--val-split` asked for some.

    Raises:
        UserError: naming `--val-split` and how many rows there are.
    """
    held_out = settings.val_split and not settings.val_data
    if train_rows and (validation_rows or not held_out):
        return
    if not held_out:
        raise UserError(f"{settings.data}: no rows to train on.")
    empty = "training" if train_rows == 0 else "validation"
    raise UserError(
        f"--val-split {settings.val_split} leaves no rows for {empty} out of {rows}; change it "
        "or pass --val-data."
    )


def _target_encoder(class_names):
    import tensorflow as tf

    if class_names is None:
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


def with_shard_policy(dataset, by_file):
    """Says how tf.distribute splits a pipeline between workers: not at all where each
    worker already reads its own files, else each takes its share of every batch."""
    import tensorflow as tf

    policy = tf.data.experimental.AutoShardPolicy
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = policy.OFF if by_file else policy.DATA
    return dataset.with_options(options)


def _is_table_path(data):
    return not Path(data).is_dir()


def describe(settings, paths, rows, train_rows, validation_rows, val_paths=None):
    """What `run.yaml` records of a run's data: its files, fingerprint and row counts."""
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
