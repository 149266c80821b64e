"""The datasets (registered in :mod:`pam_bench.registry`): ``synthetic``, ``dexycb``, ``oakink2`` and
``pam-eval-dir``; helpers shared by the real-data ones in ``_common``."""
