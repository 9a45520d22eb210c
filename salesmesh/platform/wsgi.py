"""WSGI entry point for production servers: `gunicorn 'salesmesh.platform.wsgi:app'`.

This is the one place (besides the CLI) that reads SALESMESH_* variables, and it does so when the
server imports it, not when the package is imported.
"""

from salesmesh.platform.app import create_app
from salesmesh.platform.settings import Settings

app = create_app(Settings.from_env())
