"""Placeholder."""

from flask import Blueprint

bp = Blueprint("definitions_api", __name__)
