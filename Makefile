# Every target installs what it needs into the project's own .venv first: what running needs
# (requirements.txt), and for test and lint the test tools too (requirements-test.txt).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# TensorFlow on a CPU frees and takes back large buffers at every step; with glibc's default
# 128 KiB of slack, the heap's top shrinks and grows again each time and the new pages fault
# in: 30% of a 2-core VM's CPU went to the kernel. 512 MiB of slack keeps them (BENCHMARKS.md,
# "The kernel's share of a CPU training step").
export MALLOC_TOP_PAD_ ?= 536870912

# make train-teacher DATA=path/to/images CONFIG=kaggle_t4 PRECISION=mixed_float16 RUN=runs/x \
#                    SET="phases.1.epochs=3 jit_compile=true"
DATA ?=
CONFIG ?=
PRECISION ?=
RUN ?= runs/default
SET ?=
ARGS = $(if $(DATA),--data $(DATA)) $(if $(CONFIG),--config $(CONFIG)) \
       $(if $(PRECISION),--precision $(PRECISION)) $(foreach s,$(SET),--set $(s)) --run-dir $(RUN)

.PHONY: install install-test wheel test test-all lint check-dtypes train-teacher distill evaluate \
        export predict bench clean

install: $(STAMP)

$(STAMP): requirements.txt setup.cfg pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

install-test: $(TEST_STAMP)

$(TEST_STAMP): $(STAMP) requirements-test.txt
	$(PY) -m pip install -q -r requirements-test.txt
	touch $(TEST_STAMP)

# The package as a wheel in dist/, to attach as a Kaggle dataset: the notebook installs it with
# no internet and no build (README, "Kaggle without internet"). Built by the venv's setuptools
# (no build isolation, which would download one): offline too, once that is installed.
wheel: $(STAMP)
	$(PY) -m pip install -q "setuptools>=70.1"
	rm -rf build dist/teacher_student-*.whl
	$(PY) -m pip wheel -q --no-deps --no-build-isolation -w dist .
	rm -rf build
	@ls dist/teacher_student-*.whl

# Two workers: most of the time goes to single-threaded XLA compiles. Each test module runs on one
# worker (loadfile), so a module's costly fixture (a trained run, an executed notebook) is built once.
test: $(TEST_STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder -m "not slow"

test-all: $(TEST_STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

lint: $(TEST_STAMP)
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

# make predict RUN=runs/mine INPUT=path/to/images [OUT=submission.csv] [TOP=3] [IDS=path] [TTA=1]
#              [PREDICT="--probabilities --columns image_id class"]
INPUT ?=
OUT ?=
TOP ?=
IDS ?=
TTA ?=
PREDICT ?=
predict: $(STAMP)
	$(if $(INPUT),,$(error give the images: make predict RUN=runs/x INPUT=folder, CSV or image))
	$(PY) -m teacher_student predict $(INPUT) --run-dir $(RUN) $(if $(OUT),--out $(OUT)) \
	    $(if $(TOP),--top $(TOP)) $(if $(IDS),--ids $(IDS)) $(if $(TTA),--tta) $(PREDICT)

# CPU benchmarks (a few minutes); the GPU one is `bench train`, see BENCHMARKS.md.
bench: $(STAMP)
	$(PY) -m teacher_student bench cpu

clean:
	rm -rf $(VENV) runs .pytest_cache build dist
