"""``python -m pam_bench``: the command line (:mod:`pam_bench.cli`)."""
from .cli import main

main()
