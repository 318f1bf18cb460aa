"""Update rules as small composable transforms over stacked [P, ...] parameters."""

from .averaging import polyak_init, polyak_update
from .base import Transform, apply_updates, chain, per_member, select
from .schedules import Schedule, schedule_rate
from .transforms import MOMENTUM_FORMS, adagrad, adam, add_decay, momentum, scale_by_layer, scale_by_rate

__all__ = ["MOMENTUM_FORMS", "Schedule", "Transform", "adagrad", "adam", "add_decay", "apply_updates",
           "chain", "momentum", "per_member", "polyak_init", "polyak_update", "scale_by_layer",
           "scale_by_rate", "schedule_rate", "select"]
