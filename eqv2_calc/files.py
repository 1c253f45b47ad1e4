"""Output files that appear together: written into a temporary folder, then moved into place.

A command that writes several files (a table, a summary, a plot, structures) must not leave half of them behind
when it fails part way: `staged_files` gives a temporary folder inside the destination and moves the named files
in only once the block has finished without error.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged_files(directory: Path, names: Sequence[str]) -> Iterator[Path]:
    """A temporary folder inside `directory` (created if needed) to write the files `names` into; when the block
    ends without error they are moved into `directory` together, else nothing is moved."""
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".staged-") as tmp:
        yield Path(tmp)
        for name in names:
            os.replace(Path(tmp) / name, directory / name)
