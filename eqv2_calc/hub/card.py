"""A model resolved once: what the user named and its registry entry, carried by the loaded `Potential`."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .registry import ModelEntry, find_entry

IN_CODE = "a Potential built in code"


@dataclass(frozen=True)
class ModelCard:
    """What every workflow asks of a model (training elements, energy kind, references, domain), looked up
    once, when the model is named; `load_model` hands it to the `Potential` it loads (`Potential.card`).

    Attributes:
        source: what the model was named by: a registered name or alias, a file path, an `hf://` address or a
            URL; `IN_CODE` for a `Potential` made in code.
        entry: its registry entry; None for an unregistered file, address or object, which then accepts any
            element below its network's `max_num_elements`, has an energy of unknown kind and no domain check.
    """

    source: str
    entry: ModelEntry | None = None

    @classmethod
    def of(cls, model: str | os.PathLike) -> ModelCard:
        """The card of a model named by a registered name or alias, path, `hf://` address or URL."""
        return cls(os.fspath(model), find_entry(model))

    @property
    def name(self) -> str:
        """The registered name, else what the model was named by."""
        return self.entry.name if self.entry is not None else self.source
