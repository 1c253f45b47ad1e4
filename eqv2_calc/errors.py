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


class EnergyOnlyModelError(EquiformerV2Error, ValueError):
    """A task needs forces (relaxation, MD, ...) but the model predicts only an energy (IS2RE direct)."""


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


class SlabError(EquiformerV2Error, ValueError):
    """No usable slab: the bulk cannot be cut along the Miller index, or the slab has no surface atoms."""


class AdsorbateError(EquiformerV2Error, ValueError):
    """An adsorbate is unknown, has no (or an invalid) binding atom, or cannot be placed without overlap."""


class UnsupportedElementError(InvalidStructureError):
    """The structure holds an element the chosen model was not trained on."""


class ClusterError(EquiformerV2Error, ConnectionError):
    """Ray is not installed, or the Ray cluster address cannot be reached or joined."""


class WorkerError(EquiformerV2Error, RuntimeError):
    """Model-holding workers cannot load the checkpoint, cannot be scheduled, or have all died."""


class ResultsDirError(EquiformerV2Error, ValueError):
    """A results directory holds another job's results (or files that are not results)."""


class EnergyReferenceError(EquiformerV2Error, ValueError):
    """A model's energies and a dataset's labels have different references (adsorption vs total energies)."""


class NEBError(EquiformerV2Error, ValueError):
    """A nudged elastic band cannot be run: end points with different atoms, order, cell or periodicity, too few
    images, an unknown method or optimizer, or a model that predicts no forces."""


class DFTHandoffError(EquiformerV2Error, ValueError):
    """A VASP hand-off directory would overwrite DFT results, or holds no (or a broken) eqv2 manifest."""


class ReactionError(EquiformerV2Error, ValueError):
    """A reaction cannot be read, its atoms do not balance, or it cannot be run (no forces, no frames)."""
