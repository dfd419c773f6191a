"""TensorFlow Serving's JSON for tensors: predict request bodies to numpy arrays, and
outputs back to JSON, as its `util/json_tensor.cc` reads and writes them.

Row format: `{"instances": [...]}`, one element per example: an object keyed by input
name, or a bare value when the signature has one input. Columnar: `{"inputs": ...}`, an
object of whole tensors keyed by input name, or one bare tensor. Strings may be given as
`{"b64": "..."}`; `NaN` and `Infinity` are read for float inputs. Answers are
`{"predictions": [...]}` (row) or `{"outputs": ...}` (columnar); string outputs whose
names end in `_bytes` are written as `{"b64": "..."}`.
"""

import base64
import binascii
import json
import math

import numpy as np

from keras_bigmodel.servables import ServingError

ROW, COLUMNAR = "instances", "inputs"

# The dtypes JSON values are read into, as TensorFlow Serving reads them (no 16-bit floats).
_FLOATS = {"DT_FLOAT": np.float32, "DT_DOUBLE": np.float64}
_INTEGERS = {
    "DT_INT8": np.int8,
    "DT_INT16": np.int16,
    "DT_INT32": np.int32,
    "DT_INT64": np.int64,
    "DT_UINT8": np.uint8,
    "DT_UINT16": np.uint16,
    "DT_UINT32": np.uint32,
    "DT_UINT64": np.uint64,
}
_INTEGER_RANGES = {
    name: (int(np.iinfo(kind).min), int(np.iinfo(kind).max)) for name, kind in _INTEGERS.items()
}
_NUMPY = {**_FLOATS, **_INTEGERS, "DT_BOOL": np.bool_}
#: more levels of lists than any model takes (numpy stops at 64).
MAX_RANK = 32


def numpy_dtype(dtype):
    """The numpy dtype JSON values of a TensorFlow dtype (`DT_FLOAT`) are read into; None
    for strings and for dtypes JSON requests cannot carry."""
    return _NUMPY.get(dtype)


class PredictRequest:
    """A predict body, read: its form (`instances` or `inputs`), its signature name and
    the JSON value under its form's key."""

    __slots__ = ("form", "signature_name", "value")

    def __init__(self, form, signature_name, value):
        self.form = form
        self.signature_name = signature_name
        self.value = value


class BadValue(Exception):
    """A value that does not fit its input; the caller adds where it was."""


def parse_request(body):
    """Reads a predict request body (bytes).

    Raises:
        ServingError: 400 for a body that is not a JSON object with exactly one of
            `instances` and `inputs`.
    """
    if not body.strip():
        raise ServingError(400, "JSON Parse error: The document is empty")
    try:
        document = json.loads(body)
    except json.JSONDecodeError as error:
        raise ServingError(400, f"JSON Parse error: {error.msg} at offset: {error.pos}") from None
    except (ValueError, RecursionError):
        raise ServingError(
            400, "JSON Parse error: the body is not UTF-8 JSON or nests too deeply"
        ) from None
    if not isinstance(document, dict):
        raise ServingError(400, f"JSON Value: {_debug(document)} Is not object")
    signature_name = document.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise ServingError(
            400,
            f"JSON Value: {_debug(document)} not formatted correctly. 'signature_name' key "
            "must be a string value.",
        )
    forms = [key for key in (ROW, COLUMNAR) if key in document]
    if not forms:
        raise ServingError(400, "Missing 'inputs' or 'instances' key")
    if len(forms) == 2:
        raise ServingError(
            400,
            f"JSON Value: {_debug(document)} Not formatted correctly expecting only one of "
            "'inputs' or 'instances' keys to exist",
        )
    return PredictRequest(forms[0], signature_name, document[forms[0]])


def request_tensors(request, inputs):
    """The request's tensors for a signature's `inputs` (name to `TensorInfo`).

    Returns:
        `(tensors, rows)`: one numpy array per input, and the batch size they share.

    Raises:
        ServingError: 400 naming the input, instance or value at fault (501 for a dtype
            JSON cannot carry).
    """
    names = sorted(inputs)
    if request.form == ROW:
        tensors = _row_tensors(request.value, inputs, names)
    else:
        tensors = _columnar_tensors(request.value, inputs, names)
    for name in names:
        _check_shape(name, tensors[name].shape, inputs[name].shape)
    rows = {name: len(tensors[name]) for name in names}
    if len(set(rows.values())) > 1:
        listed = ", ".join(f"{name}: {count}" for name, count in rows.items())
        raise ServingError(
            400, f"input tensors must have the same size in dimension 0 (batch); got {listed}"
        )
    return tensors, rows[names[0]]


def _row_tensors(instances, inputs, names):
    if not isinstance(instances, list):
        raise ServingError(
            400, f"JSON Value: {_debug(instances)} Expecting 'instances' to be an list/array"
        )
    if not instances:
        raise ServingError(400, f"JSON Value: {_debug(instances)} No values in 'instances' array")
    named = _is_named(instances[0])
    if not named and len(names) > 1:
        raise ServingError(
            400,
            "instances is a plain list, but expecting list of objects as multiple input "
            f"tensors required as per tensorinfo_map (inputs: {', '.join(names)})",
        )
    columns = {name: [] for name in names}
    for i, instance in enumerate(instances):
        if named != _is_named(instance):
            raise ServingError(
                400,
                f"Expecting {'object but got list' if named else 'value/list but got object'} "
                f"at item {i} of input list",
            )
        if not named:
            columns[names[0]].append(_element(instance, inputs[names[0]], i, None))
            continue
        for key in instance:
            if key not in inputs:
                raise ServingError(
                    400,
                    f"Failed to process element: {i} key: {key} of 'instances' list. Error: "
                    f"JSON object: does not have named input: {key}",
                )
        if len(instance) != len(names):
            raise ServingError(
                400,
                f"Failed to process element: {i} of 'instances' list. JSON object: "
                f"{_debug(instance)} keys must be equal to: {','.join(names)}",
            )
        for name in names:
            columns[name].append(_element(instance[name], inputs[name], i, name))
    return {name: _stack(columns[name], inputs[name], name) for name in names}


def _element(value, info, i, name):
    """One instance's value of one input: `(leaves, shape)`."""
    try:
        return _parse(value, info.dtype)
    except BadValue as error:
        key = "" if name is None else f" key: {name}"
        raise ServingError(
            400, f"Failed to process element: {i}{key} of 'instances' list. Error: {error}"
        ) from None


def _stack(elements, info, name):
    leaves, shape = [], elements[0][1]
    for i, (values, element_shape) in enumerate(elements):
        if element_shape != shape:
            raise ServingError(
                400,
                f"Failed to process element: {i} key: {name} of 'instances' list. Error: "
                f"Expecting shape {_shape_text(shape)} but got: {_shape_text(element_shape)}",
            )
        leaves.extend(values)
    return _array(leaves, (len(elements), *shape), info.dtype)


def _columnar_tensors(value, inputs, names):
    if not _is_named(value):
        if len(names) > 1:
            raise ServingError(
                400,
                "inputs is a plain value/list, but expecting an object as multiple input "
                f"tensors required as per tensorinfo_map (inputs: {', '.join(names)})",
            )
        value = {names[0]: value}
    tensors = {}
    # As TensorFlow Serving does, keys the signature does not take are ignored.
    for name in names:
        if name not in value:
            raise ServingError(400, f"Missing named input: {name} in 'inputs' object.")
        try:
            leaves, shape = _parse(value[name], inputs[name].dtype)
        except BadValue as error:
            raise ServingError(400, f"input '{name}': {error}") from None
        tensors[name] = _array(leaves, shape, inputs[name].dtype)
    return tensors


def _is_named(value):
    """An object keyed by input name, as opposed to a value (`{"b64": ...}` is a value)."""
    return isinstance(value, dict) and not _is_b64(value)


def _is_b64(value):
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def _check_shape(name, shape, wanted):
    if wanted is None:
        return
    if len(shape) != len(wanted) or any(
        want not in (-1, got) for want, got in zip(wanted, shape, strict=True)
    ):
        raise ServingError(
            400,
            f"input '{name}' has shape {_shape_text(shape)}, but the signature takes "
            f"{_shape_text(wanted)} (-1: any size; the first is the batch)",
        )


def _parse(value, dtype):
    """A JSON value as `(leaves, shape)`: its scalars, converted to `dtype`, in row-major
    order, and the shape its first elements give (every list must agree)."""
    convert = _converter(dtype)
    shape = _shape(value)
    if len(shape) > MAX_RANK:
        raise BadValue(f"the value nests {len(shape)} lists deep; at most {MAX_RANK} are read")
    leaves = []
    _flatten(value, shape, 0, leaves, convert)
    return leaves, shape


def _shape(value):
    shape = []
    while isinstance(value, list) and len(shape) <= MAX_RANK:
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return tuple(shape)


def _flatten(value, shape, level, leaves, convert):
    if level == len(shape):
        if isinstance(value, list):
            raise BadValue(f"Encountered list at unexpected level: {level} expected < {len(shape)}")
        leaves.append(convert(value))
        return
    if not isinstance(value, list):
        raise BadValue(
            f"JSON Value: {_debug(value)} found at incorrect level: {level + 1} in the JSON "
            f"DOM. Expected at level: {len(shape)}"
        )
    if len(value) != shape[level]:
        raise BadValue(
            f"Encountered list at unexpected size: {len(value)} at level: {level} expected "
            f"size: {shape[level]}"
        )
    for element in value:
        _flatten(element, shape, level + 1, leaves, convert)


def _array(leaves, shape, dtype):
    if dtype == "DT_STRING":
        array = np.empty(len(leaves), dtype=object)
        array[:] = leaves
        return array.reshape(shape)
    return np.array(leaves, dtype=_NUMPY[dtype]).reshape(shape)


def _shape_text(shape):
    return "[" + ",".join(str(d) for d in shape) + "]"


def _converter(dtype):
    if dtype == "DT_STRING":
        return _string
    if dtype in _FLOATS:
        return _float_of(dtype)
    if dtype in _INTEGERS:
        return _integer_of(dtype)
    if dtype == "DT_BOOL":
        return _boolean
    raise ServingError(
        501, f"Conversion of JSON values to type: {_type_name(dtype)} is not implemented"
    )


def _string(leaf):
    if isinstance(leaf, str):
        return leaf.encode("utf-8", "surrogatepass")
    if isinstance(leaf, dict):
        if not _is_b64(leaf) or not isinstance(leaf["b64"], str):
            raise BadValue(f"JSON Value: {_debug(leaf)} not formatted correctly for base64 data")
        encoded = leaf["b64"]
        try:
            # Padding may be left out, as absl's Base64Unescape allows.
            return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise BadValue(f"Unable to base64 decode {_debug(leaf['b64'])}") from None
    raise _type_error(leaf, "DT_STRING")


def _float_of(dtype):
    # As TensorFlow Serving's IsLosslessDecimal: a finite number outside the type's range,
    # or an integer past its mantissa, is refused rather than rounded to inf or changed.
    info = np.finfo(_FLOATS[dtype])
    largest, exact = float(info.max), 2 ** (info.nmant + 1) - 1
    target = "float" if dtype == "DT_FLOAT" else "double"

    def convert(leaf):
        if isinstance(leaf, bool) or not isinstance(leaf, int | float):
            raise _type_error(leaf, dtype)
        if isinstance(leaf, int):
            lossy = abs(leaf) > exact
        else:
            lossy = math.isfinite(leaf) and abs(leaf) > largest
        if lossy:
            raise BadValue(
                f"Cannot convert JSON value: {_debug(leaf)} to {target} without loss of precision."
            )
        return float(leaf)

    return convert


def _integer_of(dtype):
    low, high = _INTEGER_RANGES[dtype]

    def convert(leaf):
        if isinstance(leaf, bool) or not isinstance(leaf, int) or not low <= leaf <= high:
            raise _type_error(leaf, dtype)
        return leaf

    return convert


def _boolean(leaf):
    if not isinstance(leaf, bool):
        raise _type_error(leaf, "DT_BOOL")
    return leaf


def _type_error(leaf, dtype):
    return BadValue(
        f"JSON Value: {_debug(leaf)} Type: {_json_type(leaf)} is not of expected type: "
        f"{_type_name(dtype)}"
    )


def _json_type(value):
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    return "String" if isinstance(value, str) else "Number"


def _type_name(dtype):
    """TensorFlow's name of a dtype, as its messages write it: `DT_FLOAT` is `float`."""
    return dtype.removeprefix("DT_").lower()


def _debug(value, limit=256):
    """A JSON value as error messages show it, cut at `limit` characters."""
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_response(form, outputs):
    """The JSON body answering a predict request: `predictions` (row form: a list with
    one element per example) or `outputs` (columnar), from named numpy outputs.

    Raises:
        ServingError: 400 when outputs cannot be written as rows (a scalar output, or
            outputs of different batch sizes): the columnar form can carry them.
    """
    names = sorted(outputs)
    arrays = {name: np.asarray(outputs[name]) for name in names}
    if form == COLUMNAR:
        columns = {name: _json_values(name, arrays[name]) for name in names}
        body = {"outputs": columns[names[0]] if len(names) == 1 else columns}
    else:
        batch = None
        for name in names:
            if arrays[name].ndim == 0:
                raise ServingError(400, f"Tensor name: {name} has no shape information")
            if batch is not None and len(arrays[name]) != batch:
                raise ServingError(
                    400,
                    f"Tensor name: {name} has inconsistent batch size: {len(arrays[name])} "
                    f"expecting: {batch}",
                )
            batch = len(arrays[name])
        columns = {name: _json_values(name, arrays[name]) for name in names}
        if len(names) == 1:
            body = {"predictions": columns[names[0]]}
        else:
            body = {
                "predictions": [{name: columns[name][i] for name in names} for i in range(batch)]
            }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _json_values(name, array):
    if array.dtype == object or array.dtype.kind in "SU":
        encode = _b64 if name.endswith("_bytes") else _text
        return _nest([encode(value) for value in array.ravel()], array.shape)
    if array.dtype in (np.float32, np.float16):
        # The shortest text that reads back as the same float32, rather than the float64
        # digits of a float32 value (0.1, not 0.10000000149011612).
        return _nest([float(text) for text in array.ravel().astype(str)], array.shape)
    return array.tolist()


def _b64(value):
    raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
    return {"b64": base64.b64encode(raw).decode("ascii")}


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _nest(flat, shape):
    """A flat row-major list as nested lists of `shape`."""
    if not shape:
        return flat[0]
    if 0 in shape:
        return np.empty(shape).tolist()
    for size in reversed(shape[1:]):
        flat = [flat[i : i + size] for i in range(0, len(flat), size)]
    return flat
