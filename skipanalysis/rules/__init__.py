"""The rules that turn measured numbers into verdicts: one named, tested function per claim.

Each rule takes the numbers a notebook measured and returns a ``Decision``: the verdict, the rule's text and the
numbers it used. The rule text lives once, in the ``@rule`` decorator; the notebook prints it with the verdict and
the report quotes it from the claim file, so the three can never disagree. ``RULES`` maps claim IDs to rules.

One module per notebook (``degradation`` for D1-D5, ``gradients`` for G1-G6, ...) plus ``conclusion`` for S1; the
shared machinery (``Decision``, ``rule``, ``identity``, claim kinds) is in ``core``. Everything is importable from
``skipanalysis.rules`` directly: ``rules.d1(...)``, ``rules.text("D1")``.
"""

from .core import (CHECKS, EMPIRICAL_VERDICTS, IDENTITY_CLAIMS, IDENTITY_VERDICTS, RULES,  # noqa: F401
                   VERDICTS, Decision, check, claim_kind, decider, decode, encode, identity, rule, text)
from .degradation import *  # noqa: F401,F403
from .gradients import *  # noqa: F401,F403
from .equivalence import *  # noqa: F401,F403
from .cost import *  # noqa: F401,F403
from .transformer import *  # noqa: F401,F403
from .unet import *  # noqa: F401,F403
from .landscape import *  # noqa: F401,F403
from .efficiency import *  # noqa: F401,F403
from .conclusion import *  # noqa: F401,F403
