"""The command line: `python -m teacher_student COMMAND ...`; each command is a thin call.
check-dtypes and the three jobs are here, export and predict in outputs/commands.py, the
benchmarks in bench/commands.py.

The only place that ends the process: a `UserError` from the library becomes one line on stderr
and exit status 2, with no traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from teacher_student import config as config_module
from teacher_student.bench.commands import add_bench_commands
from teacher_student.errors import ConfigError, PreflightFailed, TimeBudgetReached, UserError
from teacher_student.interrupts import handle_interrupts
from teacher_student.outputs.commands import add_output_commands, say_ignored
from teacher_student.quiet import quiet_logs
from teacher_student.run.directory import TEACHER, RunDir
from teacher_student.words import counted

JOBS = {
    "train-teacher": "train the teacher's phases (resumes a stopped run)",
    "distill": "distil the teacher into the student, train the from-scratch baseline, and "
               "compare all three",
    "evaluate": "evaluate the run's models on its test split",
}


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config file or preset name (default: the "
                        "built-in defaults)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set phases.1.epochs=3 (repeatable)")
    parser.add_argument("--precision", help=f"one of {', '.join(config_module.PRECISIONS)}")


def _config(args) -> config_module.Config:
    """The config file (or preset) with --set, then --data, --precision and --time-budget
    applied. --set values are YAML (they set typed keys); the others are paths and names,
    taken as they are written: a folder `2024` or `x #1` stays that text. On an existing run
    without --config, the run's own config.yaml is the base: a later job repeats none of the
    first one's options."""
    texts = {"data.source": getattr(args, "data", None), "precision": args.precision,
             "time_budget": getattr(args, "time_budget", None)}
    texts = {key: text for key, text in texts.items() if text is not None}
    from teacher_student.run.config import saved_config  # it loads Keras: not before quiet_logs

    saved = (saved_config(RunDir(Path(args.run_dir)))
             if args.config is None and hasattr(args, "run_dir") else None)
    if saved is not None:
        return config_module.apply_overrides(saved, list(args.set), texts)
    return config_module.load(args.config, list(args.set), texts)


def check_dtypes_command(args) -> int:
    import keras

    from teacher_student.models.audit import (
        audit_dtypes,
        format_casts,
        format_findings,
        list_casts,
    )
    from teacher_student.models.precision import resolve
    from teacher_student.models.student import build_student
    from teacher_student.models.teacher import build_teacher

    config = _config(args).with_dataset(num_classes=args.num_classes)
    policy, why = resolve(config.precision)
    print(why)
    failed = False
    for name, builder, part in ((TEACHER, build_teacher, config.teacher),
                                ("student", build_student, config.student)):
        model = builder(part, policy)
        model.compile(optimizer=policy.wrap_optimizer(keras.optimizers.Adam()), loss=None)
        findings = audit_dtypes(model, policy.name)
        casts = list_casts(model)
        print(f"\n== {name}: {model.count_params():,} parameters, "
              f"{counted(len(casts), 'cast layer')}, optimizer {type(model.optimizer).__name__}")
        print(format_casts(casts))
        print(f"\n{name} findings:")
        print(format_findings(findings))
        failed = failed or bool(findings)
    print("\nFAILED: dtype findings above" if failed else "\nclean: no dtype findings")
    return 1 if failed else 0


def job_command(args) -> int:
    from teacher_student import evaluation, jobs
    from teacher_student.outputs.reports import comparison_table
    from teacher_student.run.compile_cache import use_compile_cache

    run_dir = RunDir(Path(args.run_dir))
    if args.command == "evaluate":
        say_ignored(args, "evaluate")
        rows = evaluation.evaluate(run_dir, tta=args.tta)
        print(f"\ntest split ({run_dir.path}):\n{comparison_table(rows)}")
        return 0
    config = _config(args)
    use_compile_cache(run_dir)
    if args.preflight_only:
        jobs.preflight(config, run_dir, args.command)
        return 0
    if args.command == "train-teacher":
        jobs.train_teacher(config, run_dir, preflight=not args.no_preflight)
        return 0
    rows = jobs.distill(config, run_dir, preflight=not args.no_preflight,
                        variant=args.variant)
    print(f"\ntest split ({run_dir.path}):\n{comparison_table(rows)}")
    return 0


PROGRAM = """\
Train a CNN teacher on a folder of labelled images, distil it into a small, fast student,
and measure what distillation bought against the same student trained from scratch.

The main path, each command on one run directory (--run-dir, default runs/default):
  train-teacher --data IMAGES   the teacher's three phases (IMAGES: class folders, a CSV of
                                path,label or a .npz; default: the embedded digits)
  distill                       the student, its from-scratch baseline, and the comparison
  export                        .keras, SavedModel, TFLite and ONNX, each checked
  predict TEST_IMAGES           a submission CSV (id,label)
--config first_run is a first look in minutes on a CPU; --config kaggle_t4 a Kaggle T4."""

PROGRAM_EPILOG = """\
python -m teacher_student COMMAND --help lists a command's options;
README.md, at the root of the repository, tells everything else."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="teacher_student", description=PROGRAM,
                                     epilog=PROGRAM_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check-dtypes", help="build the configured models and audit "
                                "their dtype graph; exits 1 on any finding")
    _add_config_arguments(check)
    check.add_argument("--num-classes", type=int, default=10)
    check.set_defaults(run=check_dtypes_command)

    for name, text in JOBS.items():
        job = commands.add_parser(name, help=text)
        _add_config_arguments(job)
        job.add_argument("--data", help="image folder, CSV of path,label, or an embedded "
                         "dataset name (digits, mnist); default: the config's data.source")
        job.add_argument("--run-dir", default="runs/default",
                         help="where checkpoints and reports go (default: runs/default)")
        job.add_argument("--time-budget", metavar="DURATION",
                         help="stop, everything saved, before an epoch that would end after "
                         "this long (11h30m, 90m, 3600); the same command continues "
                         "(exit status 3)")
        if name == "distill":
            job.add_argument("--variant", metavar="NAME",
                             help="distil the run's teacher again as a variant of its own, in "
                             "RUN_DIR/variants/NAME, its students added to the run's "
                             "comparison (other distill or student settings on a run whose "
                             "students are trained make one, named by the settings)")
        if name == "evaluate":
            job.add_argument("--tta", action="store_true",
                             help="also each model with test-time augmentation (rows named "
                             "MODEL+tta): each image's "
                             "probabilities averaged with its left-right mirror's. For "
                             "photos only: a mirrored digit, letter or word is another image")
        else:
            checks = job.add_mutually_exclusive_group()
            checks.add_argument("--preflight", dest="preflight_only", action="store_true",
                                help="only check that every step of the plan builds, compiles "
                                "and trains one batch here, print step times and an estimate "
                                "of the whole plan, and exit (0: every step runs, 1: one "
                                "cannot)")
            checks.add_argument("--no-preflight", action="store_true",
                                help="start training without that check (it runs first "
                                "otherwise)")
        job.set_defaults(run=job_command)
    add_output_commands(commands)
    add_bench_commands(commands)
    return parser


def program() -> int:
    """The program `python -m teacher_student` and `teacher-student` run: TensorFlow's logs
    quiet before anything loads it (quiet.py), Ctrl-C kept (interrupts.py), then `main`."""
    quiet_logs()
    handle_interrupts()
    return main()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    except TimeBudgetReached as err:
        print(str(err), file=sys.stderr)
        return 3
    except PreflightFailed as err:
        print(str(err), file=sys.stderr)
        return 1
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: every finished epoch is saved; run the same command again to "
              "continue", file=sys.stderr)
        return 130
