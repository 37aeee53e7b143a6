import os

# TensorFlow reads its log settings once, when it is first imported: here, before anything does.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # its C++ lines (I0000, W0000, E0000)
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # the oneDNN line ignores the log level


class Stop(Exception):
    """Ends "Run All" at this cell with its message alone, no traceback: something to set."""

    def _render_traceback_(self):  # what IPython shows instead of a traceback
        return [f"STOPPED: {self}"]
