"""TensorFlow Serving's JSON for tensors, read and written as its json_tensor.cc does."""

import base64
import json
import math

import numpy as np
import pytest

from keras_bigmodel.servables import ServingError, TensorInfo
from keras_bigmodel.tensor_json import format_response, parse_request, request_tensors

TEXT = {"text": TensorInfo("DT_STRING", (-1,))}
TABLE = {
    "rooms": TensorInfo("DT_FLOAT", (-1,)),
    "ocean": TensorInfo("DT_STRING", (-1,)),
    "floors": TensorInfo("DT_INT64", (-1,)),
}
PIXELS = {"pixels": TensorInfo("DT_FLOAT", (-1, 2, 2))}


def tensors(body, inputs):
    return request_tensors(parse_request(json.dumps(body).encode()), inputs)


def refusal(body, inputs=TEXT, status=400):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(ServingError) as caught:
        request_tensors(parse_request(raw), inputs)
    assert caught.value.status == status, caught.value.message
    return caught.value.message


def test_row_format_bare_values_named_objects_and_b64_give_the_same_tensor():
    bare, rows = tensors({"instances": ["free prize", "déjà vu?"]}, TEXT)
    named, _ = tensors({"instances": [{"text": "free prize"}, {"text": "déjà vu?"}]}, TEXT)
    encoded = base64.b64encode("déjà vu?".encode()).decode()
    b64, _ = tensors({"instances": ["free prize", {"b64": encoded}]}, TEXT)
    assert rows == 2
    for found in (bare, named, b64):
        assert found["text"].dtype == object
        assert found["text"].tolist() == [b"free prize", "déjà vu?".encode()]


def test_columnar_format_and_several_inputs():
    found, rows = tensors(
        {"inputs": {"rooms": [3.5, 2], "ocean": ["NEAR BAY", "INLAND"], "floors": [1, 2]}},
        TABLE,
    )
    assert rows == 2
    assert found["rooms"].dtype == np.float32 and found["rooms"].tolist() == [3.5, 2.0]
    assert found["floors"].dtype == np.int64 and found["floors"].tolist() == [1, 2]
    assert found["ocean"].tolist() == [b"NEAR BAY", b"INLAND"]
    bare, _ = tensors({"inputs": ["a", "b", "c"]}, TEXT)
    assert bare["text"].tolist() == [b"a", b"b", b"c"]
    # As TensorFlow Serving does, columnar keys the signature does not take are ignored.
    extra, _ = tensors({"inputs": {"text": ["a"], "note": 1}}, TEXT)
    assert extra["text"].tolist() == [b"a"]


def test_nan_and_infinity_are_read_for_float_inputs():
    body = b'{"instances": [{"rooms": NaN, "ocean": "x", "floors": 1},' \
        b' {"rooms": -Infinity, "ocean": "y", "floors": 2}]}'  # fmt: skip
    found, _ = request_tensors(parse_request(body), TABLE)
    assert math.isnan(found["rooms"][0]) and found["rooms"][1] == -np.inf
    # The largest of each kind that converts exactly is read, as TensorFlow Serving does.
    row = {"rooms": -(2**24 - 1), "ocean": "x", "floors": 1}
    found, _ = tensors({"instances": [row, {**row, "rooms": -3.4e38}]}, TABLE)
    assert found["rooms"].tolist() == [-(2**24 - 1), np.float32(-3.4e38)]


def test_nested_shapes_stack_by_instance():
    found, rows = tensors({"instances": [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]}, PIXELS)
    assert rows == 2 and found["pixels"].shape == (2, 2, 2)
    assert found["pixels"][1].tolist() == [[5.0, 6.0], [7.0, 8.0]]


@pytest.mark.parametrize(
    "body, message",
    [
        (b"{oops", "JSON Parse error: Expecting property name enclosed in double quotes at "
         "offset: 1"),
        (b"", "JSON Parse error: The document is empty"),
        (b"[1, 2]", "JSON Value: [1, 2] Is not object"),
        ({"instances": ["a"], "inputs": ["a"]}, "Not formatted correctly expecting only one of "
         "'inputs' or 'instances' keys to exist"),
        ({"signature": "x"}, "Missing 'inputs' or 'instances' key"),
        ({"instances": "a"}, "JSON Value: \"a\" Expecting 'instances' to be an list/array"),
        ({"instances": []}, "JSON Value: [] No values in 'instances' array"),
        ({"instances": ["a"], "signature_name": 3}, "'signature_name' key must be a string"),
        ({"instances": [1]}, "Failed to process element: 0 of 'instances' list. Error: JSON "
         "Value: 1 Type: Number is not of expected type: string"),
        ({"instances": ["a", {"b64": "!!"}]}, "Failed to process element: 1 of 'instances' "
         "list. Error: Unable to base64 decode \"!!\""),
        ({"instances": [{"b64": 5}]}, "JSON Value: {\"b64\": 5} not formatted correctly for "
         "base64 data"),
        ({"instances": ["a", {"text": "b"}]}, "Expecting value/list but got object at item 1 "
         "of input list"),
        ({"instances": [{"text": "a"}, "b"]}, "Expecting object but got list at item 1 of "
         "input list"),
        ({"instances": [{"text": "a", "txt": "b"}]}, "Failed to process element: 0 key: txt "
         "of 'instances' list. Error: JSON object: does not have named input: txt"),
        ({"instances": [["a", "b"]]}, "input 'text' has shape [1,2], but the signature takes "
         "[-1]"),
        ({"inputs": "a"}, "input 'text' has shape [], but the signature takes [-1]"),
        ({"inputs": {"txt": ["a"]}}, "Missing named input: text in 'inputs' object."),
        ({"inputs": [["a"], "b"]}, "input 'text': JSON Value: \"b\" found at incorrect "
         "level: 2 in the JSON DOM. Expected at level: 2"),
    ],
)  # fmt: skip
def test_bad_requests_get_400_with_tensorflow_serving_wording(body, message):
    assert message in refusal(body)


@pytest.mark.parametrize(
    "body, message",
    [
        ({"instances": [{"rooms": 1, "ocean": "x"}]}, "Failed to process element: 0 of "
         "'instances' list. JSON object: {\"rooms\": 1, \"ocean\": \"x\"} keys must be equal "
         "to: floors,ocean,rooms"),
        ({"instances": [1.5]}, "instances is a plain list, but expecting list of objects"),
        ({"inputs": [1.5]}, "inputs is a plain value/list, but expecting an object"),
        ({"instances": [{"rooms": "3", "ocean": "x", "floors": 1}]}, "Failed to process "
         "element: 0 key: rooms of 'instances' list. Error: JSON Value: \"3\" Type: String is "
         "not of expected type: float"),
        ({"instances": [{"rooms": 3, "ocean": "x", "floors": 1.5}]}, "JSON Value: 1.5 Type: "
         "Number is not of expected type: int64"),
        ({"instances": [{"rooms": True, "ocean": "x", "floors": 1}]}, "JSON Value: true "
         "Type: True is not of expected type: float"),
        ({"instances": [{"rooms": 3, "ocean": "x", "floors": 2**70}]}, "is not of expected "
         "type: int64"),
        ({"instances": [{"rooms": 1e300, "ocean": "x", "floors": 1}]}, "key: rooms of "
         "'instances' list. Error: Cannot convert JSON value: 1e+300 to float without loss "
         "of precision."),
        ({"instances": [{"rooms": 2**24 + 1, "ocean": "x", "floors": 1}]}, "Cannot convert "
         "JSON value: 16777217 to float without loss of precision."),
        ({"inputs": {"rooms": [1, 2], "ocean": ["x"], "floors": [1, 2]}}, "input tensors "
         "must have the same size in dimension 0 (batch); got floors: 2, ocean: 1, rooms: 2"),
    ],
)  # fmt: skip
def test_bad_table_requests_name_the_element_and_input(body, message):
    assert message in refusal(body, TABLE)


def test_ragged_and_misshapen_instances_are_refused():
    assert "Expecting shape [2,2] but got: [1,2]" in refusal(
        {"instances": [[[1, 2], [3, 4]], [[5, 6]]]}, PIXELS
    )
    assert "Encountered list at unexpected size: 1 at level: 1 expected size: 2" in refusal(
        {"instances": [[[1, 2], [3]]]}, PIXELS
    )
    assert "Encountered list at unexpected level: 2 expected < 2" in refusal(
        {"instances": [[[1, 2], [[3], 4]]]}, PIXELS
    )


def test_an_input_of_a_dtype_json_cannot_carry_is_501():
    assert "to type: half" in refusal(
        {"instances": [1.0]}, {"x": TensorInfo("DT_HALF", (-1,))}, 501
    )


def classifier_outputs():
    return {
        "label": np.array([b"spam", b"ham"], dtype=object),
        "probabilities": np.array([[0.1, 0.9], [1.0, 0.0]], dtype=np.float32),
    }


def test_row_answers_one_object_per_instance_and_columnar_one_list_per_output():
    rows = json.loads(format_response("instances", classifier_outputs()))
    assert rows == {
        "predictions": [
            {"label": "spam", "probabilities": [0.1, 0.9]},
            {"label": "ham", "probabilities": [1.0, 0.0]},
        ]
    }
    columns = json.loads(format_response("inputs", classifier_outputs()))
    assert columns == {
        "outputs": {"label": ["spam", "ham"], "probabilities": [[0.1, 0.9], [1.0, 0.0]]}
    }
    # One output: the values themselves, without its name.
    single = {"prediction": np.array([1.5, np.nan], dtype=np.float32)}
    assert format_response("instances", single) == b'{"predictions":[1.5,NaN]}'
    assert format_response("inputs", single) == b'{"outputs":[1.5,NaN]}'


def test_outputs_named_bytes_are_base64_and_rows_need_one_batch_size():
    found = json.loads(
        format_response("instances", {"image_bytes": np.array([b"\xff\x00"], dtype=object)})
    )
    assert found == {"predictions": [{"b64": base64.b64encode(b"\xff\x00").decode()}]}
    uneven = {"a": np.zeros(2, np.float32), "b": np.zeros(3, np.float32)}
    with pytest.raises(
        ServingError, match="Tensor name: b has inconsistent batch size: 3 expecting: 2"
    ):
        format_response("instances", uneven)
    assert json.loads(format_response("inputs", uneven)) == {
        "outputs": {"a": [0.0, 0.0], "b": [0.0, 0.0, 0.0]}
    }
