# Quick start: `make demo` (train on the synthetic seasons, translate summer -> winter)
# and `make test`. Each target sets up its own virtual environment.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
DEMO   ?= demo
# The demo's run lives under runs/, where commands without --run look: `combogan translate
# --from summer --to winter photo.jpg --out winter/` works right after `make demo`.
RUN    ?= runs/demo

.PHONY: demo test lint venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The demo needs only the package (its install is most of a fresh clone's `make demo` time);
# lint and test add the dev extras (ONNX, FastAPI, Playwright, ...), which cover the demo too.
$(VENV)/.base: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@ $(VENV)/.base

venv: $(VENV)/.installed

demo: $(VENV)/.base
	rm -rf $(DEMO) $(RUN)
	$(BIN)/combogan data synth alps_seasons $(DEMO)/data --size 72 --train 150 --test 8 -q
	$(BIN)/combogan train --domains $(DEMO)/data --run $(RUN) --config configs/demo.yaml
	$(BIN)/combogan translate --run $(RUN) --from summer --to winter $(DEMO)/data/test/summer \
		--out $(DEMO)/winter --grid $(DEMO)/summer_to_winter.png --flip-average -q
	$(BIN)/python tools/demo_report.py $(DEMO)
	@echo "grid: $(DEMO)/summer_to_winter.png (rows: summer input | winter output); run: $(RUN)"

lint: venv
	$(BIN)/ruff check combogan tools tests domains
	$(BIN)/lint-imports --no-cache

test: lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(DEMO) $(RUN) *.egg-info
