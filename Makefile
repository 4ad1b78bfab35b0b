# Every target sets up .venv first, so each works alone on a fresh clone (Python 3.11 + pip).
# torch is installed before the package so pip never pulls CUDA wheels; override with
#   make test TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
EXTRAS ?= era5,datasets,batch,dev
DEMO_DIR ?= demo_output

.PHONY: demo test bench fuzz install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)

$(VENV)/.installed-$(EXTRAS): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed-$(EXTRAS)

demo: install
	mkdir -p $(DEMO_DIR)
	$(BIN)/hsikit info indian_pines
	$(BIN)/hsikit train --dataset indian_pines --model cnn3d --split random --threads 2 \
		-o $(DEMO_DIR)/indian_pines_cnn3d.safetensors --report $(DEMO_DIR)/report
	$(BIN)/hsikit classify indian_pines -m $(DEMO_DIR)/indian_pines_cnn3d.safetensors \
		-o $(DEMO_DIR)/indian_pines_map.tif --confidence --png $(DEMO_DIR)/indian_pines_map.png
	$(BIN)/hsikit quicklook indian_pines -o $(DEMO_DIR)/indian_pines_truecolour.png
	$(BIN)/hsikit data labels indian_pines -o $(DEMO_DIR)/indian_pines_ground_truth.tif \
		--png $(DEMO_DIR)/indian_pines_ground_truth.png
	@echo
	@echo "Map:      $(DEMO_DIR)/indian_pines_map.tif (COG + .qml + .aux.xml; open it in QGIS)"
	@echo "Legend:   $(DEMO_DIR)/indian_pines_map.png"
	@echo "Metrics:  $(DEMO_DIR)/report/metrics.json, confusion.png, curves.png"
	@echo "          (random 10 % split, the literature protocol: optimistic because test pixels"
	@echo "          sit inside training patches; 'make bench' also reports spatially disjoint splits)"
	@echo "Bundle:   $(DEMO_DIR)/indian_pines_cnn3d.safetensors"

# the gates CI enforces: lint and format (ruff), types (mypy), then the tests
test: install
	$(BIN)/ruff check hsikit tests
	$(BIN)/ruff format --check hsikit tests
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

# the restoration benchmark's classical baselines (BM4D, TV, wavelet) need the bench extra;
# it also retrains the restoration bundles shipped in hsikit/weights/
bench:
	$(MAKE) install EXTRAS=$(EXTRAS),bench
	$(BIN)/hsikit run pipelines/indian_pines_benchmark.yaml
	$(BIN)/hsikit run pipelines/restoration_benchmark.yaml
	$(BIN)/hsikit run pipelines/mapping_speed.yaml

# the long fuzz campaign reported in docs/robustness.md (about two hours on two cores)
FUZZ_CASES ?= 10000
fuzz: install
	$(BIN)/python -m tests.fuzz --cases $(FUZZ_CASES) --json fuzz_results.json

clean:
	rm -rf $(VENV) $(DEMO_DIR) bench_output .pytest_cache
