"""Benchmarks: training steps on an accelerator (`gpu`, `jax_steps`, `gpu_report`), the input
pipeline, latency and XLA on a CPU (`cpu`), a change's speed against the code before it
(`paired_rates`), and their command-line options (`commands`).
BENCHMARKS.md has the figures and the commands that made them.

The names below are what `bench train` and `bench distill` measure; the command line lists them
as its choices without importing Keras.
"""

from teacher_student.config.values import POLICIES

# Full float32 matmuls and convolutions (no TF32): what a T4, which has no TF32, runs.
FULL_FLOAT32 = "float32-highest"
PRECISIONS = (POLICIES[0], FULL_FLOAT32, *POLICIES[1:])
MODELS = ("teacher", "student", "distill")
# `bench distill`'s variants (bench/distill.py): name -> overrides of the config's distill
# section. The logit-standardization settings are its authors' (base temperature 2, KD weight
# 9); DKD's are the config's (beta 2, for few classes) and its authors' CIFAR-100 ones (alpha 1,
# beta 8, label loss weight 1), with a warm-up of one epoch. Names starting with "scratch" are
# the baselines: the student alone, with that mixing.
# The teacher recipe's arms (recipe.py): today's, one setting each, all, and both three
# times as long.
RECIPE_SETTINGS = ("smoothing", "erasing", "ema", "cutmix", "flip")
RECIPE_ARMS = ("today", *RECIPE_SETTINGS, "all", "today-3x", "all-3x")
# All the settings but one (what each costs where the others are on), at both lengths.
RECIPE_LEAVE_ONE_OUT = tuple(f"all-but-{setting}{length}" for length in ("", "-3x")
                             for setting in RECIPE_SETTINGS)

DISTILL_VARIANTS = {
    "scratch": [],
    "scratch+cutmix": ["distill.mix=cutmix"],
    "kd": ["distill.method=kd"],
    "kd+ls": ["distill.method=kd", "distill.standardize_logits=true", "distill.temperature=2",
              "distill.kd.weight=9"],
    # The teacher as a regulariser beside the labels, for a student too small to copy it.
    "kd-alpha0.5": ["distill.method=kd", "distill.alpha=0.5"],
    "kd-alpha0.9": ["distill.method=kd", "distill.alpha=0.9"],
    # A student taught by the seed's `--teachers N` teachers, averaged in probability.
    "kd-ensemble": ["distill.method=kd"],
    # A student taught by the seed's `--folds K` teachers (data.folds), averaged in probability.
    "kd-folds": ["distill.method=kd"],
    # A student taught by the seed's teacher trained at `--teacher-size` px (its own
    # resolution), which sees the student's batch resized.
    "kd-resized": ["distill.method=kd"],
    "dkd": ["distill.method=dkd", "distill.alpha=1"],
    "dkd-beta8": ["distill.method=dkd", "distill.alpha=1", "distill.dkd.beta=8"],
    "dkd+ls": ["distill.method=dkd", "distill.alpha=1", "distill.standardize_logits=true",
               "distill.temperature=2"],
    "feature": ["distill.method=feature"],
    "feature-alpha0.5": ["distill.method=feature", "distill.alpha=0.5"],
    "scratch+mixup": ["distill.mix=mixup"],
    "kd+mixup": ["distill.method=kd", "distill.mix=mixup"],
    # Beyer et al.'s function matching: the teacher's outputs alone (no labels), T = 1, on
    # mixed images.
    "fm+mixup": ["distill.method=kd", "distill.alpha=0", "distill.temperature=1",
                 "distill.mix=mixup"],
    "kd+cutmix": ["distill.method=kd", "distill.mix=cutmix"],
    "kd+ls+cutmix": ["distill.method=kd", "distill.standardize_logits=true",
                     "distill.temperature=2", "distill.kd.weight=9", "distill.mix=cutmix"],
}
