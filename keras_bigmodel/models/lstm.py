"""The LSTM text classifier: word embeddings, a (bidirectional) LSTM, a softmax layer."""

from dataclasses import dataclass

from keras_bigmodel.config import option
from keras_bigmodel.models.registry import register
from keras_bigmodel.models.text_classifier import TextClassifierOptions, TextClassifierRecipe


@dataclass
class LSTMOptions(TextClassifierOptions):
    """Options of the LSTM text classifier."""

    units: int = option(32, "LSTM units (per direction).", minimum=1)
    bidirectional: bool = option(True, "Read each text in both directions.")
    average_embeddings: bool = option(
        True,
        "Also give the classifier the mean of the text's word vectors, beside the LSTM "
        "state: a bag-of-words path that keyword-driven texts favour.",
    )
    embedding_dropout: float = option(
        0.25,
        "Rate at which whole word vectors are dropped while training.",
        minimum=0.0,
        below=1.0,
    )


@register
class LSTMTextClassifier(TextClassifierRecipe):
    """Embedding -> LSTM (optionally bidirectional) -> dropout -> Dense softmax."""

    name = "lstm"
    summary = "Text classifier: word embeddings and a (bidirectional) LSTM."
    Options = LSTMOptions

    def build_network(self, preprocessing, options, num_outputs):
        import keras

        token_ids = keras.Input(shape=(None,), dtype="int64", name="token_ids")
        x = keras.layers.Embedding(
            preprocessing.vocabulary_size, options.embedding_dim, mask_zero=True, name="embedding"
        )(token_ids)
        x = keras.layers.SpatialDropout1D(options.embedding_dropout, name="embedding_dropout")(x)
        recurrent = keras.layers.LSTM(options.units, name="lstm")
        if options.bidirectional:
            recurrent = keras.layers.Bidirectional(recurrent, name="bidirectional")
        features = recurrent(x)
        if options.average_embeddings:
            # The mask makes the mean ignore padding, so a text's features do not depend
            # on the length of the batch it is in.
            mean = keras.layers.GlobalAveragePooling1D(name="mean_embedding")(x)
            features = keras.layers.Concatenate(name="features")([features, mean])
        x = keras.layers.Dropout(options.dropout, name="dropout")(features)
        probabilities = keras.layers.Dense(
            num_outputs, activation="softmax", dtype="float32", name="probabilities"
        )(x)
        return keras.Model(token_ids, probabilities, name="lstm_classifier")
