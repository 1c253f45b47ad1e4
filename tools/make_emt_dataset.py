"""Generate the EMT-labelled demo dataset: python tools/make_emt_dataset.py .data/emt.db --workers 2"""
from eqv2_calc.data.emt import main
raise SystemExit(main())
