"""Placeholder."""

from flask import Blueprint

bp = Blueprint("definitions_ui", __name__)
