comparison = run_job(jobs.distill)  # None when the session's time ran out before it ended
