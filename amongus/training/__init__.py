"""Fine-tuning of the spoof classifier on separated streams, with the separator frozen.

``Trainer(TrainerConfig(...)).train()`` or ``python -m amongus.train``; see docs/training.md.
"""

from .config import TrainerConfig
from .stream_cache import CacheEntry, StreamCache
from .trainer import Trainer, TrainResult

__all__ = ["CacheEntry", "StreamCache", "TrainResult", "Trainer", "TrainerConfig"]
