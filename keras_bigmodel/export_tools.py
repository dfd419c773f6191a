"""What a caller of a TFLite text model needs to make its input, in plain Python.

A text model's `.tflite` file takes token ids, not strings: splitting text and looking
words up need TensorFlow operations that TFLite's built-in set lacks. This module turns
texts into the ids the exported model expects, with nothing but the standard library and
NumPy, from the `vocabulary.txt` and `preprocessing.json` beside `model.tflite`:

    from keras_bigmodel.export_tools import Tokenizer

    tokenizer = Tokenizer.from_folder("exports/sms/2")
    ids = tokenizer.pad(tokenizer.tokenize(["Call now to claim your prize!"]))
    probabilities = runner(token_ids=ids)["probabilities"]

It computes what the model's own vectorizer computes (`keras_bigmodel.layers`
`standardize_text`, a `TextVectorization` of the vocabulary, and `clip_token_ids`), and
the tests check that the two give the same ids. It imports no TensorFlow, and may be
copied on its own.
"""

import json
import re
from pathlib import Path

# The text rules of `standardize_text`, which imports these: TensorFlow's regular
# expressions (RE2) know ASCII letters and digits only as `\w` and `\d`, and
# `tf.strings.lower` lowers ASCII letters only, so the Python rules are ASCII too.
#: runs of five or more digits (phone numbers, codes) become one token.
LONG_NUMBER = r"\d{5,}"
#: everything but letters, digits, apostrophes and currency signs separates words.
SEPARATORS = r"[^\w'£$€]+"
#: currency signs become words of their own.
CURRENCY = r"([£$€])"
#: what a long number becomes.
NUMBER_TOKEN = "0number"

PADDING_ID = 0
UNKNOWN_ID = 1
VOCABULARY_FILE = "vocabulary.txt"
PREPROCESSING_FILE = "preprocessing.json"

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_LONG_NUMBER = re.compile(LONG_NUMBER, re.ASCII)
_CURRENCY = re.compile(CURRENCY, re.ASCII)
_SEPARATORS = re.compile(SEPARATORS, re.ASCII)


def standardize(text):
    """Lower-cases ASCII letters, maps long numbers to one token, and splits words at
    punctuation, keeping currency signs as words (`standardize_text`'s rules)."""
    text = text.translate(_ASCII_LOWER)
    text = _LONG_NUMBER.sub(f" {NUMBER_TOKEN} ", text)
    text = _CURRENCY.sub(r" \1 ", text)
    return _SEPARATORS.sub(" ", text)


class Tokenizer:
    """Turns texts into a text model's token ids.

    Args:
        vocabulary: the words in id order, as `vocabulary.txt` lists them: the padding
            entry (an empty line, id 0), the unknown-word entry (id 1), then the words.
        max_length: the most ids kept of each text, from its start.
    """

    def __init__(self, vocabulary, max_length):
        self.vocabulary = list(vocabulary)
        self.max_length = max_length
        self._ids = {word: i for i, word in enumerate(self.vocabulary) if i > UNKNOWN_ID}

    @classmethod
    def from_folder(cls, folder):
        """Reads `vocabulary.txt` and `preprocessing.json` from an exported version folder."""
        folder = Path(folder)
        settings = json.loads((folder / PREPROCESSING_FILE).read_text(encoding="utf-8"))
        words = (folder / VOCABULARY_FILE).read_text(encoding="utf-8").split("\n")
        return cls(words[: settings["vocabulary_size"]], settings["max_length"])

    def tokenize(self, texts):
        """Returns each text's ids, a list per text: at most `max_length`, and at least
        one (a text without any word is one unknown word, as in the model)."""
        rows = []
        for text in texts:
            words = standardize(text).split()
            ids = [self._ids.get(word, UNKNOWN_ID) for word in words][: self.max_length]
            rows.append(ids or [UNKNOWN_ID])
        return rows

    def pad(self, rows):
        """Stacks lists of ids into an int32 array, padded with 0 after each row's ids."""
        import numpy as np

        longest = max((len(row) for row in rows), default=1)
        padded = np.full((len(rows), longest), PADDING_ID, dtype=np.int32)
        for i, row in enumerate(rows):
            padded[i, : len(row)] = row
        return padded
