"""`streamer evaluate MODEL ...`: one subcommand per model package that offers it (its PACKAGE.commands module
defines the options and runs the evaluation)."""

from __future__ import annotations

import importlib

from streamer.models import registry


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "evaluate",
        help="measure a model: unet (IoU on roads) or maskrcnn (mAP on masks)",
    )
    models = parser.add_subparsers(dest="model", required=True, metavar="MODEL")
    for name, package in registry().items():
        if package.commands is None or name != package.name:  # a package's own name, not an alias
            continue
        commands = importlib.import_module(package.commands)
        model = models.add_parser(name, help=package.evaluate, description=f"{package.evaluate}.")
        commands.add_evaluate_arguments(model)
        model.set_defaults(run=commands.run_evaluate)
