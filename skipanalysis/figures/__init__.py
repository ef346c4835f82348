"""One module per notebook, named after it: the figures drawn from what its study
(``skipanalysis.studies``) measured; every figure is saved through ``plotting.save_figure``."""
