import os

# TensorFlow's C++ start-up chatter hides the output that matters; its errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from teacher_student.cli import main  # noqa: E402

raise SystemExit(main())
