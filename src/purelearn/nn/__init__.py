"""Model families (the MLP, auto-encoders), stacked over members; activations, output/loss pairs,
init, penalties. Importing a family's module registers it (``FAMILIES``)."""

from .activations import ACTIVATIONS, activation, canonical
from .init import SCHEMES, init_bound
from .losses import OUTPUTS, example_errors, example_losses, output_for
from .autoencoder import AutoEncoder
from .rbm import RBM
from .family import FAMILIES, Family, family_of
from .mlp import MLP, forward, init_member, member_params, predict_scores, stack_members, unit_masks
from .penalties import SPARSITY_KINDS, l1_norm, l2_norm, sparsity_penalty

__all__ = ["ACTIVATIONS", "FAMILIES", "MLP", "RBM", "AutoEncoder", "Family", "family_of", "OUTPUTS", "SCHEMES", "SPARSITY_KINDS", "activation", "canonical",
           "example_errors", "example_losses", "forward", "init_bound", "init_member", "l1_norm",
           "l2_norm", "member_params", "output_for", "predict_scores", "sparsity_penalty",
           "stack_members", "unit_masks"]
