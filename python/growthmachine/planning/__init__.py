"""Operation planning: declarative plans, incremental-effect (uplift) models, executable tasks.

(Being built: see the submodules.)
"""

from __future__ import annotations
