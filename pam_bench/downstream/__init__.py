"""The SimpleHand downstream augmentation study (PAM paper Section 4.5, Table 4, Fig. 7).

Train a single-image 3D hand-pose estimator on real clips, on generated clips (each with the GT
joints of the clip it was generated for), and on generated + 25/50/75/100% of the real clips, then
evaluate on a held-out real split with FreiHAND's Procrustes-aligned metrics.

Modules: :mod:`.evaluate` (PA-MPJPE/PA-MPVPE, F-score, AUC), :mod:`.mixtures` (real subsets, PAM's
pose-accuracy filtering), :mod:`.frames` (per-frame hand crops and targets), :mod:`.export`
(SimpleHand's FreiHAND-style folder), :mod:`.trainer` (the embedded CPU-friendly trainer),
:mod:`.simplehand` (the official trainer as an external command), :mod:`.study` (the whole study,
resumable), :mod:`.report` (Table 4 layout, Fig. 7 PNG). See docs/downstream.md.
"""
