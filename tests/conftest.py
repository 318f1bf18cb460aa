import numpy as np
import pytest
import torch

from purelearn.data import load, prepare

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(scope="session")
def digits():
    return prepare(load("digits"), preprocess=["standardize"], seed=0)


def fresh_digits():
    """A new Splits object (its test-read counter is per object)."""
    return prepare(load("digits"), preprocess=["standardize"], seed=0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
