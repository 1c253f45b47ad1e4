"""`ocpmodels.models.scn.sampling` = fairchem-core 1.10's."""

from fairchem.core.models.scn.sampling import CalcSpherePoints, CalcSpherePointsRandom  # noqa: F401
