"""The command line: `python -m teacher_student COMMAND ...`; each command is a thin call."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from teacher_student import config as config_module


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config file (default: the built-in defaults)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set phases.1.epochs=3 (repeatable)")
    parser.add_argument("--precision", help="auto, float32, mixed_float16 or mixed_bfloat16")


def _load_config(args) -> config_module.Config:
    overrides = list(args.set)
    if getattr(args, "precision", None):
        overrides.append(f"precision={args.precision}")
    return config_module.load(args.config, overrides)


def check_dtypes(args) -> int:
    import keras

    from teacher_student.audit import audit_dtypes, format_casts, format_findings, list_casts
    from teacher_student.precision import resolve
    from teacher_student.student import build_student
    from teacher_student.teacher import build_teacher

    config = _load_config(args).with_dataset(num_classes=args.num_classes)
    policy, why = resolve(config.precision)
    print(why)
    failed = False
    for name, builder, part in (("teacher", build_teacher, config.teacher),
                                ("student", build_student, config.student)):
        model = builder(part, policy)
        model.compile(optimizer=policy.wrap_optimizer(keras.optimizers.Adam()), loss=None)
        findings = audit_dtypes(model, policy.name)
        casts = list_casts(model)
        print(f"\n== {name}: {model.count_params():,} parameters, {len(casts)} cast layers, "
              f"optimizer {type(model.optimizer).__name__}")
        print(format_casts(casts))
        print(f"\n{name} findings:")
        print(format_findings(findings))
        failed = failed or bool(findings)
    print("\nFAILED: dtype findings above" if failed else "\nclean: no dtype findings")
    return 1 if failed else 0


def _job_config(args) -> config_module.Config:
    overrides = list(args.set)
    if args.data:
        overrides.append(f"data.source={args.data}")
    if args.precision:
        overrides.append(f"precision={args.precision}")
    return config_module.load(args.config, overrides)


def train_teacher(args) -> int:
    from teacher_student import jobs

    jobs.train_teacher(_job_config(args), Path(args.run_dir))
    return 0


def distill(args) -> int:
    from teacher_student import jobs

    jobs.distill(_job_config(args), Path(args.run_dir))
    return 0


def evaluate(args) -> int:
    from teacher_student import jobs

    jobs.evaluate(_job_config(args), Path(args.run_dir))
    return 0


def export_models(args) -> int:
    from teacher_student import export

    if args.config or args.data or args.precision or args.set:
        print("note: export reads the run's saved config.yaml; --config, --data, --precision "
              "and --set are ignored", file=sys.stderr)
    out = Path(args.out) if args.out else None
    print(export.export_run(Path(args.run_dir), args.which, out))
    return 0


def predict(args) -> int:
    from teacher_student import export

    classified = 0
    for result in export.classify_files(Path(args.model), export.image_files(Path(args.input)),
                                        args.top):
        if isinstance(result, export.Prediction):
            print(export.format_prediction(result), flush=True)
            classified += 1
        else:
            print(f"skipped {result[0]}: {result[1]}", file=sys.stderr)
    if not classified:
        print(f"no image could be classified in {args.input}", file=sys.stderr)
    return 0 if classified else 2


def _add_export_commands(commands) -> None:
    export = commands.add_parser("export", help="write the student (or other models) as .keras, "
                                 "SavedModel and TFLite float32/float16/int8, each checked "
                                 "against the Keras model on the test split")
    # Hidden, accepted so that `make export` takes the same variables as the other targets.
    for option in ("--config", "--data", "--precision"):
        export.add_argument(option, help=argparse.SUPPRESS)
    export.add_argument("--set", action="append", default=[], help=argparse.SUPPRESS)
    export.add_argument("--run-dir", default="runs/default",
                        help="the trained run (default: runs/default)")
    export.add_argument("--which", nargs="+",
                        choices=("student_distilled", "student_scratch", "teacher"),
                        help="models to export (default: student_distilled, else "
                             "student_scratch)")
    export.add_argument("--out", help="where the exports go (default: RUN_DIR/export)")
    export.set_defaults(run=export_models)

    classify = commands.add_parser("predict", help="classify an image file or a folder of "
                                   "images with any exported model; prints "
                                   "path<TAB>class<TAB>probability per image")
    classify.add_argument("model", help="a .keras, .tflite or SavedModel folder written by "
                          "export (its *_meta.json must sit beside it)")
    classify.add_argument("input", help="an image file, or a folder searched recursively")
    classify.add_argument("--top", type=int, default=1,
                          help="also print the next most likely classes, as further "
                               "class<TAB>probability pairs (default: 1)")
    classify.set_defaults(run=predict)


def bench_train(args) -> int:
    from teacher_student import bench_gpu

    spec = bench_gpu.TrainBench(**_given(args, "image_size", "num_classes", "batch_size",
                                         "warmup", "steps", "windows", "config"),
                                keras_fit=tuple(args.keras_fit), overrides=tuple(args.set),
                                flops_only=args.flops_only)
    report = bench_gpu.run(spec, args.models, args.precisions, args.json, args.budget_s)
    print(bench_gpu.format_report(report))
    return 0 if all("error" not in result for result in report["results"]) else 1


def bench_show(args) -> int:
    import json

    from teacher_student import bench_gpu

    reports = []
    for path in args.reports:
        try:
            reports.append(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as err:
            raise SystemExit(f"{path}: not a benchmark JSON file ({err})") from err
    try:
        print(bench_gpu.format_report(bench_gpu.merge_reports(reports)))
    except (KeyError, ValueError) as err:
        raise SystemExit(f"cannot show {' '.join(args.reports)}: {err}") from err
    return 0


def bench_cpu(args) -> int:
    from teacher_student import bench
    from teacher_student import bench_cpu as cpu

    spec = cpu.CpuBench(**_given(args, "images", "image_size", "num_classes", "batch_size",
                                 "epochs", "repeats", "latency_images", "train_batch_size",
                                 "train_steps", "config"), overrides=tuple(args.set))
    report = cpu.run(spec, Path(args.folder) if args.folder else None)
    if args.json:
        bench.write_json(args.json, report)
    print(cpu.format_report(report))
    return 0


def _given(args, *names: str) -> dict:
    """The options given on the command line; the rest keep the benchmark's own defaults."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _add_bench_commands(commands) -> None:
    """`bench train` (a GPU, KERAS_BACKEND=jax) and `bench cpu`; BENCHMARKS.md has results."""
    bench = commands.add_parser("bench", help="benchmarks: training on a GPU (train); input "
                                "pipeline, latency and XLA on the CPU (cpu)")
    kinds = bench.add_subparsers(dest="bench", required=True)
    train = kinds.add_parser("train", help="training images/s per precision, FLOPs, peak "
                             "memory, distillation step; each in its own subprocess")
    cpu = kinds.add_parser("cpu", help="input pipeline, inference latency (Keras, TFLite) "
                           "and a training step with and without XLA")
    for parser in (train, cpu):
        parser.add_argument("--config", help="architectures from this config (default: the "
                            "built-in defaults)")
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="override a config key (repeatable)")
        parser.add_argument("--json", help="also write every figure to this JSON file")
        parser.add_argument("--image-size", type=int, help="pixels a side (default 224)")
        parser.add_argument("--num-classes", type=int, help="classes of the head (default 100)")
        parser.add_argument("--batch-size", type=int,
                            help="default 64 (train) or 32 (cpu, the pipeline's batch)")
    train.add_argument("--models", nargs="+", default=["teacher", "student", "distill"],
                       choices=["teacher", "student", "distill"])
    train.add_argument("--precisions", nargs="+", choices=["float32", "float32-highest",
                       "mixed_float16", "mixed_bfloat16"],
                       default=["float32", "float32-highest", "mixed_float16", "mixed_bfloat16"],
                       help="float32-highest: full float32 matmuls and convolutions (no TF32)")
    train.add_argument("--keras-fit", nargs="*", default=["teacher", "student", "distill"],
                       choices=["teacher", "student", "distill"],
                       help="models also timed through Keras' fit (default: all)")
    for option, text in (("--warmup", "untimed steps after compiling (default 5)"),
                         ("--steps", "steps per timed window (default 20)"),
                         ("--windows", "timed windows, median reported (default 5)")):
        train.add_argument(option, type=int, help=text)
    train.add_argument("--budget-s", type=float, default=3600.0,
                       help="start no new measurement after this many seconds")
    train.add_argument("--flops-only", action="store_true",
                       help="only count each step's FLOPs (JAX; needs no accelerator)")
    train.set_defaults(run=bench_train)
    for option, text in (
        ("--images", "JPEG files of 500x375 to write (default 300)"),
        ("--epochs", "pipeline epochs: the first, then cached ones (default 3)"),
        ("--repeats", "times each pipeline is built and timed; medians (default 3)"),
        ("--latency-images", "images timed per latency figure (default 64)"),
        ("--train-batch-size", "batch of the training step (default 16)"),
        ("--train-steps", "timed training steps (default 5)"),
    ):
        cpu.add_argument(option, type=int, help=text)
    cpu.add_argument("--folder", help="write the JPEGs here (default: a temporary folder)")
    cpu.set_defaults(run=bench_cpu)
    show = kinds.add_parser("show", help="the tables of one or more `bench train --json` "
                            "files, merged (runs split to fit a time limit)")
    show.add_argument("reports", nargs="+", metavar="JSON")
    show.set_defaults(run=bench_show)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="teacher_student", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check-dtypes", help="build the configured models and audit "
                                "their dtype graph; exits 1 on any finding")
    _add_config_arguments(check)
    check.add_argument("--num-classes", type=int, default=10)
    check.set_defaults(run=check_dtypes)

    for name, run, text in (
        ("train-teacher", train_teacher, "train the teacher's phases (resumes a stopped run)"),
        ("distill", distill, "distil the teacher into the student, train the from-scratch "
                             "baseline, and compare all three"),
        ("evaluate", evaluate, "evaluate the run's models on its test split"),
    ):
        job = commands.add_parser(name, help=text)
        _add_config_arguments(job)
        job.add_argument("--data", help="image folder, CSV of path,label, or an embedded "
                         "dataset name (digits, mnist); default: the config's data.source")
        job.add_argument("--run-dir", default="runs/default",
                         help="where checkpoints and reports go (default: runs/default)")
        job.set_defaults(run=run)
    _add_export_commands(commands)
    _add_bench_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except config_module.ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    except _user_errors() as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors that are the input's fault: reported in one line, without a traceback."""
    from teacher_student.trainer import NonFiniteLoss

    errors: list[type[Exception]] = [NonFiniteLoss]
    if "teacher_student.data" in sys.modules:
        errors.append(sys.modules["teacher_student.data"].DataError)
    return tuple(errors)
