"""Predicting with a run's model: the input's columns plus predictions and probabilities."""

from pathlib import Path

import numpy as np

from keras_bigmodel.errors import UserError
from keras_bigmodel.evaluation import model_outputs
from keras_bigmodel.runs import atomic_path, open_run

OUTPUT_FORMATS = {".csv": "csv", ".jsonl": "jsonl"}


def predict(run_dir, data, out=None, fmt=None, **overrides):
    """Predicts with a run's model and writes or returns the table of predictions.

    Args:
        run_dir: a run directory written by `train`.
        data: data in the layout the run was trained on; a label column may be absent.
        out: a `.csv` or `.jsonl` file to write; `None` returns the table without writing.
        fmt: the input table format, when the extension does not say.
        **overrides: data options that differ from the run's (`text_column=...`).

    Returns:
        A pandas DataFrame: the input's columns, `prediction` (class name or value) and,
        for classifiers, one `prob_<class>` column per class.
    """
    if out is not None and Path(out).suffix.lower() not in OUTPUT_FORMATS:
        raise UserError(f"--out {out}: write predictions to a .csv or .jsonl file.")
    run = open_run(run_dir)
    examples = run.read_examples(data, fmt=fmt, with_targets=False, **overrides)
    outputs = model_outputs(run.serving_model(), examples)
    table = examples.frame.copy()
    class_names = run.class_names()
    if class_names:
        table["prediction"] = np.asarray(class_names, dtype=object)[outputs.argmax(axis=1)]
        for i, name in enumerate(class_names):
            table[f"prob_{name}"] = outputs[:, i]
    else:
        table["prediction"] = outputs.reshape(len(table))
    if out is not None:
        write_table(table, out)
    return table


def write_table(table, out):
    """Writes a table as CSV or JSON Lines, chosen by the file extension, atomically."""
    with atomic_path(out) as tmp:
        if OUTPUT_FORMATS[Path(out).suffix.lower()] == "jsonl":
            table.to_json(tmp, orient="records", lines=True, force_ascii=False)
        else:
            table.to_csv(tmp, index=False)
