from teacher_student.run.directory import MODEL_NAMES

for name in MODEL_NAMES:
    path = reports_dir / f"{name}_confusion.png"
    if path.exists():  # no student_scratch when distill.baseline is false
        display(Markdown(f"**{name}**"), Image(filename=str(path)),
                Markdown("Most frequent mistakes:\n\n"
                         + (reports_dir / f"{name}_top_confusions.md").read_text()))
