from IPython.display import Image, Markdown, display

from teacher_student.outputs import plots

# Drawn again from the histories: after a stop for time, the epochs that finished.
phases = {phase.name: run.teacher_phase(i, phase.name).read_history()
          for i, phase in enumerate(config.phases, start=1)}
if any(not frame.empty for frame in phases.values()):
    display(Image(filename=str(plots.plot_curves(phases, reports_dir / "teacher_curves.png"))))
students = {"distilled": run.distillation.read_history(),
            "scratch": run.baseline.read_history()}
if any(not frame.empty for frame in students.values()):
    path = plots.plot_student_curves(students, teacher_row["accuracy"] if teacher_row else None,
                                     reports_dir / "student_curves.png")
    display(Markdown("**Students: distilled against from scratch**"), Image(filename=str(path)))
