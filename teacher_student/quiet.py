"""A quiet terminal: TensorFlow's and absl's start-up logs hidden, set before TensorFlow loads.

TensorFlow reads its log settings once, when it is imported: `python -m teacher_student` calls
`quiet_logs()` before it imports anything that imports Keras (the package's `__init__` imports
nothing eagerly), and so do the scripts and the notebook's first cell. Each setting is a
default: one already in the environment is kept, so `TF_CPP_MIN_LOG_LEVEL=0` brings the logs
back and `TF_ENABLE_ONEDNN_OPTS=1` oneDNN's custom CPU operations.

- `TF_CPP_MIN_LOG_LEVEL=3`: TensorFlow's C++ lines (`I0000`, `W0000`, `E0000`: the CPU
  feature guard, the XLA service, cuDNN factory registrations); its Python exceptions still
  carry every error.
- `TF_ENABLE_ONEDNN_OPTS=0`: the oneDNN line ignores the log level; it goes only with oneDNN's
  custom CPU operations (their results vary in the last bits with the order of computation;
  on two cores the default teacher and student trained within noise of it).
- `native_stderr_silenced()` around TFLite's converter and interpreter, whose C++ lines
  (`fully_quantize: 0, ...`, `INFO: Created TensorFlow Lite XNNPACK delegate`) no level reaches;
- the `tensorflow` and `absl` Python loggers at ERROR: tf.function's retracing warnings (the
  `tensorflow` logger through a filter too: in a notebook, TensorFlow sets its level to INFO
  when it is imported).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

TENSORFLOW_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}


def quiet_logs() -> None:
    """Hide TensorFlow's and absl's log lines; call it before TensorFlow is imported."""
    for key, value in TENSORFLOW_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    # A filter, not only a level: in a notebook TensorFlow sets its logger's level to INFO
    # when it is imported.
    tensorflow = logging.getLogger("tensorflow")
    tensorflow.setLevel(logging.ERROR)
    if not any(isinstance(f, _ErrorsOnly) for f in tensorflow.filters):
        tensorflow.addFilter(_ErrorsOnly())
    try:
        from absl import logging as absl_logging
    except ImportError:  # a JAX-only machine without absl
        return
    absl_logging.set_verbosity(absl_logging.ERROR)


class _ErrorsOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 sent to /dev/null while native code prints its notices there; Python
    errors still arrive as exceptions."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
