"""Training data: read labelled structures (ASE db / extxyz) and generate the EMT demo dataset."""

from .dataset import (DatasetError, SplitNotFoundError, check_elements, label_forces, label_stress, load_datasets,
                      load_structures)

__all__ = ["DatasetError", "SplitNotFoundError", "check_elements", "label_forces", "label_stress", "load_datasets",
           "load_structures", "make_emt_dataset"]


def make_emt_dataset(*args, **kwargs):
    """See `eqv2_calc.data.emt.make_emt_dataset` (imported lazily: it pulls in the ASE optimizers)."""
    from .emt import make_emt_dataset as _make

    return _make(*args, **kwargs)
