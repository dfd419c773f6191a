import numpy as np
import pandas as pd
import pytest

from keras_bigmodel.data.labels import class_names_from, encode_labels, label_strings
from keras_bigmodel.data.split import split_indices
from keras_bigmodel.data.tables import fingerprint, read_table
from keras_bigmodel.errors import UserError
from tests.tiny_data import EXAMPLES


@pytest.fixture
def frame():
    return pd.DataFrame(
        {
            "text": ["free prize now", "see you soon", 'a "quoted" one', "NA"],
            "label": ["spam", "ham", "ham", "ham"],
        }
    )


def test_reads_every_format_alike(tmp_path, frame):
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_csv(tmp_path / "t.tsv", index=False, sep="\t", quoting=3)
    frame.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    frame.to_parquet(tmp_path / "t.parquet")
    for name in ("t.csv", "t.tsv", "t.jsonl", "t.parquet"):
        table = read_table(tmp_path / name)
        assert table.frame["text"].tolist() == frame["text"].tolist(), name
        assert table.frame["label"].tolist() == frame["label"].tolist(), name


def test_real_tsv_with_quote_characters_keeps_every_row():
    table = read_table(EXAMPLES / "sms_spam.tsv")
    assert len(table.frame) == 5574
    assert table.frame["Label"].value_counts().to_dict() == {"ham": 4827, "spam": 747}


def test_format_flag_overrides_extension(tmp_path, frame):
    frame.to_csv(tmp_path / "data.txt", index=False)
    with pytest.raises(UserError, match="unknown table extension '.txt'.*--format"):
        read_table(tmp_path / "data.txt")
    assert len(read_table(tmp_path / "data.txt", "csv").frame) == 4


def test_glob_of_shards_is_one_table(tmp_path, frame):
    frame.iloc[:2].to_csv(tmp_path / "part-0.csv", index=False)
    frame.iloc[2:].to_csv(tmp_path / "part-1.csv", index=False)
    table = read_table(str(tmp_path / "part-*.csv"))
    assert len(table.frame) == 4 and len(table.paths) == 2
    assert fingerprint(table.paths) != fingerprint(table.paths[:1])


def test_shards_with_different_columns(tmp_path, frame):
    frame.to_csv(tmp_path / "part-0.csv", index=False)
    frame.rename(columns={"text": "body"}).to_csv(tmp_path / "part-1.csv", index=False)
    with pytest.raises(UserError, match="part-1.csv: columns"):
        read_table(str(tmp_path / "part-*.csv"))


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (None, "missing.csv", "missing.csv: no such file"),
        (b"", "empty.csv", "empty.csv: the file is empty"),
        (b"text,label\n", "header.csv", "has no rows"),
        (b"text,label\n\xff\xfe,1\n", "latin.csv", "not UTF-8"),
        (b'{"text": 1}\n{oops\n', "broken.jsonl", "broken.jsonl: line 2 is not valid JSON"),
        (b"not parquet", "broken.parquet", "cannot read as parquet"),
    ],
)
def test_malformed_files(tmp_path, content, name, message):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(UserError, match=message):
        read_table(tmp_path / name)


def test_glob_matching_nothing(tmp_path):
    with pytest.raises(UserError, match="no files match"):
        read_table(str(tmp_path / "part-*.csv"))


def test_missing_column_names_what_there_is(tmp_path, frame):
    frame.to_csv(tmp_path / "t.csv", index=False)
    table = read_table(tmp_path / "t.csv")
    with pytest.raises(UserError, match=r"no column 'SMS' \(columns: text, label\).*--text-col"):
        table.require_columns(["SMS"], "--text-column")


def test_labels_integers_and_strings():
    labels = label_strings(pd.Series([1.0, 0.0, 2.0]), "t.csv", "label")
    assert labels.tolist() == ["1", "0", "2"]
    names = class_names_from(np.array(["10", "9", "2"], dtype=object), "t.csv", "label")
    assert names == ["2", "9", "10"]  # numeric order for integer labels
    assert encode_labels(np.array(["9", "10"], dtype=object), names, "t", "label").tolist() == [
        1,
        2,
    ]


def test_label_errors_name_the_row():
    with pytest.raises(UserError, match="row 2 has no value in label column 'y'"):
        label_strings(pd.Series(["a", None, "b"]), "t.csv", "y")
    with pytest.raises(UserError, match="label column 'y' has 1 class"):
        class_names_from(np.array(["a", "a"], dtype=object), "t.csv", "y")
    with pytest.raises(UserError, match="row 2 has label 'c'.*not one of"):
        encode_labels(np.array(["a", "c"], dtype=object), ["a", "b"], "t.csv", "y")


def test_stratified_split_is_fixed_by_seed():
    labels = np.array([0] * 90 + [1] * 10)
    train, val = split_indices(100, 0.2, seed=3, labels=labels)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(100))
    assert (labels[val] == 1).sum() == 2 and (labels[val] == 0).sum() == 18
    again = split_indices(100, 0.2, seed=3, labels=labels)
    assert np.array_equal(val, again[1])
    assert not np.array_equal(val, split_indices(100, 0.2, seed=4, labels=labels)[1])


def test_training_order_is_a_new_permutation_each_pass_and_resumes_anywhere():
    import tensorflow as tf

    from keras_bigmodel.data.order import TrainingOrder

    order = TrainingOrder(seed=42)
    batches = order.batches(8, 3)  # 3 batches a pass: 3, 3 and 2 rows
    stream = [b.tolist() for b in batches.take(9).as_numpy_iterator()]
    passes = [sum(stream[i : i + 3], []) for i in range(0, 9, 3)]
    assert [len(b) for b in stream[:3]] == [3, 3, 2]
    for index, rows in enumerate(passes):
        expected = tf.random.experimental.stateless_shuffle(
            tf.range(8, dtype=tf.int64), seed=tf.constant([42, index], tf.int64)
        )
        assert rows == expected.numpy().tolist()  # keyed by (seed, pass) alone
    assert passes[0] != passes[1] != passes[2]
    # Started at any batch, the same dataset gives the very batches from there on.
    for start in (1, 4, 7):
        order.start_at(start)
        assert [b.tolist() for b in batches.take(2).as_numpy_iterator()] == stream[start:][:2]
    # A pipeline that does not know its pass length reads its way there.
    order.start_at(5)
    unknown = order.passes(
        lambda index: tf.data.Dataset.from_tensors(index).repeat(3), batches_per_pass=None
    )
    assert list(unknown.take(3).as_numpy_iterator()) == [1, 2, 2]


def test_batches_by_length_hold_every_row_once_with_little_padding():
    from keras_bigmodel.data.order import LENGTH_WINDOW_BATCHES, TrainingOrder

    rng = np.random.default_rng(0)
    rows, size = 1000, 16
    lengths = rng.integers(1, 65, rows)
    order = TrainingOrder(seed=7)
    grouped = order.batches(rows, size, lengths)
    per_pass = -(-rows // size)  # 63: 62 full batches and one of 8 rows
    stream = [b.tolist() for b in grouped.take(2 * per_pass).as_numpy_iterator()]
    first, second = stream[:per_pass], stream[per_pass:]
    for one_pass in (first, second):
        assert sorted(sum(one_pass, [])) == list(range(rows))
        assert [len(b) for b in one_pass] == [size] * (per_pass - 1) + [rows % size]
    assert first != second
    # Each batch spans a narrow band of lengths: padded to their longest, they carry a
    # fraction of the padding that random batches (with the same rows per pass) carry.
    padded = sum(len(b) * lengths[b].max() for b in first)
    shuffled = [b.tolist() for b in order.batches(rows, size).take(per_pass).as_numpy_iterator()]
    assert padded < 0.6 * sum(len(b) * lengths[b].max() for b in shuffled)
    # The batches of a window are shuffled across the pass, not visited shortest first.
    longest = [int(lengths[b].max()) for b in first[:LENGTH_WINDOW_BATCHES]]
    assert longest != sorted(longest)
    # The same batches on every run, and from any start batch (resuming).
    assert [b.tolist() for b in grouped.take(per_pass).as_numpy_iterator()] == first
    order.start_at(per_pass + 5)
    assert [b.tolist() for b in grouped.take(3).as_numpy_iterator()] == second[5:8]


def test_streamed_blocks_are_grouped_by_length_within_each_block():
    import tensorflow as tf

    from keras_bigmodel.data.order import TrainingOrder

    rows, size, block = 300, 8, 100  # blocks of 96 rows: 12 whole batches each
    lengths = np.random.default_rng(1).integers(1, 40, rows)
    dataset = tf.data.Dataset.from_tensor_slices((np.arange(rows), lengths))
    order = TrainingOrder(seed=3)
    batches = order.stream_batches(
        dataset, size, block, batches_in_pass=38, length_of=lambda columns: columns[1]
    )
    one_pass = [(ids.tolist(), lens) for ids, lens in batches.take(38).as_numpy_iterator()]
    assert sorted(sum((ids for ids, _ in one_pass), [])) == list(range(rows))
    # No batch mixes two blocks, and within a block a batch's lengths are close together.
    for ids, lens in one_pass:
        assert len({i // 96 for i in ids}) == 1
        assert np.array_equal(lens, lengths[ids])
    spread = np.mean([lens.max() - lens.min() for _, lens in one_pass])
    assert spread < 4, spread


def test_validation_in_order_of_length():
    from keras_bigmodel.data.order import in_order

    lengths = np.array([5, 1, 3, 1, 9])
    found = [b.tolist() for b in in_order(5, 2, lengths).as_numpy_iterator()]
    assert found == [[1, 3], [2, 0], [4]]
    assert [b.tolist() for b in in_order(5, 2).as_numpy_iterator()] == [[0, 1], [2, 3], [4]]
