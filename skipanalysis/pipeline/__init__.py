"""From notebooks to the paper: the runner (papermill), make's dependencies, the notebook contract,
the report, the bundle, the planner and the checks (``make bench``, ``full-check``,
``gpu-check``)."""
