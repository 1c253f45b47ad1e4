"""EquiformerV2 network in pure torch (knows nothing of ASE or files)."""

from .config import EquiformerV2Config, StressHeadConfig
from .equiformer import EquiformerV2

__all__ = ["EquiformerV2", "EquiformerV2Config", "StressHeadConfig"]
