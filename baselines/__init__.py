"""The comparison methods (registered in :mod:`pam_bench.registry`): CosHand, the SVD ControlNet
baselines, the condition-warp, reference and folder methods; tiny test models live in ``tests/``."""
