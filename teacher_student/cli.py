"""The command line: `python -m teacher_student COMMAND ...`; each command is a thin call."""

from __future__ import annotations

import argparse
import sys

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="teacher_student", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check-dtypes", help="build the configured models and audit "
                                "their dtype graph; exits 1 on any finding")
    _add_config_arguments(check)
    check.add_argument("--num-classes", type=int, default=10)
    check.set_defaults(run=check_dtypes)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except config_module.ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
