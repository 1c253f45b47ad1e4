"""AdsorbML: adsorbate placement, batched screening and adsorption energies (arXiv 2211.16486).

`run_adsorbml(bulk, "*CO", miller=(1, 1, 1))` builds slabs, places the adsorbate on heuristic and
random sites, relaxes everything with `relax_many`, rejects physically invalid results and ranks the
rest; `write_results` writes the table, the top-k structures for DFT and a figure. Modules, one job each:
`slabs` (cut and tag), `adsorbates` (library), `sites` (Delaunay sites), `placement`, `anomalies`,
`references` (adsorption-energy scheme), `screen`, `report`, `vasp` (DFT hand-off: VASP inputs, collection).
"""

from __future__ import annotations

from .adsorbates import Adsorbate, get_adsorbate, library_names, make_adsorbate
from .anomalies import ANOMALIES, detect_anomalies
from .placement import Placement, make_placements
from .report import summary_lines, write_results
from .screen import Candidate, SystemScreen, run_adsorbml, screen
from .sites import Site, heuristic_sites, random_sites
from .vasp import collect_vasp, write_vasp_inputs
from .slabs import SlabSettings, build_slabs, distinct_millers, tag_surface

__all__ = [
    "ANOMALIES", "Adsorbate", "Candidate", "Placement", "Site", "SlabSettings", "SystemScreen", "build_slabs",
    "detect_anomalies", "distinct_millers", "get_adsorbate", "heuristic_sites", "library_names", "make_adsorbate",
    "make_placements", "random_sites", "run_adsorbml", "screen", "summary_lines", "tag_surface", "write_results",
    "collect_vasp", "write_vasp_inputs",
]
