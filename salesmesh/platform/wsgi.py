"""WSGI entry point for production servers: `gunicorn 'salesmesh.platform.wsgi:app'`.

This is the one place (besides the CLI) that reads SALESMESH_* variables, and it does so when the
server imports it, not when the package is imported. Use one gunicorn worker process in embedded
mode (SQLite): each process would start its own background threads.
"""

from salesmesh.platform.app import create_app
from salesmesh.platform.embedded import start_background
from salesmesh.platform.runtime import Runtime
from salesmesh.platform.settings import Settings

runtime = Runtime(Settings.from_env())
app = create_app(runtime.settings, runtime=runtime)
# Embedded mode (no Redis): jobs and the timer sweeper run on threads of this process. With Redis
# this starts nothing; run `salesmesh worker` and `salesmesh scheduler` instead.
stop_background = start_background(runtime)
