"""Finding out that training is wrong, and where (§4.1): the gradient check and controlled
overfitting."""

from .gradcheck import GradientCheck, TensorCheck, check_gradients
from .overfit import Overfit, check_overfitting

__all__ = ["GradientCheck", "Overfit", "TensorCheck", "check_gradients", "check_overfitting"]
