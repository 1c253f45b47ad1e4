"""`conditional_grad` of OCP, as fairchem-core 1.10 still has it."""

from fairchem.core.common.utils import conditional_grad  # noqa: F401
