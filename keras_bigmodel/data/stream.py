"""Tables too large for memory: read in chunks for statistics, streamed by `tf.data` to train."""

import numpy as np
import pandas as pd

from keras_bigmodel.data.tables import (
    csv_options,
    expand_paths,
    jsonl_frames,
    read_errors_named,
    read_table,
    table_format,
)
from keras_bigmodel.errors import UserError

CHUNK_ROWS = 100_000


class TableStream:
    """A table (one file or a glob of shards) that is never loaded whole.

    `chunks()` and `sample()` read it with pandas a chunk at a time, for the statistics
    that preprocessing adapts on; `dataset()` streams columns as a `tf.data.Dataset`,
    reading several shards in parallel, for training.
    """

    def __init__(self, pattern, fmt=None):
        self.paths = expand_paths(pattern)
        self.format = table_format(self.paths[0], fmt)
        self.name = str(pattern)
        head = read_table(self.paths[0], self.format, nrows=1)
        self.columns = head.columns
        for path in self.paths[1:]:
            columns = read_table(path, self.format, nrows=1).columns
            if columns != self.columns:
                raise UserError(
                    f"{path}: columns {columns} differ from {self.paths[0]}'s {self.columns}."
                )

    def require_columns(self, columns, option):
        """Checks that the table has these columns; see `Table.require_columns`."""
        for column in columns:
            if column not in self.columns:
                have = ", ".join(map(str, self.columns))
                raise UserError(
                    f"{self.name}: no column '{column}' (columns: {have}); "
                    f"choose one with {option}."
                )

    def chunks(self, columns, paths=None):
        """Yields the table (or the shards `paths`) as frames of at most `CHUNK_ROWS` rows
        holding `columns`."""
        for path in self.paths if paths is None else paths:
            with read_errors_named(path, self.format):
                yield from self._chunks_of(path, columns)

    def _chunks_of(self, path, columns):
        if self.format == "parquet":
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(CHUNK_ROWS, columns=columns):
                yield batch.to_pandas()
        elif self.format == "jsonl":
            for chunk in jsonl_frames(path, CHUNK_ROWS):
                _require_in_chunk(chunk, columns, path)
                yield chunk[columns]
        else:
            # Every cell as the text in the file, as TensorFlow's reader sees it too.
            yield from pd.read_csv(
                path,
                usecols=columns,
                chunksize=CHUNK_ROWS,
                dtype=str,
                **csv_options(self.format),
            )

    def sample(self, columns, rows, seed, on_chunk=None):
        """Reads the whole table once and keeps a uniform random sample of `rows` rows.

        Args:
            columns: the columns to keep.
            rows: the sample size; a smaller table is kept whole.
            seed: fixes the sample.
            on_chunk: called with every chunk as it passes, for statistics over all rows.

        Returns:
            `(sample, total_rows)`: a frame in the table's row order, and the row count.
        """
        rng = np.random.default_rng(seed)
        kept, total = None, 0
        for chunk in self.chunks(columns):
            if on_chunk:
                on_chunk(chunk, total)
            # Give every row a random key and keep the smallest: a uniform sample whatever
            # the table's size, holding one chunk and the sample in memory.
            chunk = chunk.assign(_key=rng.random(len(chunk)), _row=np.arange(len(chunk)) + total)
            total += len(chunk)
            kept = chunk if kept is None else pd.concat([kept, chunk])
            kept = kept.nsmallest(rows, "_key")
        if kept is None or total == 0:
            raise UserError(f"{self.name}: the table has no rows.")
        kept = kept.sort_values("_row").drop(columns=["_key", "_row"])
        return kept.reset_index(drop=True), total

    def dataset(self, columns, paths=None):
        """Streams `columns` as a `tf.data.Dataset` of string tensors, one element per row,
        from every shard or only from `paths`.

        CSV and TSV shards are parsed by TensorFlow itself, several files at a time, so the
        pipeline can be auto-sharded by file between workers. JSON Lines and Parquet go
        through pandas a chunk at a time.
        """
        import tensorflow as tf

        indices = [self.columns.index(c) for c in columns]
        if self.format in ("csv", "tsv"):

            def read(path):
                # select_cols must be in file order; put the columns back in the order asked.
                order = sorted(indices)
                fields = tf.data.experimental.CsvDataset(
                    path,
                    record_defaults=[""] * len(order),
                    header=True,
                    field_delim="," if self.format == "csv" else "\t",
                    use_quote_delim=self.format == "csv",
                    select_cols=order,
                )
                return fields.map(lambda *row: tuple(row[order.index(i)] for i in indices))

            chosen = self.paths if paths is None else paths
            files = tf.data.Dataset.from_tensor_slices([str(p) for p in chosen])
            return files.interleave(
                read,
                cycle_length=min(4, len(chosen)),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )

        def rows():
            for chunk in self.chunks(columns, paths):
                yield from zip(*text_columns(chunk, columns), strict=True)

        signature = tuple(tf.TensorSpec([], tf.string) for _ in columns)
        return tf.data.Dataset.from_generator(rows, output_signature=signature)


def text_columns(frame, columns):
    """The columns of a frame as arrays of strings, as `tf.data` reads them ("" if empty)."""
    return [frame[c].fillna("").astype(str).to_numpy(dtype=object) for c in columns]


def _require_in_chunk(chunk, columns, path):
    # JSON Lines rows need not all have the same keys: a key missing from a whole chunk
    # would otherwise surface as a KeyError.
    for column in columns:
        if column not in chunk.columns:
            raise UserError(
                f"{path}: column '{column}' is missing from {len(chunk)} rows in a row; "
                "every row needs it."
            )


#: validation rows are chosen by a keyed hash of each row into this many buckets.
SPLIT_BUCKETS = 1_000_000


def in_validation(columns, val_split, seed):
    """Tells, for each row, whether it is held out for validation.

    The choice is a keyed hash of the row's values: it needs no row numbers, so it is the
    same whatever the order shards are read in, the same in pandas and in `tf.data`, and
    identical rows (duplicates) always fall on the same side.

    Args:
        columns: string tensors (or arrays), one per column, each `[rows]` or scalars.
        val_split: the share of rows held out.
        seed: keys the hash.

    Returns:
        A boolean tensor, `True` for validation rows.
    """
    import tensorflow as tf

    joined = tf.strings.join(
        [tf.convert_to_tensor(c, tf.string) for c in columns], separator="\x1f"
    )
    bucket = tf.strings.to_hash_bucket_strong(joined, SPLIT_BUCKETS, key=[seed, 0x5EED])
    return bucket < int(round(val_split * SPLIT_BUCKETS))
