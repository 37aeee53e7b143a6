"""`python scripts/train_teacher.py [options]` is
`python -m teacher_student train-teacher [options]`."""

import sys

from teacher_student.quiet import quiet_logs

quiet_logs()  # before anything imports Keras and TensorFlow

from teacher_student.cli import main  # noqa: E402

raise SystemExit(main(["train-teacher", *sys.argv[1:]]))
