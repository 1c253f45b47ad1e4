"""Stand-in for the pre-fairchem `ocpmodels` package, mapped onto fairchem-core 1.10 (see ../README.md)."""
