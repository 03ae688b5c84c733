"""External Touchpoint Engine: off-site exposure frequency planning with a feedback loop.

- :class:`ResponseModel`: conversion and opt-out curves in the number of exposures, per segment
  and channel, fitted from logs with randomised frequency arms and pooled across segments
  (``partial_fit`` adds the next window's outcomes).
"""

from ._response import Curves, ResponseModel

__all__ = ["Curves", "ResponseModel"]
