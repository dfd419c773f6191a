import pytest

from keras_bigmodel.config import resolve
from keras_bigmodel.errors import UserError
from keras_bigmodel.models.lstm import LSTMOptions
from keras_bigmodel.training import resolve_config


def test_defaults_then_yaml_then_flags(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("epochs: 7\nbatch_size: 64\nunits: 16\nbidirectional: false\n")
    resolved = resolve_config("lstm", data="x.csv", config=config, batch_size=8)
    assert resolved.train.epochs == 7  # from the file
    assert resolved.train.batch_size == 8  # the flag wins over the file
    assert resolved.train.learning_rate == 1e-3  # the default
    assert resolved.options.units == 16
    assert resolved.options.bidirectional is False
    assert resolved.to_dict()["data"] == "x.csv"


def test_recipe_defaults_sit_below_the_file():
    resolved = resolve(
        "lstm",
        LSTMOptions,
        layers=[("f.yaml", {"epochs": 3})],
        train_defaults={"epochs": 50, "batch_size": 99},
    )
    assert resolved.train.epochs == 3
    assert resolved.train.batch_size == 99


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("epochz: 3\n", "unknown option 'epochz'"),
        ("epochs: ten\n", "epochs must be an integer"),
        ("epochs: 0\n", "epochs must be at least 1"),
        ("val_split: 1.0\n", "val_split must be below 1.0"),
        ("optimizer: adagrad\n", "optimizer must be one of adam, adamw, sgd, rmsprop"),
        ("bidirectional: 3\n", "bidirectional must be true or false"),
        ("- epochs\n", "expected a mapping"),
        ("epochs: [\n", "not valid YAML"),
    ],
)
def test_bad_config_files_name_the_key(tmp_path, content, message):
    config = tmp_path / "bad.yaml"
    config.write_text(content)
    with pytest.raises(UserError, match=message) as error:
        resolve_config("lstm", data="x.csv", config=config)
    assert "bad.yaml" in str(error.value)


def test_flags_are_checked_like_the_file():
    with pytest.raises(UserError, match="--dropout must be below 1.0"):
        resolve_config("lstm", data="x.csv", dropout=1.5)


def test_missing_data_and_config_file():
    with pytest.raises(UserError, match="--data is required"):
        resolve_config("lstm")
    with pytest.raises(UserError, match="--config: no such file"):
        resolve_config("lstm", data="x.csv", config="nope.yaml")


def test_unknown_model():
    with pytest.raises(UserError, match="unknown model 'gpt'"):
        resolve_config("gpt", data="x.csv")
