"""Distillation methods, one module each, found by the name `distill.method` gives:

    Section      the dataclass of its config section, `distill.<name>`, defaults commented
    CHECKS       the keys of its section -> the check of one value (config/values.py)
    FLAT_KEYS    keys of `distill` it was configured by before it had a section (deprecated,
                 still read: `distill.dkd_beta` is `distill.dkd.beta`)
    check(distill)                      a ConfigError for a config it cannot learn from
    terms(distill, steps_per_epoch)     its teacher terms of the loss (terms.py)

The config (its sections and checks), the distiller, the distillation step and the benchmarks
read this dict alone: a new method is one module and one line here.
"""

from teacher_student.training.methods import dkd, feature, kd

METHODS = {"kd": kd, "dkd": dkd, "feature": feature}
