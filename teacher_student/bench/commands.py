"""The `bench` command's options: `bench train` (a GPU, KERAS_BACKEND=jax), `bench cpu`,
`bench show` and `bench compare` (runs before and after a change, paired); BENCHMARKS.md has
the results and the commands that made them."""

from __future__ import annotations

import argparse
from pathlib import Path

from teacher_student.bench import (
    DISTILL_VARIANTS,
    MODELS,
    PRECISIONS,
    RECIPE_ARMS,
    RECIPE_LEAVE_ONE_OUT,
)
from teacher_student.errors import UserError


def bench_train(args) -> int:
    from teacher_student.bench import gpu, gpu_report

    spec = gpu.TrainBench(**_given(args, "image_size", "num_classes", "batch_size",
                                         "warmup", "steps", "windows", "config",
                                         "steps_per_execution", "devices"),
                                keras_fit=tuple(args.keras_fit), overrides=tuple(args.set),
                                flops_only=args.flops_only)
    report = gpu_report.run(spec, args.models, args.precisions, args.json, args.budget_s)
    print(gpu_report.format_report(report))
    return 0 if all("error" not in result for result in report["results"]) else 1


def bench_show(args) -> int:
    from teacher_student.bench import gpu_report
    from teacher_student.bench.paired_rates import read_report

    reports = [read_report(path) for path in args.reports]
    try:
        print(gpu_report.format_report(gpu_report.merge_reports(reports)))
    except (KeyError, ValueError) as err:
        raise UserError(f"cannot show {' '.join(args.reports)}: {err}") from err
    return 0


def bench_compare(args) -> int:
    from teacher_student.bench import paired_rates

    before = [paired_rates.read_report(path) for path in args.before]
    after = [paired_rates.read_report(path) for path in args.after]
    print(paired_rates.format_comparison(paired_rates.paired_ratios(before, after)))
    return 0


def bench_cpu(args) -> int:
    from teacher_student import atomic
    from teacher_student.bench import cpu

    spec = cpu.CpuBench(**_given(args, "images", "image_size", "num_classes", "batch_size",
                                 "epochs", "repeats", "latency_images", "train_batch_size",
                                 "train_steps", "config"), overrides=tuple(args.set))
    report = cpu.run(spec, Path(args.folder) if args.folder else None)
    if args.json:
        atomic.write_json(args.json, report)
    print(cpu.format_report(report))
    return 0


def bench_distill(args) -> int:
    from teacher_student.bench import distill, distill_results

    if args.jobs > 1:
        distill.run_in_processes(args.data, args.seeds, args.variants, Path(args.out),
                                 args.config, args.set, args.jobs, args.students,
                                 args.teachers, args.unlabeled, args.folds,
                                 args.teacher_size)
    else:
        distill.run(args.data, args.seeds, args.variants, Path(args.out), args.config,
                    args.set, args.students, args.teachers, args.only_teacher, args.unlabeled,
                    args.folds, args.only_folds, args.teacher_size, args.only_sized_teacher)
        if args.only_teacher is not None or args.only_folds or args.only_sized_teacher:
            return 0
    _, text = distill_results.table(Path(args.out), args.seeds)
    print(f"\n{args.data}, test accuracy over seeds {args.seeds}:\n{text}")
    return 0


def bench_recipe(args) -> int:
    from teacher_student.bench import recipe

    frame = recipe.run(args.data, args.seeds, args.arms, Path(args.out), args.config, args.set,
                       args.jobs)
    print(f"\n{args.data}, the teacher over seeds {args.seeds}:\n{recipe.format_table(frame)}")
    return 0


def bench_frontier(args) -> int:
    from teacher_student.bench import frontier
    from teacher_student.tables import markdown_table

    table = frontier.run(Path(args.out))
    print(markdown_table(table.to_dict("records"), frontier.COLUMNS))
    print(f"plot: {Path(args.out) / 'frontier.png'}")
    return 0


def bench_runs(args) -> int:
    from teacher_student.bench import runs

    print(runs.table([Path(path) for path in args.run_dirs]))
    return 0


def _given(args, *names: str) -> dict:
    """The options given on the command line; the rest keep the benchmark's own defaults."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def add_bench_commands(commands) -> None:
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
    train.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    train.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS),
                       help="float32-highest: full float32 matmuls and convolutions (no TF32)")
    train.add_argument("--keras-fit", nargs="*", default=list(MODELS), choices=MODELS,
                       help="models also timed through Keras' fit (default: all)")
    for option, text in (("--warmup", "untimed steps after compiling (default 5)"),
                         ("--steps", "steps per timed window (default 20)"),
                         ("--windows", "timed windows, median reported (default 5)")):
        train.add_argument(option, type=int, help=text)
    train.add_argument("--steps-per-execution", type=int,
                       help="the trainer fit's steps per compiled call (default 1)")
    train.add_argument("--devices", type=int,
                       help="the trainer's fit data parallel over this many devices (JAX), "
                            "the batch size each device's: the scaling against --devices 1")
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
    gain = kinds.add_parser("distill", help="distillation methods against the student trained "
                            "from scratch, over seeds, on a data set: accuracy and the share "
                            "of the teacher-scratch gap closed")
    gain.add_argument("--data", default="mnist", help="embedded name, image folder, CSV or .npz")
    gain.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    gain.add_argument("--variants", nargs="*", default=list(DISTILL_VARIANTS),
                      choices=DISTILL_VARIANTS, help="none: the teachers alone")
    gain.add_argument("--out", default="runs/bench-distill", help="run directories and tables")
    gain.add_argument("--config", default="default")
    gain.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    gain.add_argument("--jobs", type=int, default=1,
                      help="runs at once, each in a process of its own (a GPU has room)")
    gain.add_argument("--students", nargs="+", default=["default"], metavar="STUDENT",
                      help="students to teach: width multipliers of ours (1, 2) or a "
                           "keras.applications network (MobileNetV3Small); default: the "
                           "config's")
    gain.add_argument("--teachers", type=int, default=1,
                      help="teachers per seed, on its split, for the *-ensemble variants")
    gain.add_argument("--folds", type=int, default=5,
                      help="fold teachers per seed (data.folds), for the *-folds variants")
    gain.add_argument("--only-teacher", type=int, help=argparse.SUPPRESS)  # --jobs' processes
    gain.add_argument("--teacher-size", type=int, metavar="PX",
                      help="a teacher per seed trained at PX px a side, for the *-resized "
                           "variants: it sees the student's batch resized to its own")
    gain.add_argument("--only-folds", action="store_true", help=argparse.SUPPRESS)
    gain.add_argument("--only-sized-teacher", action="store_true", help=argparse.SUPPRESS)
    gain.add_argument("--unlabeled", type=float, metavar="SHARE",
                      help="drop the labels of this share of each seed's training images "
                           "(0.75): every model learns from the rest, the distilled students "
                           "from the unlabeled images too")
    gain.set_defaults(run=bench_distill)
    recipe = kinds.add_parser("recipe", help="the teacher's training recipe, one setting at a "
                              "time (label smoothing, erasing, weight averaging, cutmix, "
                              "mirror images), all of them, and longer: test accuracy over "
                              "seeds, paired with today's")
    recipe.add_argument("--data", default="mnist", help="embedded name, image folder, CSV or "
                        ".npz")
    recipe.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    recipe.add_argument("--arms", nargs="+", default=list(RECIPE_ARMS),
                        choices=(*RECIPE_ARMS, *RECIPE_LEAVE_ONE_OUT), metavar="ARM",
                        help=f"default: {' '.join(RECIPE_ARMS)}; also all the settings but "
                             "one: all-but-SETTING, all-but-SETTING-3x")
    recipe.add_argument("--out", default="runs/bench-recipe", help="run directories and tables")
    recipe.add_argument("--config", default="default")
    recipe.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    recipe.add_argument("--jobs", type=int, default=1,
                        help="runs at once, each in a process of its own (a GPU has room)")
    recipe.set_defaults(run=bench_recipe)
    frontier = kinds.add_parser("frontier", help="the students of `bench distill --students`: "
                                "accuracy from scratch and distilled against CPU latency "
                                "(TFLite, one image) and size, with the teacher; a table and "
                                "a plot")
    frontier.add_argument("--out", default="runs/bench-distill",
                          help="the --out of bench distill")
    frontier.set_defaults(run=bench_frontier)
    timings = kinds.add_parser("runs", help="per phase of finished runs: epochs, seconds per "
                               "epoch, training images/s")
    timings.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    timings.set_defaults(run=bench_runs)
    show = kinds.add_parser("show", help="the tables of one or more `bench train --json` "
                            "files, merged (runs split to fit a time limit)")
    show.add_argument("reports", nargs="+", metavar="JSON")
    show.set_defaults(run=bench_show)
    compare = kinds.add_parser("compare", help="a change's images/s against the code before "
                               "it: `bench train --json` runs made in pairs, the pairs' mean "
                               "ratio and its 95%% interval")
    compare.add_argument("--before", nargs="+", required=True, metavar="JSON",
                         help="the runs before the change, in the order they ran")
    compare.add_argument("--after", nargs="+", required=True, metavar="JSON",
                         help="the runs after it, the i-th paired with the i-th before")
    compare.set_defaults(run=bench_compare)


