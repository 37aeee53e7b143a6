# The command line imports nothing that loads TensorFlow before `program` quiets its logs.
from teacher_student.cli import program

raise SystemExit(program())
