"""bigmodel: raw data to a trained, evaluated, exported Keras model, one call each.

The functions here mirror the command line. TensorFlow is imported only when one of them
runs, so importing the package stays instant; the project's Keras layers are registered
as soon as Keras is imported, so `keras.models.load_model` reads a run's `model.keras`.
"""

__version__ = "0.1.0"

__all__ = ["TrainingInterrupted", "UserError", "evaluate", "export", "predict", "train"]

from keras_bigmodel.errors import TrainingInterrupted, UserError
from keras_bigmodel.registration import register_with_keras

register_with_keras()


def train(model, data=None, **options):
    """Trains a registered model on a data set and writes a run directory.

    Args:
        model: a registered model name: `lstm`, `cnn`, `linear` or `transformer`.
        data: the training data (a table, a glob of tables or an image folder).
        **options: any training or model option of `bigmodel train MODEL`, with `_` for `-`,
            and `config` for a YAML file of them.

    Returns:
        A `keras_bigmodel.training.TrainResult` with the run directory and final metrics.
    """
    from keras_bigmodel.training import train as _train

    return _train(model, data=data, **options)


def evaluate(run_dir, data, **overrides):
    """Evaluates a run's model on labelled data; see `keras_bigmodel.evaluation.evaluate`."""
    from keras_bigmodel.evaluation import evaluate as _evaluate

    return _evaluate(run_dir, data, **overrides)


def predict(run_dir, data, out=None, **overrides):
    """Predicts with a run's model; see `keras_bigmodel.prediction.predict`."""
    from keras_bigmodel.prediction import predict as _predict

    return _predict(run_dir, data, out=out, **overrides)


def export(run_dir, out, format="saved_model", version=None, quantize="none"):
    """Exports a run's model for serving; see `keras_bigmodel.exporting.export`."""
    from keras_bigmodel.exporting import export as _export

    return _export(run_dir, out, format=format, version=version, quantize=quantize)
