"""The engine core: one evaluation run from clip selection to results.json.

One module per idea: :mod:`.selection` (which clips), :mod:`.components` (datasets, methods and metrics
built from the registry), :mod:`.inputs` (input-file fingerprints), :mod:`.gt_cache` (the only reader and
writer of reference-side payloads), :mod:`.state` (the :class:`~.state.Run` every later step receives),
:mod:`.loop` (the evaluate loop), :mod:`.finalize` (payloads -> results), :mod:`.context` (one process,
rank 0 of 1) and :mod:`.torchrun` (rank r of W under torchrun). Nothing here imports this package's
``__init__``, so the modules import each other without a cycle.
"""
