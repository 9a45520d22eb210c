"""Placeholder until this area lands."""

import click


@click.group("team")
def team_group() -> None:
    """(not built yet)"""


@click.group("user")
def user_group() -> None:
    """(not built yet)"""
