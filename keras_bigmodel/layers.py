"""Functions and layers the saved models refer to by registered name.

`model.keras` files of text models name `bigmodel>standardize_text`: import this module
(or `keras_bigmodel.runs`, which does) before `keras.models.load_model`.
"""

import keras
import tensorflow as tf

# Runs of five or more digits are phone numbers, short codes and references: one token for
# all of them generalises, while each number on its own would be a word seen once.
LONG_NUMBER = r"\d{5,}"
# Everything but letters, digits, apostrophes and currency signs separates words;
# currency signs become words of their own.
SEPARATORS = r"[^\w'£$€]+"
CURRENCY = r"([£$€])"


@keras.saving.register_keras_serializable(package="bigmodel")
def standardize_text(texts):
    """Lower-cases text and splits words at punctuation, keeping signs that carry meaning.

    Unlike Keras' `lower_and_strip_punctuation`, which deletes punctuation and so glues
    "FREE>Ringtone!Reply" into one unknown word, this puts a space where punctuation was,
    makes `£`, `$` and `€` words of their own, and maps long numbers to `0number`.
    """
    texts = tf.strings.lower(texts)
    texts = tf.strings.regex_replace(texts, LONG_NUMBER, " 0number ")
    texts = tf.strings.regex_replace(texts, CURRENCY, r" \1 ")
    return tf.strings.regex_replace(texts, SEPARATORS, " ")
