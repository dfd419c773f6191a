"""Pretrained word vectors (`--embeddings`): the formats, coverage, freezing, bad files.

The vectors are made here, from a co-occurrence SVD of the bundled SMS text: nothing is
downloaded.
"""

import re

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

import keras_bigmodel as kb
from cli.main import bigmodel
from keras_bigmodel.errors import UserError
from keras_bigmodel.runs import open_run
from tests.tiny_data import sms_table

DIM = 6
TINY = {"epochs": 2, "batch_size": 8, "quiet": True, "val_split": 0.0, "min_frequency": 1}
OPTIONS = {
    "lstm": {"units": 4},
    "transformer": {"num_heads": 2, "num_layers": 1, "ff_dim": 8},
}


def svd_vectors(texts, dim=DIM, window=2):
    """Word vectors from the SVD of the words' co-occurrence counts (log-scaled) within
    `window` words: the classic count-based embedding, made from the data at hand."""
    sentences = [re.findall(r"[a-z']+", text.lower()) for text in texts]
    words = sorted({w for s in sentences for w in s})
    index = {w: i for i, w in enumerate(words)}
    counts = np.zeros((len(words), len(words)))
    for sentence in sentences:
        for i, word in enumerate(sentence):
            for other in sentence[max(0, i - window) : i]:
                counts[index[word], index[other]] += 1
                counts[index[other], index[word]] += 1
    u, s, _ = np.linalg.svd(np.log1p(counts), full_matrices=False)
    return dict(zip(words, (u[:, :dim] * s[:dim]).astype("float32"), strict=True))


@pytest.fixture(scope="module")
def vectors(tmp_path_factory):
    """`(data, vectors, glove_file)`: the tiny SMS table, the vectors of about two thirds
    of its words (every third word left out, so coverage is partial) plus two words it
    never uses, and those vectors written in GloVe's text format."""
    folder = tmp_path_factory.mktemp("vectors")
    data = sms_table(folder)
    made = svd_vectors(pd.read_csv(data)["text"])
    kept = {w: v for i, (w, v) in enumerate(made.items()) if i % 3}
    kept["zyzzyva"] = kept["qwertyuiop"] = np.full(DIM, 0.5, "float32")
    glove = folder / "vectors.txt"
    glove.write_text("".join(f"{w} {' '.join(f'{x:.6f}' for x in v)}\n" for w, v in kept.items()))
    # As written: the model must start from the file's numbers, not from the SVD's.
    kept = {w: np.asarray(f"{' '.join(f'{x:.6f}' for x in v)}".split(), "float32")
            for w, v in kept.items()}  # fmt: skip
    return data, kept, glove


def embedding_of(run_dir):
    model = open_run(run_dir).load_model()
    vocabulary = model.get_layer("vectorizer").get_vocabulary()
    layer = next(
        layer
        for network in model.layers
        if hasattr(network, "layers")
        for layer in network.layers
        if layer.name == "embedding"
    )
    return model, vocabulary, layer


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_frozen_vectors_stay_as_the_file_gives_them(tmp_path, vectors, name):
    data, kept, glove = vectors
    result = kb.train(
        name,
        data=data,
        out=tmp_path / "run",
        embeddings=str(glove),
        freeze_embeddings=True,
        **TINY,
        **OPTIONS[name],
    )
    model, vocabulary, layer = embedding_of(result.run_dir)
    matrix = np.asarray(layer.embeddings)
    assert matrix.shape == (len(vocabulary), DIM)  # the file sets the size
    assert not layer.trainable
    found = [i for i, word in enumerate(vocabulary) if word in kept]
    assert 0 < len(found) < len(vocabulary) - 2
    for i in found:
        np.testing.assert_array_equal(matrix[i], kept[vocabulary[i]])
    missing = [i for i in range(2, len(vocabulary)) if vocabulary[i] not in kept]
    assert np.all(np.abs(matrix[missing]).sum(axis=1) > 0)  # random, not zero

    # Coverage, counted here on the training text with the model's own tokenizer.
    info = yaml.safe_load((result.run_dir / "run.yaml").read_text())
    assert info["config"]["embedding_dim"] == DIM  # as resolved, not left unset
    recorded = info["pretrained_vectors"]
    ids = np.asarray(model.get_layer("vectorizer")(pd.read_csv(data)["text"].tolist()))
    tokens = ids[ids > 0]
    assert recorded["vocabulary_found"] == len(found)
    assert recorded["vocabulary"] == len(vocabulary) - 2
    assert recorded["token_share"] == round(np.isin(tokens, found).mean(), 4)
    assert recorded["file"] == str(glove) and recorded["dim"] == DIM


def test_unfrozen_vectors_are_trained_from_the_file(tmp_path, vectors):
    data, kept, glove = vectors
    result = kb.train(
        "lstm", data=data, out=tmp_path / "run", embeddings=str(glove), **TINY, **OPTIONS["lstm"]
    )
    _, vocabulary, layer = embedding_of(result.run_dir)
    matrix = np.asarray(layer.embeddings)
    assert layer.trainable
    found = [i for i, word in enumerate(vocabulary) if word in kept]
    start = np.stack([kept[vocabulary[i]] for i in found])
    moved = np.abs(matrix[found] - start).max(axis=1)
    # Trained, but from the file's vectors: each moved by about the learning rate a step.
    assert np.all(moved > 1e-5) and np.all(moved < 0.1)


def test_npy_and_word2vec_files_give_the_same_matrix_as_glove(tmp_path, vectors):
    from keras_bigmodel.embeddings import read_vectors

    _, kept, glove = vectors
    vocabulary = ["", "[UNK]", "call", "zzz-not-there", *sorted(kept)[:20]]
    counts = [0, 3] + [1] * (len(vocabulary) - 2)
    expected = read_vectors(glove, vocabulary, counts, seed=1)

    np.save(tmp_path / "vectors.npy", np.stack(list(kept.values())))
    (tmp_path / "vectors.vocab").write_text("\n".join(kept) + "\n")
    word2vec = tmp_path / "word2vec.txt"
    word2vec.write_text(f"{len(kept)} {DIM}\n" + glove.read_text())
    for path in (tmp_path / "vectors.npy", word2vec):
        found = read_vectors(path, vocabulary, counts, seed=1)
        np.testing.assert_array_equal(found.matrix, expected.matrix)
        assert found.coverage() | {"file": ""} == expected.coverage() | {"file": ""}
    assert expected.words_found == 20 + ("call" in kept)
    assert expected.tokens_found == expected.words_found and expected.tokens == 3 + 22


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("call 0.1 0.2 0.3\nnow 0.1 0.2\n", "line 2 has 2 numbers, where the file has 3"),
        ("call 0.1 0.2 0.3\nnow 0.1 x 0.3\n", "line 2 has a value that is not a number"),
        ("call 0.1 0.2 0.3\nnow 0.1 0.2 0.3 0.4\n", "line 2 has 4 numbers, where the file has 3"),
        ("", "the file holds no vectors"),
        ("\x00\xff\xfe binary", "near line 1, not UTF-8 text"),
        ("nothing 0.1 0.2 0.3\n", "none of the"),
    ],
    ids=["short-line", "not-a-number", "long-line", "empty", "binary", "no-word-found"],
)
def test_a_bad_vector_file_is_named_with_its_line(tmp_path, content, message):
    data = sms_table(tmp_path, rows_per_class=10)
    path = tmp_path / "vectors.txt"
    path.write_bytes(content.encode("latin-1"))
    result = CliRunner().invoke(
        bigmodel,
        ["train", "lstm", "--data", str(data), "--embeddings", str(path),
         "--out", str(tmp_path / "run"), "--min-frequency", "1", "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert f"--embeddings {path}: {message}" in result.output
    assert not (tmp_path / "run").exists()


def test_freezing_needs_vectors_to_freeze(tmp_path, vectors):
    data, _, _ = vectors
    with pytest.raises(UserError, match="--freeze-embeddings keeps pretrained vectors"):
        kb.train("lstm", data=data, out=tmp_path / "run", freeze_embeddings=True, **TINY)
    assert not (tmp_path / "run").exists()


def test_an_explicit_embedding_dim_must_match_the_file(tmp_path, vectors):
    data, _, glove = vectors
    with pytest.raises(UserError, match=f"--embedding-dim 8: the vectors of --embeddings {glove}"):
        kb.train("lstm", data=data, out=tmp_path / "run", embeddings=str(glove),
                 embedding_dim=8, **TINY)  # fmt: skip
    assert not (tmp_path / "run").exists()
