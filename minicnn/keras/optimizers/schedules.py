"""``keras.optimizers.schedules``: ExponentialDecay, PiecewiseConstantDecay, CosineDecay."""

from ...schedules import CosineDecay, ExponentialDecay, LearningRateSchedule, PiecewiseConstantDecay
from ..unsupported import missing_names

__all__ = ["ExponentialDecay", "PiecewiseConstantDecay", "CosineDecay", "LearningRateSchedule"]
__getattr__ = missing_names(__name__, __all__)
