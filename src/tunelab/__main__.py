"""`python -m tunelab ...` (what `accelerate launch -m tunelab cell ...` runs)."""

from tunelab.cli import app

app()
