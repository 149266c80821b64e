"""The PAM engine (Pose -> Appearance -> Motion, CVPR 2026), re-implemented on diffusers.

- ``stage1_pose``: hand-object pose sequences (GraspXL reader, built-in generator) and their rendering
  to PAM's condition videos;
- ``stage2_appearance``: FLUX.1-dev + PAM's double ControlNet (official XLabs key layout) -> first frame;
- ``stage3_motion``: CogVideoX-5B-I2V + PAM's multi-condition branch -> video;
- ``checkpoint``: PAM's checkpoint layouts (save hook, convert_ckpt.py) + the CogVideoX base snapshot;
- ``prompts``: PAM's caption files matched to clip ids, T5 encoding with a disk cache;
- ``stage2_official``: appearance_gen's Stage II conventions (schedule argument, size, uint8);
- ``stage2_picks``: a user's hand-picked Stage II candidates per clip (``-o stage2_picks=FILE``);
- ``pipeline``: both diffusion stages from the resolved parts;
- ``generator``: ``PAMGenerator``, the pam-bench method ``pam``;
- the tiny random configs and checkpoint folders the tests use live in ``tests/tiny_pam.py``.

Importing this package is cheap; torch/diffusers load only inside the stage modules.
"""
