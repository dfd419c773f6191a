"""Reading tables (.csv .tsv .jsonl .parquet, or a glob of shards) into pandas frames."""

import contextlib
import csv
import glob
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from keras_bigmodel.errors import UserError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".parquet": "parquet"}


@dataclass
class Table:
    """A table read from one file or several shards."""

    frame: pd.DataFrame
    paths: list
    format: str
    name: str

    @property
    def columns(self):
        return list(self.frame.columns)

    def require_columns(self, columns, option):
        """Checks that the table has these columns.

        Args:
            columns: the column names needed.
            option: the flag that chose them, named in the error (for example `--text-column`).

        Raises:
            UserError: a column is missing, naming it and the columns there are.
        """
        for column in columns:
            if column not in self.frame.columns:
                have = ", ".join(map(str, self.frame.columns))
                raise UserError(
                    f"{self.name}: no column '{column}' (columns: {have}); "
                    f"choose one with {option}."
                )


def expand_paths(pattern):
    """Returns the sorted files a path or a glob names.

    Raises:
        UserError: nothing matches.
    """
    if glob.has_magic(str(pattern)):
        paths = sorted(Path(p) for p in glob.glob(str(pattern)) if Path(p).is_file())
        if not paths:
            raise UserError(f"{pattern}: no files match this pattern.")
        return paths
    path = Path(pattern)
    if not path.exists():
        raise UserError(f"{path}: no such file.")
    if path.is_dir():
        raise UserError(f"{path}: is a folder; a table is one file or a glob of shards.")
    return [path]


def table_format(path, fmt=None):
    """Returns the table format, from `fmt` if given, else from the file extension.

    Raises:
        UserError: the extension is not one bigmodel reads and `fmt` does not say.
    """
    if fmt:
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        known = ", ".join(sorted(FORMATS))
        raise UserError(
            f"{path}: unknown table extension '{suffix}' (known: {known}); pass --format."
        )
    return FORMATS[suffix]


def read_table(pattern, fmt=None, nrows=None):
    """Reads a table, or the shards a glob names, as one frame.

    Args:
        pattern: a file path or a glob such as `data/part-*.csv`.
        fmt: `csv`, `tsv`, `jsonl` or `parquet`; by default from the extension.
        nrows: read only the first rows, up to this many (from the first shards).

    Returns:
        A `Table`. Blank cells are missing values; every other cell keeps its text, so a
        message that reads "NA" stays a message.

    Raises:
        UserError: a missing file, an unknown format, or a file that does not parse.
    """
    paths = expand_paths(pattern)
    fmt = table_format(paths[0], fmt)
    frames, rows = [], 0
    for path in paths:
        frames.append(_read_one(path, fmt, None if nrows is None else nrows - rows))
        rows += len(frames[-1])
        if nrows is not None and rows >= nrows:
            break
    columns = list(frames[0].columns)
    for path, frame in zip(paths[1:], frames[1:], strict=False):
        if list(frame.columns) != columns:
            raise UserError(
                f"{path}: columns {list(frame.columns)} differ from {paths[0]}'s {columns}."
            )
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    if frame.empty and nrows != 0:
        raise UserError(f"{pattern}: the table has no rows.")
    return Table(frame=frame, paths=paths, format=fmt, name=str(pattern))


def csv_options(fmt):
    """Returns pandas' options for reading `csv` or `tsv` the way bigmodel does."""
    # TSV has no quoting: a message may start with a quote character.
    if fmt == "tsv":
        return {"sep": "\t", "quoting": csv.QUOTE_NONE, "keep_default_na": False, "na_values": [""]}
    return {"sep": ",", "quoting": csv.QUOTE_MINIMAL, "keep_default_na": False, "na_values": [""]}


def _read_one(path, fmt, nrows=None):
    with read_errors_named(path, fmt):
        if fmt in ("csv", "tsv"):
            return pd.read_csv(path, nrows=nrows, **csv_options(fmt))
        if fmt == "jsonl":
            return next(jsonl_frames(path, chunk_rows=nrows), pd.DataFrame())
        if nrows is not None:
            import pyarrow.parquet as pq

            batches = pq.ParquetFile(path).iter_batches(batch_size=max(nrows, 1))
            return next(batches).to_pandas().head(nrows)
        return pd.read_parquet(path)


@contextlib.contextmanager
def read_errors_named(path, fmt):
    """Turns the errors of reading a table file into `UserError`s that name it."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}).") from exc
    except pd.errors.EmptyDataError as exc:
        raise UserError(f"{path}: the file is empty; a header row is required.") from exc
    except (ValueError, pd.errors.ParserError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: cannot read as {fmt} ({first}).") from exc


def jsonl_frames(path, chunk_rows=None):
    """Reads a JSON Lines file as frames of at most `chunk_rows` rows (all rows in one frame
    if `None`), naming the line of any row that is not a JSON object.

    Blank lines are skipped. Values keep their JSON types, as `pandas.read_json` with
    `dtype=False` keeps them.

    Raises:
        UserError: a line that is not valid JSON, or not an object.
    """
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(
                    f"{path}: line {number} is not valid JSON ({exc.msg} at column {exc.colno})."
                ) from exc
            if not isinstance(record, dict):
                raise UserError(
                    f"{path}: line {number} is a JSON {type(record).__name__}, not an object "
                    "of column values."
                )
            records.append(record)
            if chunk_rows is not None and len(records) >= chunk_rows:
                yield pd.DataFrame.from_records(records)
                records = []
    if records or chunk_rows is None:
        yield pd.DataFrame.from_records(records)


def fingerprint(paths):
    """Returns the sha256 of the files' bytes, in order, as a hex string."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
