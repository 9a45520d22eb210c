"""Placeholder."""


def init_app(app, csrf):
    pass
