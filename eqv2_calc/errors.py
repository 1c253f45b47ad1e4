"""Exception classes: every failure a user can cause gets a specific, actionable error."""

from __future__ import annotations


class EquiformerV2Error(Exception):
    """Base class of all errors raised by eqv2_calc."""


class InvalidStructureError(EquiformerV2Error, ValueError):
    """The input structure cannot be evaluated (empty, NaN positions, degenerate cell, bad element)."""


class CheckpointError(EquiformerV2Error, ValueError):
    """A checkpoint file is corrupt, not an EquiformerV2 checkpoint, or does not match the model."""


class ConfigError(EquiformerV2Error, ValueError):
    """A model configuration holds an unknown or unsupported option."""


class UnknownModelError(EquiformerV2Error, LookupError):
    """A model name is neither a registered checkpoint (or alias) nor an existing file."""


class DownloadError(EquiformerV2Error, OSError):
    """A checkpoint could not be downloaded (network, server, disk full, interrupted transfer)."""


class OfflineError(DownloadError):
    """The checkpoint is not cached and the network is off (offline mode) or unreachable."""


class GatedRepoError(DownloadError):
    """A Hugging Face repository needs an accepted access request and a token."""


class ChecksumError(DownloadError):
    """A downloaded or cached file does not have the sha256 the registry expects."""


class RegistryError(EquiformerV2Error, ValueError):
    """`checkpoints.json` (or a file named by `EQV2_REGISTRY`) holds an invalid entry."""


class ModelNotice(UserWarning):
    """Shown once per model and process: the model's license and the structures it was trained for."""


class DomainWarning(UserWarning):
    """The input structure does not look like the structures the model was trained on."""
