from teacher_student import config as config_module
from teacher_student.run.directory import RunDir
from teacher_student.training.steps import plan_steps

# The source and precision are set as written (a folder named 2024 stays text); OVERRIDES are
# YAML values, as with --set.
texts = {"data.source": str(source), **({"precision": PRECISION} if PRECISION else {})}
config = config_module.load(CONFIG, OVERRIDES, texts)
reports_dir = run_dir / "reports"

print(f"config {CONFIG}: {config.data.image_size} px, {config.data.channels} channels, "
      f"batch {config.data.batch_size} per replica, trunk {config.teacher.trunk or 'none'}, "
      f"distillation {config.distill.method} (alpha {config.distill.alpha}, temperature "
      f"{config.distill.temperature})")
for step in plan_steps(config, RunDir(run_dir)):
    print(f"  {step.label}: {step.epochs} epochs")
print(f"run directory: {run_dir}")
