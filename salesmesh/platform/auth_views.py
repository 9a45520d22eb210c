"""Placeholder."""

from flask import Blueprint

bp = Blueprint("auth_views", __name__)
