"""Search spaces: immutable domains and the unit-cube transform every tuner works in."""

from hpo_lightning.space._conditional import Condition, Conditional
from hpo_lightning.space._domains import Categorical, Domain, Float, Int
from hpo_lightning.space._space import SearchSpace

__all__ = ["Categorical", "Condition", "Conditional", "Domain", "Float", "Int", "SearchSpace"]
