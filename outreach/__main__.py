"""`python -m outreach` runs the CLI."""
from outreach.cli import main

main()
