"""`python scripts/evaluate.py [options]` is `python -m teacher_student evaluate [options]`."""

import sys

from teacher_student.quiet import quiet_logs

quiet_logs()  # before anything imports Keras and TensorFlow

from teacher_student.cli import main  # noqa: E402

raise SystemExit(main(["evaluate", *sys.argv[1:]]))
