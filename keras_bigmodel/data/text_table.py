"""The text table reader: a column of text and a column of class labels."""

from keras_bigmodel.data.examples import Examples
from keras_bigmodel.data.labels import label_strings
from keras_bigmodel.data.sources import TableReader


class TextTableReader(TableReader):
    """Reads texts and their labels from a table (or a glob of shards), in memory or
    streamed. `Examples.inputs` and the batches both hold one input: `text`, strings
    ("" for an empty cell)."""

    kind = "text_table"
    targets = "classes"

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
