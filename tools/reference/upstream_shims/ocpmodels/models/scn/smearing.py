"""`ocpmodels.models.scn.smearing` = fairchem-core 1.10's."""

from fairchem.core.models.scn.smearing import (  # noqa: F401
    GaussianSmearing,
    LinearSigmoidSmearing,
    SigmoidSmearing,
    SiLUSmearing,
)
