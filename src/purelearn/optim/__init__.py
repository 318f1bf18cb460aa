"""Update rules as small composable transforms over stacked [P, ...] parameters."""

from .averaging import polyak_init, polyak_start, polyak_update
from .base import Transform, chain, descend, per_member, select
from .schedules import Schedule, schedule_rate
from .transforms import MOMENTUM_FORMS, adagrad, adam, add_decay, momentum, scale_by_layer

__all__ = ["MOMENTUM_FORMS", "Schedule", "Transform", "adagrad", "adam", "add_decay", "chain", "descend",
           "momentum", "per_member", "polyak_init", "polyak_start", "polyak_update", "scale_by_layer",
           "schedule_rate", "select"]
