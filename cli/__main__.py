"""`python -m cli …` runs the same app as the `lossguard` script."""
from cli.app import main

main()
