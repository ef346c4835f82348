"""skipanalysis: helpers behind the skip-connection notebooks.

Each module owns one concept (device and machine, claims, plots, data,
training, the report); the notebooks under ``notebooks/`` call them.
"""

__version__ = "0.1.0"
