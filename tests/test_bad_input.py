"""The bad-input matrix: every mistake a user can make with `train`, `eval`, `predict`,
`export` and `inspect` ends in exit 2 and one line naming the culprit (or exit 0 where the
input is legitimate), never a traceback, never a touched run directory."""

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.tiny_data import california_table, digit_folder, sms_table

TINY = ["--embedding-dim", "8", "--units", "4", "--min-frequency", "1", "--epochs", "1"]
TINY += ["--batch-size", "8", "--quiet"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny lstm run and its data; the cases below must leave it as it is."""
    from click.testing import CliRunner

    from cli.main import bigmodel

    folder = tmp_path_factory.mktemp("matrix")
    data = sms_table(folder)
    run = folder / "run"
    result = CliRunner().invoke(
        bigmodel, ["train", "lstm", "--data", str(data), "--out", str(run), *TINY]
    )
    assert result.exit_code == 0, result.output
    return data, run


def digest(folder):
    hashed = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            hashed.update(str(path).encode() + path.read_bytes())
    return hashed.hexdigest()


# --- what each case writes: files in `folder`, a copy of the finished run, environment ---


def write(folder, name, content):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def sms_rows(data, rows=None):
    frame = pd.read_csv(data)
    return frame if rows is None else frame.head(rows)


def tampered_run(folder, run, edit):
    """A copy of the finished run with one thing changed."""
    copy = folder / "tampered"
    shutil.copytree(run, copy)
    edit(copy)
    return copy


def set_run_yaml(**changes):
    def edit(run):
        info = yaml.safe_load((run / "run.yaml").read_text())
        info.update(changes)
        (run / "run.yaml").write_text(yaml.safe_dump(info, sort_keys=False))

    return edit


def shards_with_other_columns(folder):
    write(folder, "s-1.csv", "text,label\na,ham\n")
    write(folder, "s-2.csv", "body,label\nb,spam\n")
    return str(folder / "s-*.csv")


def lambda_model(run):
    """A model.keras whose model holds a Lambda layer (Python code)."""
    import keras

    inputs = keras.Input(shape=(), dtype="string", name="text")
    length = keras.layers.Lambda(lambda t: keras.ops.ones((keras.ops.shape(t)[0], 2)))(inputs)
    keras.Model({"text": inputs}, length).save(run / "model.keras")


# Each case: (id, function(folder, data, run) -> (argv, env), expected exit code, words).
# `data` is the tiny SMS table, `run` the finished run.
CASES = [
    # --- train: files ---
    ("missing file", lambda f, d, r: (["train", "lstm", "--data", f / "nope.csv"], {}), 2,
     "nope.csv: no such file"),
    ("empty file", lambda f, d, r: (["train", "lstm", "--data", write(f, "e.csv", "")], {}), 2,
     "e.csv: the file is empty"),
    ("header only", lambda f, d, r: (
        ["train", "lstm", "--data", write(f, "h.csv", "text,label\n")], {}), 2,
     "h.csv: the table has no rows"),
    ("no text column", lambda f, d, r: (
        ["train", "lstm", "--data", d, "--text-column", "body"], {}), 2,
     "no column 'body' (columns: label, text); choose one with --text-column"),
    ("no label column", lambda f, d, r: (
        ["train", "lstm", "--data", d, "--label-column", "y"], {}), 2,
     "no column 'y'"),
    ("one class", lambda f, d, r: (["train", "lstm", "--data", write(
        f, "one.csv", sms_rows(d).assign(label="ham").to_csv(index=False))], {}), 2,
     "label column 'label' has 1 class; a classifier needs at least two"),
    ("empty label", lambda f, d, r: (["train", "lstm", "--data", write(
        f, "gap.csv", "text,label\nhello,ham\nbuy now,\nhi,ham\nwin,spam\n")], {}), 2,
     "gap.csv: row 2 has no value in label column 'label'"),
    ("malformed jsonl line", lambda f, d, r: (["train", "lstm", "--data", write(
        f, "bad.jsonl", '{"text": "a", "label": "ham"}\n{"text": "b", "label": "spam"}\n'
        '{"text": "c", "label": \n')], {}), 2,
     "bad.jsonl: line 3 is not valid JSON"),
    ("jsonl line not an object", lambda f, d, r: (["train", "lstm", "--data", write(
        f, "list.jsonl", '{"text": "a", "label": "ham"}\n["b", "spam"]\n')], {}), 2,
     "list.jsonl: line 2 is a JSON list, not an object"),
    ("not utf-8", lambda f, d, r: (["train", "lstm", "--data", write(
        f, "latin.csv", "text,label\ncaf\xe9,ham\n".encode("latin-1"))], {}), 2,
     "latin.csv: not UTF-8 text"),
    ("unknown extension", lambda f, d, r: (
        ["train", "lstm", "--data", write(f, "t.txt", "text,label\n")], {}), 2,
     "unknown table extension '.txt'"),
    ("corrupt parquet", lambda f, d, r: (
        ["train", "lstm", "--data", write(f, "p.parquet", b"PAR1 not really")], {}), 2,
     "p.parquet: cannot read as parquet"),
    ("glob matching nothing", lambda f, d, r: (
        ["train", "lstm", "--data", str(f / "part-*.csv")], {}), 2,
     "no files match this pattern"),
    ("shards with other columns", lambda f, d, r: (
        ["train", "lstm", "--data", shards_with_other_columns(f)], {}), 2,
     "s-2.csv: columns ['body', 'label'] differ from"),
    ("data is a folder", lambda f, d, r: (["train", "lstm", "--data", f], {}), 2,
     "is a folder; a table is one file or a glob"),
    ("unknown validation label", lambda f, d, r: (["train", "lstm", "--data", d, "--val-data",
        write(f, "v.csv", "text,label\nhello,ham\nwin,maybe\n")], {}), 2,
     "v.csv: row 2 has label 'maybe' in column 'label', not one of"),
    ("streamed csv with an unclosed quote", lambda f, d, r: (["train", "lstm", "--data", write(
        f, "x.csv", 'text,label\nhello,ham\n"win,spam\nhi,ham\n'), "--stream-above-mb", "0"],
        {}), 2, "x.csv: cannot read as csv (Error tokenizing data. C error: EOF inside string"),
    ("streamed split without validation rows", lambda f, d, r: (["train", "lstm", "--data", d,
        "--stream-above-mb", "0", "--val-split", "0.001"], {}), 2,
     "--val-split 0.001 leaves no rows for validation out of 60"),
    ("streamed unknown validation label", lambda f, d, r: (["train", "lstm", "--data", d,
        "--stream-above-mb", "0", "--val-data",
        write(f, "v.csv", "text,label\nhello,ham\nwin,maybe\n")], {}), 2,
     "v.csv: row 2 has label 'maybe' in column 'label', not one of the model's classes"),
    # --- train: options, config and environment ---
    ("dropout out of range", lambda f, d, r: (
        ["train", "lstm", "--data", d, "--dropout", "2"], {}), 2,
     "--dropout must be below 1.0; got 2.0"),
    ("zero epochs", lambda f, d, r: (["train", "lstm", "--data", d, "--epochs", "0"], {}), 2,
     "--epochs must be at least 1; got 0"),
    ("negative checkpoint-every", lambda f, d, r: (
        ["train", "lstm", "--data", d, "--checkpoint-every", "-1"], {}), 2,
     "--checkpoint-every must be at least 0"),
    ("missing config", lambda f, d, r: (
        ["train", "lstm", "--data", d, "--config", f / "c.yaml"], {}), 2,
     "--config: no such file"),
    ("config not yaml", lambda f, d, r: (["train", "lstm", "--data", d, "--config",
        write(f, "c.yaml", "epochs: [1,\n")], {}), 2,
     "c.yaml: not valid YAML"),
    ("config unknown key", lambda f, d, r: (["train", "lstm", "--data", d, "--config",
        write(f, "c.yaml", "batchsize: 8\n")], {}), 2,
     "c.yaml: unknown option 'batchsize' for lstm"),
    ("config wrong type", lambda f, d, r: (["train", "lstm", "--data", d, "--config",
        write(f, "c.yaml", "epochs: many\n")], {}), 2,
     "c.yaml: epochs must be an integer; got 'many'"),
    ("config not a mapping", lambda f, d, r: (["train", "lstm", "--data", d, "--config",
        write(f, "c.yaml", "- epochs\n")], {}), 2,
     "expected a mapping of option names to values"),
    ("multiworker without TF_CONFIG", lambda f, d, r: (
        ["train", "lstm", "--data", d, "--strategy", "multiworker"], {"TF_CONFIG": ""}), 2,
     "--strategy multiworker needs the TF_CONFIG environment variable"),
    ("TF_CONFIG not JSON", lambda f, d, r: (
        ["train", "lstm", "--data", d, "--strategy", "multiworker"], {"TF_CONFIG": "{oops"}), 2,
     "TF_CONFIG: not a cluster with this task in it"),
    ("TF_CONFIG task out of range", lambda f, d, r: (
        ["train", "lstm", "--data", d, "--strategy", "multiworker"],
        {"TF_CONFIG": json.dumps({"cluster": {"worker": ["localhost:1"]},
                                  "task": {"type": "worker", "index": 3}})}), 2,
     "TF_CONFIG: not a cluster with this task in it"),
    ("too many devices", lambda f, d, r: (["train", "lstm", "--data", d, "--devices", "9"], {}),
     2, "--devices 9: this host has only"),
    ("out is a file", lambda f, d, r: (["train", "lstm", "--data", d], {}), 2,
     "is a file, not a folder"),
    ("existing run without a flag", lambda f, d, r: (
        ["train", "lstm", "--data", d, "--out", r], {}), 2,
     "already exists; pass --overwrite to replace it or --resume"),
    ("resume a finished run", lambda f, d, r: (
        ["train", "lstm", "--out", r, "--resume"], {}), 2,
     "is finished; nothing to resume"),
    ("resume without --out", lambda f, d, r: (["train", "lstm", "--resume"], {}), 2,
     "--resume needs --out"),
    ("resume a folder that is not a run", lambda f, d, r: (
        ["train", "lstm", "--data", d, "--out", f, "--resume"], {}), 2,
     "is not a run directory (no run.yaml); nothing to resume"),
    ("overwrite a corrupt run", lambda f, d, r: (["train", "lstm", "--data", d, "--out",
        tampered_run(f, r, lambda c: (c / "run.yaml").write_text("model: [")), "--overwrite"],
        {}), 2, "run.yaml: corrupt"),
    # --- train: other models ---
    ("image folder without classes", lambda f, d, r: (["train", "cnn", "--data",
        write(f, "imgs/a.png", b"x").parent], {}), 2,
     "imgs"),
    ("undecodable image", lambda f, d, r: (["train", "cnn", "--data", write(
        digit_folder(f, digits=(0, 1), per_digit=3), "1/broken.png", b"not a png").parent.parent],
        {}), 2, "do not decode as PNG, JPEG, GIF or BMP images"),
    ("bad image size", lambda f, d, r: (["train", "cnn", "--data", f, "--image-size", "big"], {}),
     2, "--image-size must be N (square) or HxW"),
    ("linear without target", lambda f, d, r: (
        ["train", "linear", "--data", california_table(f)], {}), 2,
     "--target is required"),
    ("linear text target", lambda f, d, r: (["train", "linear", "--data", california_table(f),
        "--target", "ocean_proximity"], {}), 2, "ocean_proximity"),
    ("linear empty feature", lambda f, d, r: (["train", "linear", "--data", write(
        f, "gaps.csv", pd.read_csv(california_table(f)).assign(total_rooms=None).to_csv(
            index=False)), "--target", "median_house_value"], {}), 2,
     "column 'total_rooms' is empty in all"),
    # --- eval ---
    ("eval a folder that is not a run", lambda f, d, r: (["eval", f, "--data", d], {}), 2,
     "not a finished run directory (no run.yaml)"),
    ("eval corrupt run.yaml", lambda f, d, r: (["eval", tampered_run(
        f, r, lambda c: (c / "run.yaml").write_text("model: lstm\nconfig: [")), "--data", d], {}),
     2, "run.yaml: corrupt"),
    ("eval run.yaml of something else", lambda f, d, r: (["eval", tampered_run(
        f, r, lambda c: (c / "run.yaml").write_text("- 1\n- 2\n")), "--data", d], {}), 2,
     "not a bigmodel run record"),
    ("eval unknown model in run.yaml", lambda f, d, r: (["eval", tampered_run(
        f, r, set_run_yaml(model="gpt")), "--data", d], {}), 2,
     "unknown model 'gpt'"),
    ("eval interrupted run", lambda f, d, r: (["eval", tampered_run(f, r, set_run_yaml(
        status="interrupted", progress={"epoch": 1, "step": 3})), "--data", d], {}), 2,
     "the run is interrupted in epoch 2 after batch 3, not finished; continue it with: "
     "bigmodel train lstm --out"),
    ("eval failed run", lambda f, d, r: (["eval", tampered_run(f, r, set_run_yaml(
        status="failed", error="OSError: disk full")), "--data", d], {}), 2,
     "the run failed after epoch 1 (OSError: disk full); fix the cause and continue"),
    ("eval model.keras not a zip", lambda f, d, r: (["eval", tampered_run(
        f, r, lambda c: (c / "model.keras").write_text("garbage")), "--data", d], {}), 2,
     "model.keras: cannot load the model"),
    ("eval model.keras with a Lambda", lambda f, d, r: (["eval", tampered_run(
        f, r, lambda_model), "--data", d], {}), 2,
     "model.keras: cannot load the model (refused by Keras' safe mode"),
    ("eval corrupt labels.json", lambda f, d, r: (["eval", tampered_run(
        f, r, lambda c: (c / "labels.json").write_text("[ham")), "--data", d], {}), 2,
     "labels.json: not valid JSON"),
    ("eval unknown label", lambda f, d, r: (["eval", r, "--data", write(
        f, "u.csv", "text,label\nhello,ham\nwin,maybe\n")], {}), 2,
     "u.csv: row 2 has label 'maybe' in column 'label', not one of the model's classes"),
    ("eval missing column", lambda f, d, r: (["eval", r, "--data", write(
        f, "m.csv", "body,label\nhello,ham\n")], {}), 2,
     "m.csv: no column 'text' (columns: body, label); choose one with --text-column"),
    ("eval option of another model", lambda f, d, r: (
        ["eval", r, "--data", d, "--target", "x"], {}), 2,
     "--target does not apply to a lstm run"),
    # --- predict ---
    ("predict to a .txt file", lambda f, d, r: (
        ["predict", r, "--data", d, "--out", f / "p.txt"], {}), 2,
     "write predictions to a .csv or .jsonl file"),
    ("predict on a missing file", lambda f, d, r: (
        ["predict", r, "--data", f / "none.jsonl"], {}), 2,
     "none.jsonl: no such file"),
    ("predict on malformed jsonl", lambda f, d, r: (["predict", r, "--data", write(
        f, "x.jsonl", '{"text": "hi"}\n{"text": "yo"\n')], {}), 2,
     "x.jsonl: line 2 is not valid JSON"),
    # --- export ---
    ("export over an existing version", lambda f, d, r: (
        ["export", r, "--out", write(f, "exp/1/keep.txt", "x").parent.parent, "--version", "1"],
        {}), 2, "already exists; versions are never overwritten"),
    ("export an unfinished run", lambda f, d, r: (["export", tampered_run(
        f, r, set_run_yaml(status="training")), "--out", f / "exp"], {}), 2,
     "the run is training after epoch 1, not finished"),
    ("export with a corrupt sample", lambda f, d, r: (["export", tampered_run(
        f, r, lambda c: (c / "sample.json").write_text('{"text": 3}')), "--out", f / "exp"], {}),
     2, "sample.json: corrupt sample of training inputs"),
    # --- inspect ---
    ("inspect a missing path", lambda f, d, r: (["inspect", f / "nothing.csv"], {}), 2,
     "nothing.csv: no such file"),
    ("inspect corrupt run.yaml", lambda f, d, r: (["inspect", tampered_run(
        f, r, lambda c: (c / "run.yaml").write_text("\x00\x01: [")), "--json"], {}), 2,
     "run.yaml: corrupt"),
    ("inspect corrupt metrics.json", lambda f, d, r: (["inspect", tampered_run(
        f, r, lambda c: (c / "metrics.json").write_text("{")), "--json"], {}), 2,
     "metrics.json: corrupt"),
    ("inspect an empty folder", lambda f, d, r: (["inspect", f], {}), 2,
     "not a run directory, an export, or an image folder"),
    # --- legitimate input: exit 0 ---
    ("inspect jsonl with blank lines", lambda f, d, r: (["inspect", write(
        f, "ok.jsonl", '{"text": "a", "label": "ham"}\n\n{"text": "b", "label": "spam"}\n'),
        "--json"], {}), 0, '"rows": 2'),
    ("inspect an interrupted run", lambda f, d, r: (["inspect", tampered_run(
        f, r, set_run_yaml(status="interrupted")), "--json"], {}), 0,
     "continue it with: bigmodel train lstm --out"),
    ("predict on unlabelled jsonl", lambda f, d, r: (["predict", r, "--data", write(
        f, "u.jsonl", '{"text": "free prize now"}\n{"text": "see you"}\n')], {}), 0,
     "text,prediction,prob_ham,prob_spam"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "code", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input(finished, tmp_path, runner, monkeypatch, case, code, words):
    from cli.main import bigmodel

    data, run = finished
    before = digest(run)
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    args, env = case(work, data, run)
    out = tmp_path / "out"
    if args[0] == "train" and "--out" not in args and "--resume" not in args:
        if "is a file" in words:
            out.write_text("not a folder")
        # Tiny settings first, so that a case's own flags win.
        tiny = TINY if args[1] == "lstm" else ["--epochs", "1"]
        args = [*args[:2], *tiny, *args[2:], "--out", out]
    result = runner.invoke(bigmodel, [str(a) for a in args], env=env, catch_exceptions=False)
    output = result.output.strip()
    assert result.exit_code == code, output
    assert words in output, output
    assert "Traceback" not in output
    if code == 2:
        assert output.startswith("Error: ") and len(output.splitlines()) == 1, output
        if args[0] == "train" and not (out.exists() and out.is_file()):
            assert not out.exists()  # nothing half-written
    assert digest(run) == before  # the finished run is never touched


def test_the_matrix_is_large():
    assert len(CASES) >= 40
