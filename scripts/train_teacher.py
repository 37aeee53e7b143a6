"""`python scripts/train_teacher.py [options]` is
`python -m teacher_student train-teacher [options]`."""

import sys

from teacher_student.cli import main

raise SystemExit(main(["train-teacher", *sys.argv[1:]]))
