run_dir = Path(WORK) / RUN_NAME


def previous_run(folder):
    """The run directory `RUN_NAME` inside `folder` (an attached output may sit a level or two
    deeper), or `folder` itself when it is one."""
    for candidate in (folder, *sorted(folder.glob(f"**/{RUN_NAME}"))):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"no run directory ({RUN_NAME}/config.yaml) in {folder}")


if RESUME_FROM and not (run_dir / "config.yaml").exists():
    previous = previous_run(Path(RESUME_FROM))
    shutil.copytree(previous, run_dir, ignore=shutil.ignore_patterns("cache", ".lock"))
    print(f"continuing the run copied from {previous}")
elif RESUME_FROM:
    print(f"{run_dir} exists: continuing it (RESUME_FROM is not copied over it)")
