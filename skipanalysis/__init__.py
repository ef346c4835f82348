"""skipanalysis: helpers behind the skip-connection notebooks.

Each module owns one concept (device and machine, claims, plots, data,
training, the report); the notebooks under ``notebooks/`` call them.
"""

__version__ = "0.1.0"

import sys as _sys

# jsonschema (under nbformat, papermill and nbconvert) compiles a grammar for its IRI format checks
# at import when
# rfc3987-syntax is installed (JupyterLab's jupyter-events pulls it in): about 1.8 s in every
# process that reads a
# notebook (each notebook's runner, the report, the tests). Nothing here validates IRIs, and
# jsonschema leaves those
# checks out when the module cannot be imported, so it is marked absent in the processes that import
# this package.
_sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
