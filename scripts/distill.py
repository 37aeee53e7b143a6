"""`python scripts/distill.py [options]` is `python -m teacher_student distill [options]`."""

import sys

from teacher_student.cli import main

raise SystemExit(main(["distill", *sys.argv[1:]]))
