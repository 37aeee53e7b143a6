import dataclasses

from teacher_student import jobs
from teacher_student.errors import TimeBudgetReached
from teacher_student.run.directory import RunDir

run = RunDir(run_dir)
MARGIN_S = 20 * 60  # for the export, the reports and saving the output
stopped_for_time = None  # the time budget's message, once a job has stopped for it
NEXT_SESSION = (
    "Next: this version's output (/kaggle/working) holds the run. In a new session, attach "
    "that output as a dataset (Add Input > Your Work), set RESUME_FROM to it and run all "
    "cells again: finished epochs are kept, training goes on from the last one.")


def run_job(job):
    """`job` with what is left of the session as its time budget; None when it stops for
    time (the cell ends cleanly, the next cells show what finished). Then the decoded-image
    cache goes (the next session rebuilds it) and the run directory is the output to continue
    from."""
    global stopped_for_time
    if stopped_for_time:
        return None
    budget = None
    if SESSION_HOURS:
        budget = int(SESSION_HOURS * 3600 - MARGIN_S - (time.time() - SESSION_START))
    try:
        limit = None if budget is None else max(budget, 1)  # 0 s left is no time, not no limit
        return job(dataclasses.replace(config, time_budget=limit), run)
    except TimeBudgetReached as stop:
        shutil.rmtree(run_dir / "cache", ignore_errors=True)
        stopped_for_time = str(stop)
        print(f"\n{stop}\n{NEXT_SESSION}")
        return None


teacher_row = run_job(jobs.train_teacher)
