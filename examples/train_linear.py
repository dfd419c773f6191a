"""Trains the linear model on the California housing data and compares it with least squares.

python examples/train_linear.py [OUT_DIR]

A fifth of the rows is held out for testing (the split the data README quotes: ordinary
least squares reaches R² 0.638 on it). The model reads the table as it is: the empty
`total_bedrooms` cells and the text column `ocean_proximity` are handled inside it.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

import keras_bigmodel as kb

DATA = Path(__file__).resolve().parent / "data" / "california_housing.csv"


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "demo/linear")
    out.mkdir(parents=True, exist_ok=True)

    # The same 80/20 split as scikit-learn's train_test_split(random_state=0).
    frame = pd.read_csv(DATA)
    test_rows = np.random.RandomState(0).permutation(len(frame))[: int(np.ceil(0.2 * len(frame)))]
    frame.drop(index=test_rows).to_csv(out / "train.csv", index=False)
    frame.iloc[test_rows].to_csv(out / "test.csv", index=False)

    result = kb.train(
        "linear",
        data=out / "train.csv",
        target="median_house_value",
        out=out / "run",
        overwrite=True,
        quiet=True,
    )
    metrics = kb.evaluate(result.run_dir, out / "test.csv")
    print(f"test R² {metrics['r2']:.4f}, RMSE {metrics['rmse']:,.0f} dollars")

    # New rows need only the feature columns; an empty cell is fine.
    houses = pd.read_csv(out / "test.csv").drop(columns="median_house_value").head(3)
    houses.loc[0, "total_bedrooms"] = None
    houses.to_csv(out / "new.csv", index=False)
    print(kb.predict(result.run_dir, out / "new.csv")[["ocean_proximity", "prediction"]])

    export = kb.export(result.run_dir, out / "export")
    print(f"SavedModel for TensorFlow Serving: {export} (one input per feature column)")


if __name__ == "__main__":
    main()
