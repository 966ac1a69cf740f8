# image-to-text: the commands people expect.
#   make install   create .venv and install the project with every extra
#   make demo      start the Gradio app on http://127.0.0.1:7860
#   make streamlit start the Streamlit app on http://127.0.0.1:8501
#   make test      run the whole test suite (offline, 2 workers)
#   make bench     run the benchmark suite
#   make lint      ruff + mypy on core
#   make space     write a Hugging Face Space folder (SPACE_SDK=gradio|streamlit, SPACE_DIR, SPACE_ARGS)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stamp-install
TINY_COCO_DIR ?= $(abspath ../shared/data/tiny_coco)
export TINY_COCO_DIR

.PHONY: install demo streamlit test bench lint space clean

install: $(STAMP)

# Reinstall when the project metadata changes. torch/torchvision are pinned to what the
# local wheel cache holds first, so pip never reaches for a larger download.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1" || \
		$(BIN)/python -m pip install --quiet torch torchvision
	$(BIN)/python -m pip install --quiet -e ".[gradio,streamlit,dev,distributed]"
	touch $(STAMP)

demo: install
	$(BIN)/python -m gradio_app

streamlit: install
	$(BIN)/streamlit run streamlit_app/app.py

# Two workers, one test file each at a time (module fixtures such as app servers start once);
# tests/conftest.py gives each worker one torch thread. Plain `pytest` still runs serially.
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: install
	$(BIN)/python -m bench

lint: install
	$(BIN)/ruff check core gradio_app streamlit_app tests bench
	$(BIN)/mypy core

# A folder to push to a Space / Streamlit Community Cloud (docs/deploy.md), e.g.
#   make space SPACE_SDK=streamlit SPACE_ARGS="--precision int8 --index index/"
SPACE_SDK ?= gradio
SPACE_DIR ?= space-$(SPACE_SDK)
space: install
	$(BIN)/img2text deploy space --sdk $(SPACE_SDK) $(SPACE_DIR) $(SPACE_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-output
