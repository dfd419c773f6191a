"""ONNX files of a run's model, by tf2onnx, checked in onnxruntime.

ONNX is an optional extra (`pip install 'keras-bigmodel[onnx]'`): tf2onnx, onnx and
onnxruntime. The cnn (decoded pixels in) and the linear model (numeric columns in, named
after the columns) convert; string lookups (the text models' vocabulary, the linear
model's categories) do not, and those models are refused before any work
(`Recipe.onnx_refusal`).
"""

import numpy as np

from keras_bigmodel.errors import UserError

#: the ONNX operator set written; onnxruntime 1.20 and later run it.
OPSET = 17
INSTALL_HINT = "pip install 'keras-bigmodel[onnx]'"


def missing_extra():
    """The reason ONNX export is unavailable (a package of the extra not installed), or None."""
    import importlib.util

    for package in ("tf2onnx", "onnx", "onnxruntime"):
        if importlib.util.find_spec(package) is None:
            return (
                f"--format onnx needs the onnx extra ({package} is not installed): {INSTALL_HINT}"
            )
    return None


def write(function, specs, path):
    """Converts a signature's function of `specs` (`exporting.signature_function`) to an
    ONNX file at `path`; its inputs and outputs keep their names.

    Raises:
        UserError: tf2onnx cannot convert the model (`missing_extra` is checked before).
    """
    import tensorflow as tf
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    # Frozen here rather than by tf2onnx's `from_function`, which left the constants that
    # layers hold (Normalization's mean and variance) as ONNX graph inputs to be fed.
    concrete = tf.function(function, input_signature=specs).get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)
    inputs = [tensor.name for tensor in frozen.inputs]
    outputs = [tensor.name for tensor in frozen.outputs]
    # The file's inputs and outputs keep the signature's names: outputs are flattened in
    # the order of their sorted keys.
    renamed = {name: name.split(":")[0] for name in inputs}
    renamed.update(zip(outputs, sorted(concrete.structured_outputs), strict=True))
    try:
        tf2onnx.convert.from_graph_def(
            frozen.graph.as_graph_def(),
            input_names=inputs,
            output_names=outputs,
            opset=OPSET,
            tensors_to_rename=renamed,
            output_path=str(path),
        )
    except Exception as exc:  # tf2onnx raises many types, all meaning "cannot"
        reason = " ".join(str(exc).split())[:300]
        raise UserError(
            f"--format onnx: tf2onnx cannot convert this model ({reason}); export with "
            "--format saved_model or --format tflite."
        ) from exc


def _session(path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: constant folding notes are not the user's
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def outputs(path, feeds):
    """Runs an ONNX file over feeds (one per row); returns its outputs by name, the rows
    concatenated."""
    session = _session(path)
    names = [output.name for output in session.get_outputs()]
    results = [session.run(names, feed) for feed in feeds]
    return {name: np.concatenate([r[i] for r in results]) for i, name in enumerate(names)}


def describe(path):
    """The inputs and outputs of an ONNX file, with dtypes and shapes (-1 for any)."""
    if missing_extra():
        return {}
    session = _session(path)
    return {
        "inputs": {i.name: _node(i) for i in session.get_inputs()},
        "outputs": {o.name: _node(o) for o in session.get_outputs()},
    }


def _node(node):
    dtype = node.type.removeprefix("tensor(").removesuffix(")")
    return {
        "dtype": {"float": "float32", "double": "float64"}.get(dtype, dtype),
        "shape": [d if isinstance(d, int) else -1 for d in node.shape],
    }
