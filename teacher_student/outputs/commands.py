"""The commands that use a trained run: `export` (every deployable format of its models,
checked) and `predict` (a CSV of a model's answers on image files). Each is a thin call into
outputs/export.py, outputs/classifier.py and outputs/predictions.py, imported only when the
command runs: the command line starts without Keras."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from teacher_student.run.directory import MODEL_NAMES, RunDir


def say_ignored(args, command: str) -> None:
    """A note on stderr that `command` reads the run's saved config.yaml, when options it
    ignores were given."""
    if args.config or args.data or args.precision or args.set:
        print(f"note: {command} reads the run's saved config.yaml; --config, --data, "
              "--precision and --set are ignored", file=sys.stderr)


def export_command(args) -> int:
    from teacher_student.outputs import export

    say_ignored(args, "export")
    out = Path(args.out) if args.out else None
    print(export.export_run(RunDir(Path(args.run_dir)), args.which, out))
    return 0


def predict_command(args) -> int:
    from teacher_student.outputs import predictions
    from teacher_student.outputs.classifier import averaged_with_mirror, from_file, from_run

    run_dir = None if args.model else RunDir(Path(args.run_dir))
    classifier = from_file(Path(args.model)) if args.model else from_run(run_dir, args.which)
    if args.tta:
        classifier = averaged_with_mirror(classifier)
    print(f"predicting with {classifier.description}", file=sys.stderr)
    out = Path(args.out) if args.out else predictions.default_csv(Path(args.input), classifier,
                                                                  run_dir)
    shape = predictions.CsvShape(args.ids, tuple(args.columns), args.top, args.probabilities)

    def show(result) -> None:  # --print: each answer on stdout, each file skipped on stderr
        if isinstance(result, predictions.Prediction):
            print(predictions.format_prediction(result, classifier.class_names, args.top),
                  flush=True)
        else:
            print(f"skipped {result[0]}: {result[1]}", file=sys.stderr)

    written = predictions.write_predictions(classifier, Path(args.input), out, shape,
                                            show if args.show else None)
    print(written.summary(), file=sys.stderr)
    return 0


def add_output_commands(commands) -> None:
    """`export` and `predict`, added to the command line's subcommands."""
    export = commands.add_parser("export", help="write the student (or other models) as .keras, "
                                 "SavedModel, TFLite float32/float16/int8 and ONNX, each checked "
                                 "against the Keras model on the test split")
    # Hidden, accepted so that `make export` takes the same variables as the other targets.
    for option in ("--config", "--data", "--precision"):
        export.add_argument(option, help=argparse.SUPPRESS)
    export.add_argument("--set", action="append", default=[], help=argparse.SUPPRESS)
    export.add_argument("--run-dir", default="runs/default",
                        help="the trained run (default: runs/default)")
    export.add_argument("--which", nargs="+",
                        choices=MODEL_NAMES,
                        help="models to export (default: student_distilled, else "
                             "student_scratch)")
    export.add_argument("--out", help="where the exports go (default: RUN_DIR/export)")
    export.set_defaults(run=export_command)

    classify = commands.add_parser(
        "predict", help="classify images with a run's student (or any model file) into a CSV "
        "in Kaggle's submission shape: id,label (and each class's probability with "
        "--probabilities)")
    classify.add_argument("input", help="an image file, a folder (searched recursively) or a "
                          "CSV with a 'path' column (relative to the CSV's folder)")
    classify.add_argument("--run-dir", default="runs/default",
                          help="the run whose model answers (default: runs/default): its "
                          "exported student in RUN/export when there is one, else its own "
                          ".keras; the line printed first says which")
    classify.add_argument("--which", choices=MODEL_NAMES,
                          help="the run's model (default: student_distilled, else "
                          "student_scratch)")
    classify.add_argument("--model", help="a model file instead of a run's: any file written "
                          "by export (its *_meta.json beside it), or a .keras of a run "
                          "directory")
    classify.add_argument("--out", help="the CSV to write, e.g. submission.csv (default: "
                          "RUN/predictions/<input name>.csv, or predictions/<input name>.csv "
                          "beside --model)")
    classify.add_argument("--ids", choices=("stem", "path"), default="stem",
                          help="the id of each image: stem, its file name without the "
                          "extension (default), or path, its path relative to the input "
                          "folder with the extension (for a CSV input: as the CSV writes it)")
    classify.add_argument("--columns", nargs=2, default=["id", "label"],
                          metavar=("ID", "LABEL"),
                          help="the names of the two columns (default: id label); the "
                          "competition's sample_submission.csv shows which it wants")
    classify.add_argument("--top", type=int, default=1,
                          help="the label cell lists the K most likely classes, most likely "
                          "first, separated by spaces (for a MAP@K metric; default: 1)",
                          metavar="K")
    classify.add_argument("--probabilities", action="store_true",
                          help="add a column per class (named by the class) with its "
                          "probability")
    classify.add_argument("--tta", action="store_true",
                          help="test-time augmentation: average each image's probabilities "
                          "with its left-right mirror's. For photos only: a mirrored digit, "
                          "letter or word is not the same class, never use it for those")
    classify.add_argument("--print", "--verbose", dest="show", action="store_true",
                          help="also print each answer on stdout (id, class, probability, "
                          "tab-separated) and each file skipped on stderr; without it, one "
                          "line at the end says how many were written and skipped, and why")
    classify.set_defaults(run=predict_command)
