"""Placeholder: background job runner and sweeper thread for embedded mode (see timers/jobs)."""


def start_background(runtime):
    return lambda: None
