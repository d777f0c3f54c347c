"""`python -m tunelab ...` (what `accelerate launch -m tunelab cell ...` runs)."""

from tunelab.cli.main import app

app()
