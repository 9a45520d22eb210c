"""Placeholder."""

from flask import Blueprint

bp = Blueprint("home_views", __name__)
