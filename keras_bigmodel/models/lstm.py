"""The LSTM text classifier: word embeddings, a (bidirectional) LSTM, a softmax layer."""

from dataclasses import dataclass

from keras_bigmodel.config import option
from keras_bigmodel.models.registry import register
from keras_bigmodel.models.text_classifier import (
    TextClassifierOptions,
    TextClassifierRecipe,
)


@dataclass
class LSTMOptions(TextClassifierOptions):
    """Options of the LSTM text classifier."""

    units: int = option(32, "LSTM units (per direction).", minimum=1)
    bidirectional: bool = option(True, "Read each text in both directions.")
    pooling: str = option(
        "mean",
        "How the LSTM's outputs become one vector: their mean over the words, or the final state.",
        choices=("mean", "last"),
    )


@register
class LSTMTextClassifier(TextClassifierRecipe):
    """Embedding -> LSTM (optionally bidirectional) -> dropout -> Dense scores, plus a bag of
    n-grams' scores (`--ngrams`) -> softmax."""

    name = "lstm"
    summary = "Text classifier: word embeddings and a (bidirectional) LSTM."
    Options = LSTMOptions
    # Measured on three public sentence sets with seeds 1, 2, 3 (benchmarks/README.md,
    # "Text models against the bigram baseline"): dropping half the word-vector dimensions
    # of each text (was a quarter) and batches of 64 (was 32) took customer reviews from
    # 79.2% to 80.6% and SMS from 98.7% to 99.0%, TREC questions 87.7% against 87.3%
    # (500 test rows, noise), with epochs of half as many steps.
    train_defaults = {"batch_size": 64}
    # TFLite's converter lowers the LSTM's loop to built-in operations only when each
    # step's tensors have a static shape, so the .tflite file reads one text per call.
    portable_batch = 1
    # Measured on TensorFlow 2.21: calibrating the LSTM's loop crashes the process.
    int8_refusal = (
        "TFLite cannot calibrate the LSTM's loop for 8-bit activations; use --quantize "
        "dynamic (8-bit weights) or float16"
    )

    def build_network(self, preprocessing, options, num_outputs):
        import keras

        from keras_bigmodel.layers import EndPaddedLSTM

        token_ids = keras.Input(shape=(None,), dtype="int64", name="token_ids")
        x = self.embedded_words(token_ids, preprocessing, options)
        # The mean over every word's output (the mask keeps padding out of it) lets a
        # telling word anywhere in a long text count as much as one near its end. Token
        # ids are padded at the end, so the LSTM trains without masking each step.
        recurrent = EndPaddedLSTM(
            options.units, return_sequences=options.pooling == "mean", name="lstm"
        )
        if options.bidirectional:
            recurrent = keras.layers.Bidirectional(recurrent, name="bidirectional")
        features = recurrent(x)
        if options.pooling == "mean":
            features = keras.layers.GlobalAveragePooling1D(name="mean_over_words")(features)
        probabilities = self.text_output(features, token_ids, preprocessing, options, num_outputs)
        return keras.Model(token_ids, probabilities, name="lstm_classifier")

    def fast_network(self, model):
        # One fused kernel per direction instead of Keras' per-word loop: the SMS export
        # answers one text in 0.65-0.89 ms instead of 2.85-3.13 ms on 2 cores
        # (keras_bigmodel/inference.py).
        from keras_bigmodel.inference import fused_lstm_classifier

        return fused_lstm_classifier(model.get_layer("lstm_classifier"))
