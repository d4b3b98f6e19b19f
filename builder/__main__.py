"""``python -m builder`` runs the command line."""

from builder.cli import app

app(prog_name="builder")
