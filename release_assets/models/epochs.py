"""Training progress as trainers report it: a line per epoch on a plain Python logger, which costs nothing when no
one listens and which the CLI's progress display (``cli/progress.py``) listens to while a run is open."""

from __future__ import annotations

import logging

TRAINING_LOGGER = "release_assets.training"


def report_epoch(epoch: int, epochs: int, loss: float) -> None:
    """Called by trainers after each epoch (the display knows which step is training); costs nothing unheard."""
    logging.getLogger(TRAINING_LOGGER).info("epoch %d/%d loss %.4f", epoch, epochs, loss)
