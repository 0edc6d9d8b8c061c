"""Work on whole batches: native per-batch operations, firewall rules and their compiled filter.

This layer knows buffers and rules, not ports: :class:`aioixy.PacketBatch` mixes in
:class:`~aioixy.ops.batch.BatchOps`, and the control plane edits a :class:`RuleSet` that
:class:`Filter` compiles for the data path.
"""

from aioixy.ops.filter import Filter
from aioixy.ops.rules import MAX_RULES, Rule, RuleError, RuleLimit, RuleSet, parse_rule

__all__ = ["MAX_RULES", "Filter", "Rule", "RuleError", "RuleLimit", "RuleSet", "parse_rule"]
