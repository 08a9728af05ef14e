"""Maintenance scripts, run as modules from the project root: ``python -m scripts.<name>``."""
