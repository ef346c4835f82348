"""One module per notebook, named after it (``degradation`` for 01_degradation, ...,
``param_efficiency`` for 08_param_efficiency): what the notebook measures, the runs it asks the
store for, and its claims; the figures are in ``skipanalysis.figures`` and the rules in
``skipanalysis.rules``, under the same names."""
