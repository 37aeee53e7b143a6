shutil.rmtree(run_dir / "cache", ignore_errors=True)  # decoded images: not worth keeping
if (reports_dir / "comparison.md").exists():
    display(Markdown((reports_dir / "comparison.md").read_text()))
print(f"everything is in {run_dir}:")
exported = sorted((run_dir / "export").iterdir()) if (run_dir / "export").is_dir() else []
for path in sorted(run_dir.glob("*.keras")) + exported:
    print(f"  {path.relative_to(run_dir)}")
if stopped_for_time:
    print(f"\nStopped for time: {stopped_for_time}\n{NEXT_SESSION}")
