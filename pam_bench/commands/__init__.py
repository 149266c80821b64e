"""CLI sub-command groups, one module each; cli.py loads them lazily by name."""
