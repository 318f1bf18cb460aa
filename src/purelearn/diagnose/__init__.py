"""Finding out that training is wrong, and where (§4): the gradient check, ..."""

from .gradcheck import GradientCheck, TensorCheck, check_gradients

__all__ = ["GradientCheck", "TensorCheck", "check_gradients"]
