"""The list of benchmark modules; importing each registers its benchmarks with the runner."""

import importlib

MODULES = (
    "benchmarks.pack_import",
    "benchmarks.condition_eval",
    "benchmarks.form_render",
    "benchmarks.routing_eval",
    "benchmarks.board_team",
    "benchmarks.sweeper_drain",
    "benchmarks.intake_e2e",
)


def load() -> None:
    """Import every benchmark module once."""
    for name in MODULES:
        importlib.import_module(name)
