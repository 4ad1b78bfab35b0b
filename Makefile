# Every target sets up .venv first, so each works alone on a fresh clone (Python 3.11 + pip).
# torch is installed before the package so pip never pulls CUDA wheels; override with
#   make test TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
EXTRAS ?= era5,datasets,dev
DEMO_DIR ?= demo_output

.PHONY: demo test install clean

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
	$(BIN)/hsikit quicklook indian_pines -o $(DEMO_DIR)/indian_pines_truecolour.png
	$(BIN)/hsikit data labels indian_pines -o $(DEMO_DIR)/indian_pines_ground_truth.tif \
		--png $(DEMO_DIR)/indian_pines_ground_truth.png
	@echo "Demo outputs are in $(DEMO_DIR)/: true-colour quicklook, ground-truth class map" \
		"(COG + .qml + .aux.xml) and its legend PNG."

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
