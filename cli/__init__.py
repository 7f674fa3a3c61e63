"""The `lossguard` command line (the app shell over features, synthetic, training and serving)."""
from cli.app import app, main

__all__ = ["app", "main"]
