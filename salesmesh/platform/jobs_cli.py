"""Placeholder until this area lands."""

import click


@click.command("worker")
def worker_command() -> None:
    """(not built yet)"""


@click.command("scheduler")
def scheduler_command() -> None:
    """(not built yet)"""
