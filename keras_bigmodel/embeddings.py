"""Pretrained word vectors for a vocabulary: GloVe / word2vec text files, or `.npy` arrays.

    read_vectors(path, vocabulary, counts, seed) -> PretrainedVectors

A text file has one word per line followed by its numbers, separated by spaces, and may
start with word2vec's header line (the count of words and of numbers per word). A `.npy`
file holds one row per word, and its words are in `FILE.vocab` beside it, or else in
`vocabulary.txt` in the same folder, one per line in row order.

Files of pretrained vectors are large (GloVe's are gigabytes): they are read line by line,
and only the vectors of the vocabulary's words are kept.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_bigmodel.errors import UserError


@dataclass
class PretrainedVectors:
    """The starting embedding matrix of a vocabulary, and how much of it the file held.

    `matrix` has one row per vocabulary index: padding (0, zeros), out-of-vocabulary (1)
    and the words; rows of words the file lacks are random.
    """

    matrix: np.ndarray
    path: str
    words_found: int
    words: int
    tokens_found: int
    tokens: int

    @property
    def dim(self):
        return self.matrix.shape[1]

    def coverage(self):
        """What `run.yaml` records: the file, and the shares of vocabulary and of training
        tokens whose word has a pretrained vector."""
        return {
            "file": self.path,
            "dim": int(self.dim),
            "vocabulary_found": self.words_found,
            "vocabulary": self.words,
            "vocabulary_share": round(self.words_found / max(self.words, 1), 4),
            "token_share": round(self.tokens_found / max(self.tokens, 1), 4),
        }


def read_vectors(path, vocabulary, counts, seed):
    """Builds the embedding matrix of `vocabulary` from a file of pretrained vectors.

    Args:
        path: a GloVe / word2vec text file, or a `.npy` file with its word list beside it.
        vocabulary: the vectorizer's vocabulary: padding, out-of-vocabulary, then words.
        counts: how often each vocabulary entry occurs in the training text (same order),
            for the share of training tokens covered.
        seed: seeds the random rows of words the file lacks.

    Raises:
        UserError: a missing or malformed file, naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--embeddings {path}: no such file.")
    wanted = {word: index for index, word in enumerate(vocabulary) if index >= 2}
    if path.suffix == ".npy":
        dim, found = _read_npy(path, wanted)
    else:
        dim, found = _read_text(path, wanted)
    if not found:
        raise UserError(
            f"--embeddings {path}: none of the {len(wanted)} vocabulary words has a vector "
            "there; is it a file of word vectors for this language and casing (lower case)?"
        )
    rows = sorted(found)
    vectors = np.stack([found[index] for index in rows])
    # Random rows of the found vectors' spread, so that no word starts out louder or
    # quieter than the others (as Kim, 2014, initialised words missing from word2vec).
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, vectors.std(), size=(len(vocabulary), dim)).astype("float32")
    matrix[0] = 0.0  # padding: masked, never read
    matrix[rows] = vectors
    counts = np.asarray(counts)
    return PretrainedVectors(
        matrix=matrix,
        path=str(path),
        words_found=len(found),
        words=len(wanted),
        tokens_found=int(counts[rows].sum()),
        tokens=int(counts[1:].sum()),
    )


def _read_text(path, wanted):
    """Reads a GloVe / word2vec text file line by line; returns the dimension and the
    vectors of the wanted words by vocabulary index. Every line's count of numbers is
    checked; the numbers themselves only on the lines that are kept."""
    found, dim, number = {}, None, 0
    with open(path, encoding="utf-8", errors="strict") as lines:
        try:
            for number, line in enumerate(lines, start=1):
                fields = line.rstrip().split(" ")
                if number == 1 and len(fields) == 2 and all(f.isdigit() for f in fields):
                    dim = int(fields[1])  # word2vec's header: words, numbers per word
                    continue
                if len(fields) < 2:
                    if not line.strip():
                        continue
                    raise _malformed(path, number, "a word without numbers")
                if dim is None:
                    dim = len(fields) - 1
                # A word may itself hold spaces (GloVe's 840B file has some): the last
                # `dim` fields are the numbers.
                if len(fields) - 1 < dim or (len(fields) - 1 > dim and _number(fields[-dim - 1])):
                    raise _malformed(
                        path, number, f"{_count(fields)} numbers, where the file has {dim}"
                    )
                word = " ".join(fields[:-dim])
                index = wanted.get(word)
                if index is None or index in found:
                    continue
                try:
                    found[index] = np.asarray(fields[-dim:], dtype="float32")
                except ValueError:
                    raise _malformed(path, number, "a value that is not a number") from None
        except UnicodeDecodeError as exc:
            raise UserError(
                f"--embeddings {path}: near line {number + 1}, not UTF-8 text ({exc.reason}); "
                "give a GloVe / word2vec text file or a .npy file."
            ) from None
    if dim is None:
        raise UserError(f"--embeddings {path}: the file holds no vectors.")
    return dim, found


def _number(field):
    try:
        float(field)
    except ValueError:
        return False
    return True


def _count(fields):
    """The numbers a line holds after its word."""
    return sum(1 for field in fields[1:] if _number(field))


def _malformed(path, number, what):
    return UserError(
        f"--embeddings {path}: line {number} has {what}; each line must be a word followed "
        "by its numbers, separated by spaces."
    )


def _read_npy(path, wanted):
    words_file = path.with_suffix(".vocab")
    if not words_file.is_file():
        words_file = path.parent / "vocabulary.txt"
    if not words_file.is_file():
        raise UserError(
            f"--embeddings {path}: a .npy file needs its words, one per line in row order, "
            f"in {path.with_suffix('.vocab')} or {words_file}."
        )
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise UserError(f"--embeddings {path}: not a NumPy array file ({exc}).") from None
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise UserError(
            f"--embeddings {path}: expected a 2-D array of numbers (one row per word), "
            f"found shape {array.shape} of {array.dtype}."
        )
    words = words_file.read_text(encoding="utf-8").splitlines()
    if len(words) != array.shape[0]:
        raise UserError(
            f"--embeddings {path}: {words_file} has {len(words)} words for the array's "
            f"{array.shape[0]} rows."
        )
    found = {}
    for row, word in enumerate(words):
        index = wanted.get(word)
        if index is not None and index not in found:
            found[index] = np.asarray(array[row], dtype="float32")
    return array.shape[1], found
