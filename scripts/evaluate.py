"""`python scripts/evaluate.py [options]` is `python -m teacher_student evaluate [options]`."""

import sys

from teacher_student.cli import main

raise SystemExit(main(["evaluate", *sys.argv[1:]]))
