"""Placeholder until this area lands."""

import click


@click.group("definition")
def definition_group() -> None:
    """(not built yet)"""


@click.group("pack")
def pack_group() -> None:
    """(not built yet)"""
