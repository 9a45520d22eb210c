"""Placeholder until this area lands."""

import click


@click.group("demo")
def demo_group() -> None:
    """(not built yet)"""
