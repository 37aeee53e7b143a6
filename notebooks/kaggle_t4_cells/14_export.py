from teacher_student.outputs import export

if comparison is not None:
    display(Markdown(export.export_run(run)))
else:
    print("export: after the distillation (not finished in this session)")
