"""TFLite files of a run's model, built-in operations only, optionally quantized.

Models needing TensorFlow's own operations ("select" ops) fail at inference with the stock
TFLite runtimes (`tf.lite.Interpreter`, `ai-edge-litert`), so every file holds TFLite's
built-in operations only; where a model's preprocessing needs more, the file takes the
preprocessed input (`keras_bigmodel.portable`).
"""

import re
import warnings

import numpy as np
import tensorflow as tf

from keras_bigmodel.errors import UserError
from keras_bigmodel.portable import FLOAT_SCOPE


def write(portable, function, path, quantize, feeds, scratch):
    """Converts the portable model to `path`, quantized as asked.

    Args:
        portable: a `keras_bigmodel.portable.PortableModel`.
        function: the signature's function of `portable.specs` (`signature_function`).
        path: the `.tflite` file to write.
        quantize: `none`, `dynamic`, `float16` or `int8`.
        feeds: the sample's inputs, one feed per row; `int8` calibrates on them.
        scratch: a folder for the intermediate SavedModel.

    Returns:
        What `export.json` records: `bytes`, and for a quantized file `float_bytes` and
        `size_ratio` against the unquantized conversion of the same model.

    Raises:
        UserError: the model needs operations TFLite does not have, or cannot be quantized.
    """
    from keras_bigmodel.exporting import write_endpoint

    write_endpoint(portable.model, function, portable.specs, scratch)
    converted = convert(scratch)
    record = {}
    if quantize != "none":
        record["float_bytes"] = len(converted)
        # Only int8 quantizes activations, the resize's among them.
        float_nodes = _float_nodes(converted) if quantize == "int8" else ()
        converted = convert(scratch, quantize, feeds, float_nodes)
        record["size_ratio"] = len(converted) / record["float_bytes"]
    path.write_bytes(converted)
    record["bytes"] = len(converted)
    return record


def convert(saved_model, quantize="none", feeds=None, float_nodes=()):
    """Converts a SavedModel's `serving_default` to TFLite bytes.

    `dynamic` stores weights in 8 bits, `float16` in 16; `int8` also computes in 8 bits,
    with activation ranges calibrated on `feeds`. Operations under the `keep_float` name
    scope (`float_nodes`, such as the cnn's resizing matrices, whose weights are computed
    from the input's size) stay in float32.
    """
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    try:
        if quantize != "int8":
            return converter.convert()

        def representative():
            yield from feeds

        converter.representative_dataset = representative
        if not float_nodes:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            return converter.convert()
        # The quantization debugger is TFLite's way to keep chosen operations in float.
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(float_nodes))
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=representative, debug_options=options
        )
        return debugger.get_nondebug_quantized_model()
    except Exception as exc:  # the converter raises several types, all meaning "cannot"
        what = f"--quantize {quantize}" if quantize != "none" else "--format tflite"
        raise UserError(
            f"{what}: this model's operations ({_unsupported_ops(exc)}) have no TFLite "
            "built-in equivalent; export with --format saved_model"
            + (" or another --quantize" if quantize != "none" else "")
            + " instead."
        ) from exc


def _float_nodes(converted):
    """The tensors of a converted model made under the `keep_float` name scope."""
    interpreter = _interpreter(model_content=converted)
    return [d["name"] for d in interpreter.get_tensor_details() if FLOAT_SCOPE in d["name"]]


def _unsupported_ops(exc):
    ops = sorted(set(re.findall(r"'tf\.(\w+)'", str(exc))))
    return ", ".join(ops[:6]) + (", ..." if len(ops) > 6 else "") if ops else "some"


def _interpreter(**kwargs):
    with warnings.catch_warnings():
        # tf.lite.Interpreter warns that ai-edge-litert replaces it; both run these files.
        warnings.simplefilter("ignore", UserWarning)
        return tf.lite.Interpreter(**kwargs)


def outputs(path, feeds):
    """Runs a TFLite file's `serving_default` over feeds (one per row); returns its
    outputs by name, the rows concatenated."""
    runner = _interpreter(model_path=str(path)).get_signature_runner("serving_default")
    results = [runner(**feed) for feed in feeds]
    return {name: np.concatenate([r[name] for r in results]) for name in results[0]}


def describe(path):
    """The signature of a TFLite file: its inputs and outputs, with dtypes, shapes (-1 for
    any) and quantization, as `bigmodel inspect` shows them."""
    interpreter = _interpreter(model_path=str(path))
    signature = interpreter.get_signature_runner("serving_default")
    details = {
        "inputs": _details(signature.get_input_details()),
        "outputs": _details(signature.get_output_details()),
    }
    kinds = {d["dtype"] for d in interpreter.get_tensor_details()}
    details["tensor_types"] = sorted(np.dtype(k).name for k in kinds)
    return details


def _details(found):
    return {
        name: {
            "dtype": np.dtype(d["dtype"]).name,
            "shape": [int(n) for n in d["shape_signature"]],
        }
        for name, d in found.items()
    }
