"""`streamer train MODEL ...`: one subcommand per model package that offers it (its PACKAGE.commands module
defines the options and runs the training)."""

from __future__ import annotations

import importlib

from streamer.models import registry


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "train",
        help="train a model: unet (road segmentation) or maskrcnn (instance segmentation)",
        description="Train a model; checkpoints are written after every epoch and --resume continues a run.",
    )
    models = parser.add_subparsers(dest="model", required=True, metavar="MODEL")
    for name, package in registry().items():
        if package.commands is None or name != package.name:  # a package's own name, not an alias
            continue
        commands = importlib.import_module(package.commands)
        model = models.add_parser(
            name, help=package.train, description=f"{package.train}. Checkpoints after every epoch; --resume continues."
        )
        commands.add_train_arguments(model)
        model.set_defaults(run=commands.run_train)
