"""Every command through click's CliRunner, in-process, on tiny real data."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from cli.main import bigmodel
from tests.tiny_data import sms_table

TINY = [
    "--embedding-dim",
    "8",
    "--units",
    "4",
    "--min-frequency",
    "1",
    "--epochs",
    "2",
    "--batch-size",
    "8",
    "--quiet",
]


def run_cli(*args):
    return CliRunner().invoke(bigmodel, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny lstm run, trained once through the CLI for the tests of the other commands."""
    folder = tmp_path_factory.mktemp("cli")
    data = sms_table(folder)
    result = run_cli("train", "lstm", "--data", data, "--out", folder / "run", *TINY)
    assert result.exit_code == 0, result.output
    assert f"Run directory: {folder / 'run'}" in result.output
    return folder, data, folder / "run"


def test_help_lists_every_command_and_model():
    result = run_cli("--help")
    for command in ("train", "eval", "predict", "export", "inspect"):
        assert command in result.output
    result = run_cli("train", "--help")
    assert "lstm" in result.output
    result = run_cli("train", "lstm", "--help")
    assert "--bidirectional / --no-bidirectional" in result.output
    assert "[default: 20]" in result.output


def printed_in_a_fresh_process(code, timeout=120):
    """Runs Python `code` in a process of its own (this one has TensorFlow loaded); returns
    the lines it printed, once it has exited with 0 within `timeout` seconds."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_help_does_not_import_tensorflow_or_numpy():
    # NumPy alone is a tenth of a second of `bigmodel --help` (goal: at most 300 ms).
    code = (
        "import sys; from cli.main import bigmodel\n"
        "try:\n    bigmodel(['train', 'linear', '--help'])\nexcept SystemExit:\n    pass\n"
        "sys.exit(3 if {'tensorflow', 'keras', 'numpy'} & set(sys.modules) else 0)"
    )
    printed_in_a_fresh_process(code, timeout=60)


def test_commands_load_keras_without_scikit_learn_which_stays_importable():
    # Keras imports scikit-learn and SciPy's statistics, when installed, only for its
    # scikit-learn wrappers: 0.4-0.6 s of every command's start. TensorFlow's legacy
    # Keras imports SciPy's sparse matrices: 0.06-0.09 s more; Keras' image galleries
    # matplotlib's pyplot, 0.3-0.4 s, which only `train` and `eval` need.
    pytest.importorskip("sklearn")
    code = (
        "import sys, click, cli.main as m\n"
        "m._setup(click.Context(m.bigmodel))\n"
        "import keras\n"
        "print(sorted({'sklearn', 'scipy', 'matplotlib'} & set(sys.modules)), keras.Sequential)\n"
        "import sklearn.base, scipy.sparse\n"
        "from keras_bigmodel import plots\n"
        "print(sklearn.base.BaseEstimator.__name__, scipy.sparse.issparse(0))\n"
        "print(plots._pyplot().get_backend())"
    )
    printed = printed_in_a_fresh_process(code)
    assert printed[0].startswith("[] <class 'keras.src.models.sequential.")
    assert printed[1] == "BaseEstimator False"
    assert printed[2].lower() == "agg"


def test_tensorflow_loads_without_collecting_garbage_and_stays_out_of_later_collections():
    # Each full collection while TensorFlow loads scans all it has loaded so far: five of
    # them, about 0.4 s of every command's start on 2 cores.
    code = (
        "import gc, sys, click, cli.main as m\n"
        "full = []\n"
        "gc.callbacks.append(lambda phase, info: full.append(1) "
        "if phase == 'stop' and info['generation'] == 2 else None)\n"
        "m._setup(click.Context(m.bigmodel))\n"
        "import keras\n"
        "print(len(full), gc.isenabled(), gc.get_freeze_count() > 100_000)\n"
        "gc.collect()\n"
        "print(len(full))"
    )
    # None while loading; the collector is on again afterwards, and collects.
    assert printed_in_a_fresh_process(code) == ["0 True True", "1"]


def test_training_loads_matplotlib_once_its_first_epoch_is_done():
    from keras_bigmodel.timing import OnFirstEpochEnd

    calls = []
    callback = OnFirstEpochEnd(lambda: calls.append(len(calls)))
    for epoch in (3, 4, 5):
        callback.on_epoch_end(epoch)
    assert calls == [0]


def test_run_directory(trained):
    _, _, run = trained
    info = __import__("yaml").safe_load((run / "run.yaml").read_text())
    assert info["status"] == "finished"
    assert info["config"]["units"] == 4 and info["config"]["seed"] == 42
    assert info["data"]["rows"] == 60 and len(info["data"]["sha256"]) == 64
    assert info["data"]["train_rows"] + info["data"]["validation_rows"] == 60
    assert info["strategy"] == {"name": "default", "replicas": 1, "workers": 1}
    # TensorFlow started before this in-process run: every core, its default.
    assert info["threads"] == {
        "intra_op": info["threads"]["cores"],
        "cores": info["threads"]["cores"],
    }
    assert set(info["versions"]) >= {"tensorflow", "keras", "bigmodel"}
    assert json.loads((run / "labels.json").read_text()) == ["ham", "spam"]
    history = pd.read_csv(run / "history.csv")
    assert len(history) == 2 and {"loss", "val_loss", "accuracy"} <= set(history.columns)


def test_eval_json_and_files(trained):
    _, data, run = trained
    result = run_cli("eval", run, "--data", data, "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)  # exactly one JSON object, nothing else
    for key in (
        "accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "per_class",
        "confusion_matrix",
        "num_examples",
        "loss",
    ):
        assert key in metrics
    assert metrics["num_examples"] == 60
    assert sum(map(sum, metrics["confusion_matrix"])) == 60
    assert metrics["per_class"]["spam"]["support"] == 30
    assert json.loads((run / "eval" / "sms" / "metrics.json").read_text()) == metrics
    assert (run / "eval" / "sms" / "confusion_matrix.png").is_file()
    table = run_cli("eval", run, "--data", data)
    assert "confusion matrix" in table.output and "accuracy" in table.output


def test_eval_with_renamed_columns(trained):
    folder, data, run = trained
    renamed = folder / "renamed.jsonl"
    frame = pd.read_csv(data).rename(columns={"text": "body", "label": "y"})
    frame.to_json(renamed, orient="records", lines=True)
    result = run_cli("eval", run, "--data", renamed, "--json")
    assert result.exit_code == 2
    assert "no column 'text'" in result.output and "--text-column" in result.output
    result = run_cli(
        "eval", run, "--data", renamed, "--text-column", "body", "--label-column", "y", "--json"
    )
    assert result.exit_code == 0, result.output


def test_predict_csv_on_stdout_and_jsonl(trained):
    folder, data, run = trained
    result = run_cli("predict", run, "--data", data)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "label,text,prediction,prob_ham,prob_spam"
    assert len(lines) == 61
    out = folder / "predictions.jsonl"
    result = run_cli("predict", run, "--data", data, "--out", out)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 60 and rows[0]["prediction"] in ("ham", "spam")
    assert abs(rows[0]["prob_ham"] + rows[0]["prob_spam"] - 1) < 1e-5


def test_predict_without_labels(trained):
    folder, data, run = trained
    unlabelled = folder / "unlabelled.csv"
    pd.read_csv(data)[["text"]].to_csv(unlabelled, index=False)
    result = run_cli("predict", run, "--data", unlabelled, "--out", folder / "p.csv")
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(folder / "p.csv").columns) == [
        "text",
        "prediction",
        "prob_ham",
        "prob_spam",
    ]


def test_export_versions_are_never_overwritten(trained):
    folder, _, run = trained
    out = folder / "exports" / "sms"
    first = run_cli("export", run, "--out", out)
    assert first.exit_code == 0, first.output
    second = run_cli("export", run, "--out", out)
    assert second.exit_code == 0, second.output
    assert sorted(p.name for p in out.iterdir()) == ["1", "2"]
    again = run_cli("export", run, "--out", out, "--version", "1")
    assert again.exit_code == 2 and "already exists" in again.output
    result = run_cli("inspect", out, "--json")
    versions = json.loads(result.output)["versions"]
    assert versions["2"]["inputs"] == {"text": {"dtype": "string", "shape": [-1]}}
    assert versions["2"]["outputs"]["label"] == {"dtype": "string", "shape": [-1]}
    assert versions["2"]["class_names"] == ["ham", "spam"]


def test_export_needs_only_the_run_directory(trained, tmp_path, monkeypatch):
    """The run keeps a sample of its training inputs: moved away from its data, and with
    the data gone, it still exports and checks the export."""
    _, _, run = trained
    moved = tmp_path / "moved"
    shutil.copytree(run, moved)
    info = yaml.safe_load((moved / "run.yaml").read_text())
    info["data"]["path"] = info["config"]["data"] = str(tmp_path / "gone.csv")
    (moved / "run.yaml").write_text(yaml.safe_dump(info, sort_keys=False))
    sample = json.loads((moved / "sample.json").read_text())
    assert sample["text"]["dtype"] == "string" and len(sample["text"]["values"]) == 54
    monkeypatch.chdir(tmp_path)
    result = run_cli("export", moved, "--out", tmp_path / "exports")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "exports" / "1" / "saved_model.pb").is_file()


def test_export_tflite_takes_token_ids_and_says_what_it_measured(trained):
    """A text model's TFLite file cannot split text: the version folder holds the
    vocabulary and the preprocessing a caller needs, and the line printed says the size."""
    folder, _, run = trained
    result = run_cli("export", run, "--out", folder / "tflite", "--format", "tflite")
    assert result.exit_code == 0, result.output
    target = folder / "tflite" / "1"
    assert f"Exported tflite to {target}: " in result.output
    assert "same outputs as model.keras on the run's sample" in result.output
    assert sorted(p.name for p in target.iterdir()) == [
        "export.json",
        "labels.json",
        "model.tflite",
        "preprocessing.json",
        "vocabulary.txt",
    ]
    settings = json.loads((target / "preprocessing.json").read_text())
    assert settings["input"] == "token_ids" and settings["shape"] == [1, -1]
    words = (target / "vocabulary.txt").read_text().split("\n")
    assert words[:2] == ["", "[UNK]"] and len(words) == settings["vocabulary_size"] + 1


def test_inspect_table_and_run(trained):
    _, data, run = trained
    result = run_cli("inspect", data, "--json")
    described = json.loads(result.stdout)
    assert described["rows"] == 60
    assert described["columns"]["label"]["balance"] == {"ham": 30, "spam": 30}
    assert described["columns"]["text"]["words"]["max"] > 0
    result = run_cli("inspect", run, "--json")
    described = json.loads(result.stdout)
    assert described["kind"] == "run" and described["model"] == "lstm"
    assert "accuracy" in described["metrics"]["validation"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "nope.csv"], "nope.csv: no such file"),
        (["--data", "{data}", "--text-column", "SMS"], "no column 'SMS'"),
        (["--data", "{data}", "--dropout", "2"], "--dropout must be below 1.0"),
        (["--data", "{data}", "--devices", "9"], "--devices 9"),
        (["--data", "{data}", "--strategy", "default", "--devices", "2"], "one device"),
        (["--data", "{data}", "--label-column", "text"], "leaves no rows for validation"),
    ],
)
def test_train_errors_exit_2_with_one_line(tmp_path, args, message):
    data = sms_table(tmp_path)
    args = [a.format(data=data) for a in args]
    result = run_cli("train", "lstm", "--out", tmp_path / "run", *args, *TINY)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_existing_run_needs_overwrite_or_resume(trained, tmp_path):
    _, data, run = trained
    result = run_cli("train", "lstm", "--data", data, "--out", run, *TINY)
    assert result.exit_code == 2 and "--overwrite" in result.output
    result = run_cli("train", "lstm", "--data", data, "--out", tmp_path / "new", "--resume", *TINY)
    assert result.exit_code == 2 and "nothing to resume" in result.output


def test_unknown_config_key(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("epochs: 1\nbatchsize: 8\n")
    result = run_cli("train", "lstm", "--data", sms_table(tmp_path), "--config", config)
    assert result.exit_code == 2 and "unknown option 'batchsize'" in result.output


def test_eval_on_a_folder_that_is_not_a_run(tmp_path):
    result = run_cli("eval", tmp_path, "--data", sms_table(tmp_path))
    assert result.exit_code == 2 and "not a finished run directory" in result.output


def test_internal_errors_exit_1_and_debug_shows_traceback(trained, monkeypatch):
    _, data, run = trained

    def broken(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr("keras_bigmodel.evaluation.evaluate", broken)
    result = run_cli("eval", run, "--data", data)
    assert result.exit_code == 1
    assert "internal error: ZeroDivisionError: boom" in result.output
    assert "Traceback" not in result.output
    result = run_cli("eval", run, "--data", data, "--debug")
    assert result.exit_code == 1 and "Traceback" in result.output


def test_installed_command_eval_json_prints_only_json(trained):
    """The installed `bigmodel`, in a process of its own: eval --json prints one JSON object
    on stdout, and TensorFlow's start-up chatter nowhere."""
    _, data, run = trained
    bigmodel_bin = Path(sys.executable).with_name("bigmodel")
    evaluated = subprocess.run(
        [str(bigmodel_bin), "eval", str(run), "--data", str(data), "--json"],
        capture_output=True,
        timeout=120,
    )
    assert evaluated.returncode == 0, evaluated.stderr.decode()
    assert json.loads(evaluated.stdout)["num_examples"] == 60
    assert evaluated.stderr.decode() == ""


def test_export_refusals_name_the_option_and_write_nothing(trained):
    """--format onnx reaches the exporter (no click "invalid choice"); a text model and a
    quantized SavedModel are refused with exit code 2 and no version folder."""
    folder, _, run = trained
    out = folder / "exports" / "refused"
    result = run_cli("export", run, "--out", out, "--format", "onnx")
    assert result.exit_code == 2
    assert "--format onnx: text models need string splitting" in result.output
    assert "--format saved_model (raw text in) or --format tflite" in result.output
    result = run_cli("export", run, "--out", out, "--quantize", "int8")
    assert result.exit_code == 2
    assert "--quantize int8 applies to --format tflite only" in result.output
    assert not out.exists() or not any(out.iterdir())
