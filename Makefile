# Every target installs what it needs into the project's own .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# make train-teacher DATA=path/to/images CONFIG=kaggle_t4 PRECISION=mixed_float16 RUN=runs/x \
#                    SET="phases.1.epochs=3 jit_compile=true"
DATA ?=
CONFIG ?=
PRECISION ?=
RUN ?= runs/default
SET ?=
ARGS = $(if $(DATA),--data $(DATA)) $(if $(CONFIG),--config $(CONFIG)) \
       $(if $(PRECISION),--precision $(PRECISION)) $(foreach s,$(SET),--set $(s)) --run-dir $(RUN)

.PHONY: install test test-all lint check-dtypes train-teacher distill evaluate export predict \
        bench clean

install: $(STAMP)

$(STAMP): requirements.txt setup.cfg pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

# Two workers: most of the time goes to single-threaded XLA compiles. Each test module runs on one
# worker (loadfile), so a module's costly fixture (a trained run, an executed notebook) is built once.
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not slow"

test-all: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(PY) -m ruff check teacher_student tests scripts

check-dtypes: $(STAMP)
	$(PY) -m teacher_student check-dtypes $(if $(CONFIG),--config $(CONFIG)) \
	    --precision $(or $(PRECISION),mixed_float16)

train-teacher: $(STAMP)
	$(PY) -m teacher_student train-teacher $(ARGS)

distill: $(STAMP)
	$(PY) -m teacher_student distill $(ARGS)

evaluate: $(STAMP)
	$(PY) -m teacher_student evaluate $(ARGS)

export: $(STAMP)
	$(PY) -m teacher_student export $(ARGS)

# make predict RUN=runs/mine INPUT=path/to/images [OUT=predictions.csv] [TOP=3]
INPUT ?=
OUT ?=
TOP ?=
predict: $(STAMP)
	$(if $(INPUT),,$(error give the images: make predict RUN=runs/x INPUT=folder, CSV or image))
	$(PY) -m teacher_student predict $(INPUT) --run-dir $(RUN) $(if $(OUT),--out $(OUT)) \
	    $(if $(TOP),--top $(TOP))

# CPU benchmarks (a few minutes); the GPU one is `bench train`, see BENCHMARKS.md.
bench: $(STAMP)
	$(PY) -m teacher_student bench cpu

clean:
	rm -rf $(VENV) runs .pytest_cache
