"""Batch anonymization at scale: folders, manifests and object storage, resumable, on a local
pool or Ray.

`veil batch INPUT -o OUTPUT` lists the inputs, skips what its journal says is
already done with the same settings, runs the rest with Pipeline.process on a
local process pool or as Ray tasks, and writes a JSON summary.
"""

from __future__ import annotations

from .runner import BatchOptions, Summary, run_batch

__all__ = ["BatchOptions", "Summary", "run_batch"]
