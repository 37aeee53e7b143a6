"""Training: the plan of steps (`steps/`, one module per kind of step), the preflight that
checks it and the runner that trains it, resumable fitting (`trainer`), the clock
(`timekeeping`), the trainee and the distiller, the distillation methods (`methods/`, one module
each) and the shared losses, the teachers a student learns from, and the distribution engine
the machine calls for."""
