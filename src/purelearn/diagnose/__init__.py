"""Finding out that training is wrong, and where (§4.1): the gradient check, controlled
overfitting, NaN poisoning (fresh buffers start as NaN, so a computation that reads memory
before writing it shows, with the operation and layer where it first does), the diagnosis of
a run's curves and of its layers' statistics (§4.2), and advice on a config or a study (§3)."""

from .advise import Advice, advise
from .diagnosis import Diagnosis, diagnose
from .gradcheck import GradientCheck, TensorCheck, check_gradients
from .layers import findings, layer_table
from .overfit import Overfit, check_overfitting
from .poison import NaNPoisoning, Poisoned, Poisoning, check_poisoning

__all__ = ["Advice", "Diagnosis", "GradientCheck", "NaNPoisoning", "Overfit", "Poisoned", "Poisoning",
           "TensorCheck", "advise", "check_gradients", "check_overfitting", "check_poisoning", "diagnose", "findings",
           "layer_table"]
