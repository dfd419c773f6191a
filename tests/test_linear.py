"""The linear regression: options, reading feature tables, the exported signature, and
reaching the least-squares optimum (on full real tables with `make test-slow`)."""

import json
import logging
import time

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.datasets import load_diabetes
from sklearn.linear_model import ElasticNet, LinearRegression
from sklearn.model_selection import train_test_split

import keras_bigmodel as kb
from cli.main import bigmodel
from keras_bigmodel.data import feature_table, features
from keras_bigmodel.data.order import TrainingOrder
from keras_bigmodel.errors import UserError
from keras_bigmodel.least_squares import feature_map, least_squares
from keras_bigmodel.models import get_recipe
from keras_bigmodel.training import resolve_config
from tests.tiny_data import EXAMPLES, california_table

TARGET = "median_house_value"
TINY = ["--epochs", "2", "--batch-size", "8", "--quiet"]
LINEAR = get_recipe("linear")


def run_cli(*args):
    return CliRunner().invoke(bigmodel, [str(a) for a in args], catch_exceptions=False)


def test_flags_and_defaults():
    result = run_cli("train", "linear", "--help")
    for flag in ("--target", "--features", "--categorical", "--max-categories", "--l1", "--l2"):
        assert flag in result.output
    config = resolve_config("linear", data="x.csv", target="y", l2=0.5)
    assert config.options.l2 == 0.5 and config.options.l1 == 0.0
    assert config.train.optimizer == "sgd" and config.train.val_split == 0.0
    with pytest.raises(UserError, match="--l1 must be at least 0.0"):
        resolve_config("linear", data="x.csv", target="y", l1=-1)


def test_input_names_are_safe_for_signatures():
    assert features.input_name("median_income") == "median_income"
    assert features.input_name("rooms (total)") == "rooms__total_"
    assert features.input_name("_id") == "c_id"
    with pytest.raises(UserError, match="'a b' and 'a_b' would both be model input 'a_b'"):
        features.input_names(["a b", "a_b"], "t.csv")


def test_column_kinds_and_values():
    frame = pd.DataFrame(
        {"n": [1.0, None, 3.0], "s": ["a", None, "b"], "i": [1, 2, 3], "m": [2.0, 3.0, 4.0]}
    )
    assert features.text_columns(frame, ["n", "s", "i"], "t.csv") == ["s"]
    assert list(features.category_values(frame["s"])) == ["a", "", "b"]
    assert list(features.category_values(pd.Series([1.0, None, 2.5]))) == ["1", "", "2.5"]
    numbers = features.numeric_values(frame["n"], "t.csv", "n")
    assert numbers.dtype == np.float32 and np.isnan(numbers[1])
    typo = pd.DataFrame({"x": ["1", "2", "3", "oops"]})
    with pytest.raises(UserError, match="row 4 is 'oops'"):
        features.text_columns(typo, ["x"], "t.csv")


def test_least_squares_matches_scikit_learn():
    matrix, targets = load_diabetes(return_X_y=True)
    matrix = (matrix - matrix.mean(0)) / matrix.std(0)
    kernel, bias = least_squares(matrix, targets, 0.0, 0.0)
    reference = LinearRegression().fit(matrix, targets)
    np.testing.assert_allclose(kernel, reference.coef_, rtol=1e-8)
    assert bias == pytest.approx(reference.intercept_)
    # Keras' penalty l1 * |w|_1 + l2 * |w|^2 on a mean squared error is scikit-learn's
    # elastic net at half the strength, on half the squared error.
    targets = (targets - targets.mean()) / targets.std()
    kernel, _ = least_squares(matrix, targets, 0.05, 0.1)
    reference = ElasticNet(alpha=0.125, l1_ratio=0.2, tol=1e-12, max_iter=100000)
    np.testing.assert_allclose(kernel, reference.fit(matrix, targets).coef_, atol=1e-8)
    assert np.sum(kernel == 0) >= 1


@pytest.mark.parametrize(
    ("edit", "args", "message"),
    [
        (None, ["--target", ""], "--target is required"),
        (None, ["--target", "price"], "no column 'price'"),
        (None, ["--target", "ocean_proximity"], "'ocean_proximity' must be numeric, but row 1"),
        (None, ["--features", "latitude,rooms"], "no column 'rooms'"),
        ("empty_feature", [], "column 'households' is empty in all 60 training rows"),
        ("few_rows", [], "8 rows to train on; a linear model needs at least 10"),
        ("typo", [], "column 'population' holds numbers, but row 5 is 'many'"),
    ],
)
def test_bad_tables_exit_2_with_one_line(tmp_path, edit, args, message):
    data = california_table(tmp_path)
    frame = pd.read_csv(data)
    if edit == "empty_feature":
        frame["households"] = np.nan
    elif edit == "few_rows":
        frame = frame.head(8)
    elif edit == "typo":
        frame["population"] = frame["population"].astype(object)
        frame.loc[4, "population"] = "many"
    frame.to_csv(data, index=False)
    args = args if "--target" in args else ["--target", TARGET, *args]
    result = run_cli("train", "linear", "--data", data, "--out", tmp_path / "run", *args, *TINY)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_rows_without_a_target_are_skipped(tmp_path, caplog):
    data = california_table(tmp_path)
    frame = pd.read_csv(data)
    frame.loc[[3, 7], TARGET] = np.nan
    frame.to_csv(data, index=False)
    options = resolve_config("linear", data=data, target=TARGET).options
    # The CLI stops the package's log records at its own handler; listen where they start.
    logger = logging.getLogger("keras_bigmodel.data.sources")
    logger.addHandler(caplog.handler)
    try:
        examples = get_recipe("linear").data_reader.read(data, options)
    finally:
        logger.removeHandler(caplog.handler)
    assert len(examples) == 58 and not np.isnan(examples.targets).any()
    assert "skipping 2 row(s) with an empty 'median_house_value' (the first is row 4)" in (
        caplog.text
    )


def test_train_eval_predict_export_round_trip(tmp_path):
    import tensorflow as tf

    data = california_table(tmp_path)
    # A column name TensorFlow cannot take as an input name as it is.
    frame = pd.read_csv(data).rename(columns={"median_income": "median income"})
    frame.loc[[5, 9], "ocean_proximity"] = None  # empty cells are a category of their own
    frame.to_csv(data, index=False)
    run = tmp_path / "run"
    result = run_cli("train", "linear", "--data", data, "--target", TARGET, "--out", run, *TINY)
    assert result.exit_code == 0, result.output
    info = __import__("yaml").safe_load((run / "run.yaml").read_text())
    # What the reader inferred is recorded as the data's layout, not written into options.
    assert info["config"]["categorical"] is None and info["config"]["features"] is None
    assert info["data"]["layout"] == {
        "features": [c for c in frame.columns if c != TARGET],
        "categorical": ["ocean_proximity"],
    }

    result = run_cli("eval", run, "--data", data, "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert {"mse", "rmse", "mae", "r2", "loss", "num_examples"} <= set(metrics)
    assert metrics["r2"] > 0.5  # the closed-form start fits 60 rows well from the first step
    assert (run / "eval" / "california" / "predicted_vs_actual.png").is_file()

    # Predict on a table without the target, its columns reordered, with an extra column.
    unlabelled = frame.drop(columns=[TARGET]).iloc[:, ::-1].assign(id=range(len(frame)))
    unlabelled.to_csv(tmp_path / "new.csv", index=False)
    result = run_cli("predict", run, "--data", tmp_path / "new.csv", "--out", tmp_path / "p.csv")
    assert result.exit_code == 0, result.output
    predicted = pd.read_csv(tmp_path / "p.csv")
    assert list(predicted.columns) == [*unlabelled.columns, "prediction"]

    result = run_cli("export", run, "--out", tmp_path / "export")
    assert result.exit_code == 0, result.output
    signature = tf.saved_model.load(str(tmp_path / "export" / "1")).signatures["serving_default"]
    specs = signature.structured_input_signature[1]
    assert {spec.name for spec in specs.values()} == {
        *(c for c in frame.columns if c not in (TARGET, "median income")),
        "median_income",
    }
    assert specs["ocean_proximity"].dtype == tf.string
    assert specs["total_bedrooms"].dtype == tf.float32
    row = frame.iloc[:2]
    inputs = {
        features.input_name(c): tf.constant(row[c].to_numpy(np.float32))
        for c in frame.columns
        if c not in (TARGET, "ocean_proximity")
    }
    inputs["total_bedrooms"] = tf.constant([np.nan, np.nan])
    inputs["ocean_proximity"] = tf.constant(["", "ON THE MOON"])
    outputs = signature(**inputs)
    assert set(outputs) == {"prediction"}
    assert outputs["prediction"].shape == (2,)
    assert np.all(np.isfinite(outputs["prediction"].numpy()))


def test_reaches_least_squares_on_diabetes(tmp_path):
    train, test = diabetes_split(tmp_path)
    result = kb.train("linear", data=train, target="target", out=tmp_path / "run", quiet=True)
    r2 = kb.evaluate(result.run_dir, test)["r2"]
    assert r2 == pytest.approx(ols_r2(train, test, "target"), abs=0.005)


def training_data(data, **flags):
    resolved = resolve_config("linear", data=data, **flags)
    reader = LINEAR.data_reader
    return reader.open_training(resolved.train, resolved.options), resolved.options


def test_statistics_give_the_preprocessors_features_and_the_least_squares_optimum(tmp_path):
    data = california_table(tmp_path, rows=200)
    frame = pd.read_csv(data)
    frame.loc[[5, 9], "ocean_proximity"] = None
    frame.loc[[11], "households"] = None
    frame.to_csv(data, index=False)
    # Two categories kept of five: the rarer ones count as unseen, even in training.
    found, options = training_data(data, target=TARGET, val_split=0.0, max_categories=2)
    preprocessing = LINEAR.fit_preprocessing(found, options, seed=0)
    examples = found.adapt_examples
    matrix = preprocessing.feature_matrix(examples)
    statistics = found.statistics
    mapping = feature_map(statistics)
    # The raw columns of each row, as the statistics count them.
    names = list(preprocessing.input_names.values())
    numeric = np.stack([examples.inputs[n] for n in names if n in statistics.numeric], 1)
    raw = [np.nan_to_num(numeric, nan=0.0), np.isnan(numeric)]
    for name, vocabulary in statistics.vocabularies.items():
        assert len(vocabulary) == 2
        raw.append(examples.inputs[name][:, None] == np.array(vocabulary)[None, :])
    raw = np.hstack(raw).astype(np.float64)
    np.testing.assert_allclose(raw.mean(0), statistics.mean, atol=1e-12)
    np.testing.assert_allclose(raw.T @ raw / len(raw), statistics.second, rtol=1e-12)
    np.testing.assert_allclose(raw @ mapping.weights.T + mapping.offset, matrix, atol=2e-5)
    # The same optimum as solving on the feature matrix itself.
    targets = preprocessing.standardized_targets(examples.targets)
    kernel, bias = least_squares(matrix, targets)
    np.testing.assert_allclose(preprocessing.kernel, kernel, atol=1e-4)
    assert preprocessing.bias == pytest.approx(bias, abs=1e-4)


def test_more_categories_than_one_pass_follows_take_a_second(tmp_path, monkeypatch):
    data = california_table(tmp_path, rows=200)
    frame = pd.read_csv(data).assign(block=lambda f: "b" + (f.index % 37).astype(str))
    frame.to_csv(data, index=False)
    flags = {"target": TARGET, "val_split": 0.0, "max_categories": 10}
    one_pass = training_data(data, **flags)[0].statistics
    monkeypatch.setattr(feature_table, "ONE_PASS_COLUMNS", 20)
    calls = []
    restart = feature_table.FeatureStatistics.restart
    monkeypatch.setattr(
        feature_table.FeatureStatistics, "restart", lambda self: calls.append(1) or restart(self)
    )
    for stream_above_mb in (256, 0):
        two_passes = training_data(data, stream_above_mb=stream_above_mb, **flags)[0].statistics
        assert two_passes.vocabularies == one_pass.vocabularies
        np.testing.assert_allclose(two_passes.second, one_pass.second, rtol=1e-12)
        np.testing.assert_allclose(two_passes.cross, one_pass.cross, rtol=1e-12)
    assert len(calls) == 2
    assert len(one_pass.vocabularies["block"]) == 10


def test_streamed_housing_starts_at_the_same_optimum_as_in_memory(tmp_path):
    frame = pd.read_csv(EXAMPLES / "california_housing.csv")
    data = tmp_path / "housing.csv"
    frame.to_csv(data, index=False)
    starts = []
    for stream_above_mb in (256, 0):
        found, options = training_data(data, target=TARGET, stream_above_mb=stream_above_mb)
        assert found.train_rows == len(frame) and found.layout.categorical == ["ocean_proximity"]
        assert ("streamed" in found.describe()) == (stream_above_mb == 0)
        starts.append(LINEAR.fit_preprocessing(found, options, seed=0))
    memory, streamed = starts
    np.testing.assert_allclose(streamed.kernel, memory.kernel, rtol=1e-6, atol=1e-9)
    assert streamed.bias == pytest.approx(memory.bias, abs=1e-9)
    assert streamed.target_scale == pytest.approx(memory.target_scale, rel=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize(
    "table, stream_above_mb",
    [("california_housing", 256), ("california_housing", 0), ("diabetes", 256)],
)
def test_default_training_reaches_least_squares(tmp_path, table, stream_above_mb):
    if table == "diabetes":
        train, test, target = *diabetes_split(tmp_path), "target"
    else:
        frame = pd.read_csv(EXAMPLES / "california_housing.csv")
        train, test = split(frame, tmp_path)
        target = TARGET
    started = time.perf_counter()
    result = kb.train(
        "linear",
        data=train,
        target=target,
        out=tmp_path / "run",
        quiet=True,
        stream_above_mb=stream_above_mb,
    )
    seconds = time.perf_counter() - started
    r2 = kb.evaluate(result.run_dir, test)["r2"]
    reference = ols_r2(train, test, target)
    print(
        f"{table} (--stream-above-mb {stream_above_mb}): test R2 {r2:.4f}, least squares "
        f"{reference:.4f}, trained in {seconds:.1f} s"
    )
    assert r2 == pytest.approx(reference, abs=0.005)
    if table == "california_housing":
        assert reference == pytest.approx(0.638, abs=0.0005)


def split(frame, folder):
    """Writes the 80/20 split with `random_state=0`; returns the two paths."""
    train, test = train_test_split(frame, test_size=0.2, random_state=0)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    return folder / "train.csv", folder / "test.csv"


def diabetes_split(folder):
    return split(load_diabetes(as_frame=True, scaled=False).frame, folder)


def ols_r2(train, test, target):
    """Test R² of ordinary least squares: empty numbers filled with the training median,
    text columns one-hot over their training values."""
    train, test = pd.read_csv(train), pd.read_csv(test)
    columns = [c for c in train.columns if c != target]
    text = [c for c in columns if not pd.api.types.is_numeric_dtype(train[c])]
    numeric = [c for c in columns if c not in text]
    medians = train[numeric].median()

    def design(frame):
        parts = [frame[numeric].fillna(medians).to_numpy(np.float64)]
        for column in text:
            values = sorted(train[column].dropna().unique())
            parts.append((frame[column].to_numpy()[:, None] == np.array(values)).astype(float))
        return np.hstack(parts)

    model = LinearRegression().fit(design(train), train[target])
    predicted = model.predict(design(test))
    truth = test[target].to_numpy()
    return 1 - np.sum((predicted - truth) ** 2) / np.sum((truth - truth.mean()) ** 2)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_streamed_feature_tables_read_as_tables_in_memory(tmp_path, fmt):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "size": rng.normal(50, 10, 40).round(2),
            "new": rng.integers(0, 2, 40).astype(bool),
            "city": rng.choice(["Oslo", "Lima", "Pune"], 40),
            "price": rng.normal(100, 5, 40).round(1),
        }
    )
    frame.loc[[3, 17], "size"] = np.nan
    frame.loc[[5], "city"] = None
    path = tmp_path / f"t.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    found = {}
    for stream_above_mb in (256, 0):
        data, _ = training_data(
            path, target="price", val_data=path, stream_above_mb=stream_above_mb
        )
        _, validation = data.datasets(TrainingOrder(0), 64)
        inputs, targets = next(iter(validation))
        found[stream_above_mb] = data, inputs, targets
    (memory, memory_inputs, memory_targets), (streamed, inputs, targets) = found.values()
    assert memory.layout == streamed.layout
    assert memory.layout.categorical == ["city"]
    np.testing.assert_allclose(streamed.statistics.second, memory.statistics.second, rtol=1e-6)
    assert streamed.statistics.vocabularies == memory.statistics.vocabularies
    np.testing.assert_allclose(targets.numpy(), memory_targets.numpy(), rtol=1e-6)
    for name in ("size", "new"):
        np.testing.assert_allclose(inputs[name].numpy(), memory_inputs[name].numpy(), rtol=1e-6)
    assert inputs["city"].numpy().tolist() == memory_inputs["city"].numpy().tolist()
