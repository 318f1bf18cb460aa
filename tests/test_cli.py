import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from purelearn.cli import main
from purelearn.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "examples" / "digits-mlp.toml")
QUICK = ["--set", "train.max_epochs=2", "--set", "model.hidden=[32]"]


def test_train_prints_a_json_summary(capsys):
    assert main(["train", DIGITS, "--json", "--seed", "3", *QUICK, "--set", "model.activation=rectifier"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"best_valid_error", "examples_seen_at_best", "stopped_because", "seconds", "config"}
    assert out["best_valid_error"] < 0.2 and out["stopped_because"] == "budget"
    assert out["config"]["train"]["seed"] == 3 and out["config"]["model"]["hidden"] == [32]
    assert out["config"]["model"]["activation"] == "rectifier"


def test_set_values_are_toml_with_bare_words_as_strings():
    c = load_config(DIGITS, ["model.hidden=[256,256]", "model.activation=tanh", 'data.name="mnist1d"',
                             "train.tau=inf", "train.l2=[0.001, 0.0]", "train.polyak=true"])
    assert c.model.hidden == (256, 256) and c.model.activation == "tanh" and c.data.name == "mnist1d"
    assert c.train.tau == float("inf") and c.train.l2 == (0.001, 0.0) and c.train.polyak is True


def test_own_npz_data_through_the_cli(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    np.savez(tmp_path / "d.npz", X=X, y=(X[:, 0] > 0).astype(int))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[data]\nname = "{tmp_path / "d.npz"}"\n[model]\nhidden = [16]\n[train]\nlr = 0.1\nmax_epochs = 5\n')
    assert main(["train", str(cfg), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["best_valid_error"] < 0.15


BAD = [
    (["--set", "data.name=digitz"], "Did you mean 'digits'"),
    (["--set", "model.activaton=tanh"], "Did you mean 'activation'"),
    (["--set", "model.activation=tanhh"], "Did you mean 'tanh'"),
    (["--set", "model.output=softmaxx"], "Did you mean 'softmax'"),
    (["--set", "trian.lr=0.1"], "Did you mean 'train'"),
    (["--set", "train.lr=-0.1"], "train.lr = -0.1 is out of range"),
    (["--set", "train.patience=0"], "train.patience = 0 is out of range"),
    (["--set", "train.batch_size=100000"], "training-set size"),
    (["--set", "data.preprocess=['pca(1.5)']"], "variance fraction in \\(0, 1\\]"),
    (["--set", "train.lr=fast"], "expected a number"),
    (["--set", "noequals"], "write KEY=VALUE"),
]


@pytest.mark.parametrize("extra, message", BAD)
def test_bad_input_is_one_clear_error_with_exit_code_2(extra, message, capsys):
    assert main(["train", DIGITS, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("purelearn: error: ") and "Traceback" not in err
    assert __import__("re").search(message, err), err


def test_bad_files_are_refused(tmp_path, capsys):
    assert main(["train", str(tmp_path / "missing.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "broken.toml").write_text("[train\nlr = ")
    assert main(["train", str(tmp_path / "broken.toml")]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    np.savez(tmp_path / "nan.npz", X=np.array([[1.0, np.nan]] * 10), y=np.arange(10) % 2)
    np.savez(tmp_path / "short.npz", X=np.zeros((10, 2)), y=np.zeros(9))
    for name, message in (("nan.npz", "NaN or inf"), ("short.npz", "X has 10 examples but y has 9")):
        assert main(["train", DIGITS, "--set", f'data.name="{tmp_path / name}"']) == 2
        assert message in capsys.readouterr().err


def test_the_installed_command_exits_2_without_a_traceback():
    run = subprocess.run([sys.executable, "-m", "purelearn.cli", "train", DIGITS, "--set", "train.lr=-1"],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr and "train.lr" in run.stderr


def test_json_goes_to_stdout_and_progress_to_stderr(capsys):
    assert main(["train", DIGITS, *QUICK, "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["stopped_because"] == "budget"
    assert "examples" in err and "best valid error" in err
