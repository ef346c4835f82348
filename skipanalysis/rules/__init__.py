"""The rules that turn measured numbers into verdicts: one named, tested function per claim.

Each rule takes the numbers a notebook measured and returns a ``Decision``: the verdict, the rule's
text and the numbers it used. The rule text lives once, in the ``@rule`` decorator; the notebook
prints it with the verdict and the report quotes it from the claim file, so the three can never
disagree.

One module per notebook, named after it (``degradation`` for 01's D1-D5, ``gradient_flow`` for 02's
G1-G6, ..., ``param_efficiency`` for 08), plus ``conclusion`` for S1; the shared machinery
(``Decision``, ``rule``, ``check``, ``identity``, claim kinds) is in ``core``. A study imports its
own module (``from skipanalysis.rules import degradation``; ``degradation.d1(...)``), so a notebook
depends on its own rules only. ``registry`` imports every module, for what handles all claims at
once (the report, the bundle): ``registry.RULES`` maps claim IDs to rules.
"""
