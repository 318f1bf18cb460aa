"""§4.1's gradient check: a correct family passes, and bugs injected into a copy of a family are
caught and located in their layer."""

import json
from dataclasses import replace
from typing import ClassVar

import pytest
import torch

from purelearn.cli import main
from purelearn.config import load_config
from purelearn.diagnose import check_gradients, check_overfitting
from purelearn.nn import MLP
from purelearn.nn.family import register
from purelearn.train import Member, Training
from purelearn.nn.activations import activation as activation_fn
from purelearn.nn.autoencoder import AutoEncoderFamily
from purelearn.nn.losses import output_delta
from purelearn.nn.mlp import MLPFamily, forward

MLP2 = ["model.hidden=[16,16]", "model.activation=tanh"]


def buggy_gradients(params, X, hidden, delta, activation, bug):
    """backprop.gradients written out again, with one bug."""
    backward = activation_fn(activation).backward
    grads = {}
    for l in range(len(hidden), -1, -1):
        W = params[f"W{l}"]
        h = hidden[l - 1] if l else X
        grads[f"W{l}"] = torch.bmm(delta.transpose(1, 2), h)
        grads[f"b{l}"] = delta.sum(1, keepdim=True) * (2.0 if bug == "factor" and l == 2 else 1.0)
        if l:
            W_back = W.transpose(1, 2) if bug == "transposed" and l == 1 else W
            below = torch.bmm(delta, W_back)
            delta = backward(below, hidden[l - 1])
            if bug == "sign" and l == 2:
                delta = -delta
    return {name: grads[name] for name in params}


class BrokenMLP(MLPFamily):
    """The MLP with a bug in its hand-derived backward pass."""

    def __init__(self, bug):
        self.bug = bug

    def signal(self, spec, hp, params, extras, X, y):
        z, hidden = forward(params, X, spec.activation, None, keep_hidden=True)
        losses, delta = output_delta(spec.output, z, y)
        losses = losses.mean(1)
        return losses, losses, buggy_gradients(params, X, hidden, delta.div_(X.shape[1]), spec.activation, self.bug)


class ForgetsContraction(AutoEncoderFamily):
    """An auto-encoder whose gradient leaves out its contractive penalty."""

    def signal(self, spec, hp, params, extras, X, y):
        losses, criterion, grads = super().signal(spec, hp, params, extras, X, y)
        plain = dict(extras, contracts=False)
        return losses, criterion, super().signal(spec, hp, params, plain, X, y)[2]


@pytest.mark.parametrize("overrides", [
    MLP2, [*MLP2, "train.sparsity=l1", "train.sparsity_coef=0.1"],
    ["model.family=autoencoder", "model.hidden=12", "model.corruption_level=0.3", "model.contraction=0.1",
     "data.preprocess=['scale']"],
    ["model.family=autoencoder", "model.hidden=12", "model.tied=false", "model.corruption=gaussian",
     "model.corruption_level=0.3", "train.sparsity=student_t", "train.sparsity_coef=0.1"],
])
def test_a_correct_family_passes(overrides):
    c = load_config(None, overrides)
    check = check_gradients(c.member(), c.data.splits())
    assert check.ok and check.tensors and all(t.error < 1e-7 for t in check.tensors)


@pytest.mark.parametrize("bug, wrong", [("sign", {"W0", "b0", "W1", "b1"}), ("factor", {"b2"}),
                                        ("transposed", {"W0", "b0"})])
def test_a_bug_in_the_backward_pass_is_caught_in_its_layer(bug, wrong):
    c = load_config(None, MLP2)
    splits = c.data.splits()
    assert check_gradients(c.member(), splits, family=BrokenMLP(None)).ok      # the copy itself is right
    check = check_gradients(c.member(), splits, family=BrokenMLP(bug))
    assert {t.name for t in check.tensors if not t.ok} == wrong
    assert check.wrong_layers == sorted({int(name[1:]) for name in wrong})
    assert all(t.error > 1e-2 for t in check.tensors if not t.ok)


def test_a_penalty_left_out_of_the_gradient_is_caught():
    c = load_config(None, ["model.family=autoencoder", "model.hidden=12", "model.contraction=0.5",
                           "data.preprocess=['scale']"])
    check = check_gradients(c.member(), c.data.splits(), family=ForgetsContraction())
    assert not check.ok and {t.name for t in check.tensors if not t.ok} >= {"W0"}


def test_a_large_layer_is_checked_along_directions():
    c = load_config(None, ["data.name=mnist5k", "data.preprocess=['scale']", "model.hidden=[300]"])
    check = check_gradients(c.member(), c.data.splits(), directions=4)
    w0 = next(t for t in check.tensors if t.name == "W0")
    assert w0.probed == "4 directions" and check.ok


def test_an_rbm_says_why_it_has_no_gradient_to_check():
    c = load_config(None, ["model.family=rbm", "model.hidden=8", "data.preprocess=['scale']"])
    check = check_gradients(c.member(), c.data.splits())
    assert check.ok and not check.tensors and "not the gradient" in check.skipped


def test_check_from_the_command_line(capsys, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[data]\npreprocess = ["standardize"]\n[model]\nhidden = [16, 16]\n[train]\nlr = 0.1\n')
    assert main(["check", str(cfg), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["gradients"]["ok"] and {t["tensor"] for t in out["gradients"]["tensors"]} >= {"W0", "b2"}
    assert main(["check", str(cfg)]) == 0
    text = capsys.readouterr().out
    assert "W0" in text and "gradients: right" in text and "SGD and L-BFGS both fit 100" in text


class BrokenSpec(MLP):
    family: ClassVar[str] = "mlp-with-a-bug"


@register
class WrongSignFamily(BrokenMLP):
    """Registered, so that the whole engine trains with the bug (by its signal, not fused)."""

    name, spec, fused = "mlp-with-a-bug", BrokenSpec, False

    def __init__(self):
        super().__init__("sign")


def test_overfitting_a_small_set_tells_the_optimizer_from_the_code():
    c = load_config(None, ["model.hidden=[32]", "train.lr=0.1"])
    splits = c.data.splits()
    fine = check_overfitting(c.member(), splits)
    assert fine.ok and fine.sgd_error <= 0.02 and fine.lbfgs_error <= 0.02 and fine.examples == 100
    slow = check_overfitting(replace(c.member(), train=replace(c.member().train, lr=1e-5)), splits)
    assert not slow.ok and slow.lbfgs_error <= 0.02 and "optimizer's settings" in slow.verdict
    broken = Member(BrokenSpec(hidden=(16, 16)), Training(lr=0.1))
    bad = check_overfitting(broken, splits)
    assert not bad.ok and bad.lbfgs_error > 0.02 and "the model or the code" in bad.verdict
    assert check_overfitting(load_config(None, ["model.family=autoencoder", "model.hidden=8"]).member(),
                             splits).skipped
