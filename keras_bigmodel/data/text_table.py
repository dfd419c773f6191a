"""The text table reader: a column of text and a column of class labels."""

from dataclasses import dataclass

from keras_bigmodel.config import option
from keras_bigmodel.data.examples import Examples
from keras_bigmodel.data.labels import label_strings
from keras_bigmodel.data.sources import TableReader


@dataclass
class TextTableOptions:
    """Which columns of a table hold the text and the label."""

    text_column: str = option("text", "Column holding the text.")
    label_column: str = option("label", "Column holding the class label (string or integer).")


class TextTableReader(TableReader):
    """Reads texts and their labels from a table (or a glob of shards), in memory or
    streamed. `Examples.inputs` and the batches both hold one input: `text`, strings
    ("" for an empty cell)."""

    kind = "text_table"
    Options = TextTableOptions
    targets = "classes"
    data_options = ("text_column", "label_column")
    input_option = "--text-column"
    target_option = "--label-column"

    def columns(self, options, layout):
        return [options.text_column], options.label_column

    def examples_from_frame(
        self, frame, source, paths, options, layout, with_targets=True, first_row=0
    ):
        texts = frame[options.text_column].fillna("").astype(str).to_numpy(dtype=object)
        targets = None
        if with_targets:
            targets = label_strings(
                frame[options.label_column], source, options.label_column, first_row
            )
        return Examples(
            inputs={"text": texts},
            targets=targets,
            frame=frame,
            source=source,
            paths=paths,
            target_name=options.label_column,
        )

    def stream_inputs(self, columns, options, layout):
        return {"text": columns[0]}


READER = TextTableReader()
