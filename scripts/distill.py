"""`python scripts/distill.py [options]` is `python -m teacher_student distill [options]`."""

import sys

from teacher_student.quiet import quiet_logs

quiet_logs()  # before anything imports Keras and TensorFlow

from teacher_student.cli import main  # noqa: E402

raise SystemExit(main(["distill", *sys.argv[1:]]))
