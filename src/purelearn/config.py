"""The TOML configuration: ``[data]``, ``[model]`` and ``[train]`` sections plus ``device``.

A key is written in the chapter's words (``train.lr``, ``train.patience``, ``model.hidden``);
``--set KEY=VALUE`` overrides take a TOML value, and a bare word is read as a string.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from .data import load, prepare
from .data.splits import Splits
from .errors import ConfigError, closest, unknown
from .nn import FAMILIES, MLP, AutoEncoder, family_of
from .train import Member, Training


@dataclass(frozen=True)
class DataSpec:
    """Where the data comes from and how it is split and preprocessed.

    name: a built-in dataset (digits, mnist5k, mnist1d) or a file (.npz, .csv, *-ubyte[.gz]).
    target: the target column of a .csv. labels: the label file of IDX images. task: auto,
    classification, multilabel or regression. preprocess: steps fitted on train, e.g.
    ["standardize", "pca(0.95)"]. valid, test: fractions held out. seed: the split's seed.
    labeled: the training examples whose labels are used, a fraction in (0, 1) or a count (0:
    all); the rest are unlabeled inputs that pre-training (and any family that learns its own
    inputs) uses too. folds: K-fold cross-validation (0: one validation split): a trial trains
    one member per fold and its value is their mean. fold: the fold that validates when one
    split is trained (``train``).
    """

    name: str = "digits"
    target: str = ""
    labels: str = ""
    task: str = "auto"
    preprocess: tuple = ()
    valid: float = 0.2
    test: float = 0.2
    seed: int = 0
    labeled: float = 0.0
    folds: int = 0
    fold: int = 0

    def dataset(self):
        """The data as loaded, before it is split."""
        return load(self.name, target=self.target or None, labels=self.labels or None, task=self.task)

    def splits(self) -> Splits:
        return prepare(self.dataset(), valid=self.valid, test=self.test, seed=self.seed,
                       preprocess=self.preprocess, labeled=self.labeled, folds=self.folds, fold=self.fold)


@dataclass(frozen=True)
class Pretraining:
    """Greedy layer-wise pre-training (§1.1): ``levels`` auto-encoders or RBMs, each trained on
    the representation of the levels below it; the fine-tuned network (``[model]``, ``[train]``)
    starts from their encoders, with a new output layer.

    levels: how many (0: none, the network starts from random weights). probe: score each
    level's representation with a logistic regression (trained on the labeled training split,
    scored on validation). shared: ``[pretrain]``'s other keys, every level's settings
    (``family``, the family's model keys and ``[train]``'s keys), unless ``[level<N>]`` (``own``,
    level N counted from 1) sets them for level N. A level trains with the fine-tuning's seed
    unless it sets its own.
    """

    levels: int = 0
    probe: bool = True
    shared: dict = field(default_factory=dict)
    own: dict = field(default_factory=dict)            # level number -> its own keys

    def values(self, level: int) -> dict:
        return self.shared | self.own.get(level, {})

    def members(self, seed: int) -> list[Member]:
        """Each level's model and training, checked key by key (ranges wait for the data)."""
        return [_level(self, n, seed) for n in range(1, self.levels + 1)]

    def table(self) -> dict:
        """``{"pretrain": {...}, "level2": {...}}`` as written in a config file."""
        out = {"pretrain": {"levels": self.levels, "probe": self.probe, **self.shared}} if self != Pretraining() else {}
        return out | {f"level{n}": dict(v) for n, v in sorted(self.own.items())}


def _level(pre: Pretraining, n: int, seed: int) -> Member:
    values = pre.values(n)
    family = values.get("family", "autoencoder")
    if family not in FAMILIES or FAMILIES[family].supervised:
        levels = [name for name, f in FAMILIES.items() if not f.supervised]
        raise unknown(f"family of pre-training level {n} (level{n}.family)", family, levels)
    spec = FAMILIES[family].spec
    model = {f.name: f.default for f in fields(spec)}
    train = {f.name: f.default for f in fields(Training)}
    chosen = {"model": {}, "train": {"seed": seed}}
    for key, value in values.items():
        if key == "family":
            continue
        section = "model" if key in model else "train" if key in train else None
        if section is None:
            raise unknown(f"key of pre-training level {n} (of the {family} family)", key, [*model, *train])
        chosen[section][key] = _coerce(f"{section}.{key}", value, (model if section == "model" else train)[key],
                                       shown=f"level{n}.{key}")
    return Member(spec(**chosen["model"]), Training(**chosen["train"]))


LEVEL = re.compile(r"^level([1-9][0-9]*)$")
SECTIONS = {"data": DataSpec, "model": MLP, "train": Training, "pretrain": Pretraining}
# [model] family = ...: the model spec each family reads its keys into (MLP by default)
MODELS = {name: family.spec for name, family in FAMILIES.items()}
TOP_LEVEL = {"device": "cpu"}
# Keys whose value may be one number or a list of numbers.
NUMBER_OR_LIST = {"model.hidden", "train.l1", "train.l2", "train.lr_scale"}


@dataclass(frozen=True)
class Config:
    data: DataSpec = field(default_factory=DataSpec)
    model: MLP | AutoEncoder = field(default_factory=MLP)
    train: Training = field(default_factory=Training)
    pretrain: Pretraining = field(default_factory=Pretraining)
    device: str = "cpu"

    def member(self) -> Member:
        """The member trained: with pre-training, the network fine-tuned on top of the levels,
        whose hidden layers are the levels' codes (their widths and their encoders' activation)."""
        if not self.pretrain.levels:
            return Member(self.model, self.train)
        levels = self.levels()
        activations = {family_of(m.model).encoder_activation(m.model) for m in levels}
        if len(activations) > 1:
            raise ConfigError(f"the pre-training levels encode with different activations ({', '.join(sorted(activations))}); "
                              "the fine-tuned network has one: give every level the same activation.")
        widths = tuple(m.model.hidden for m in levels)
        return Member(replace(self.model, hidden=widths, activation=activations.pop()), self.train)

    def levels(self) -> list[Member]:
        """The pre-training levels, level 1 (on the inputs) first."""
        return self.pretrain.members(self.train.seed)

    def to_dict(self) -> dict:
        # with pre-training, [model] shows the network fine-tuned: the levels' widths and activation
        model = self.member().model if self.pretrain.levels else self.model
        d = {"data": asdict(self.data), "model": asdict(model), "train": asdict(self.train)}
        if self.model.family != "mlp":          # an MLP's config reads as it did before families
            d["model"] = {"family": self.model.family, **d["model"]}
        return _jsonable(d | self.pretrain.table() | {"device": self.device})

    def with_values(self, values: dict[str, object]) -> "Config":
        """A copy with dotted keys set (``{"train.lr": 0.1}``), each checked and coerced."""
        sections = {s: {} for s in SECTIONS if s != "pretrain"}
        top, pretrain = {}, {"shared": dict(self.pretrain.shared), "own": {n: dict(v) for n, v in self.pretrain.own.items()}}
        model = self.model
        if "model.family" in values:
            family = values["model.family"]
            if family not in MODELS:
                raise unknown("model family (model.family)", family, MODELS)
            if family != model.family:
                model = MODELS[family]()
        for key, value in values.items():
            if key == "model.family":
                continue
            section, _, name = key.partition(".")
            if name and (section == "pretrain" or LEVEL.match(section)):
                _pretraining_key(pretrain, section, name, value)
                continue
            if not name:
                if key in SECTIONS:
                    raise ConfigError(f"{key} = {value!r}: {key} is a section, written as a table "
                                      f"([{key}] with its keys, or --set {key}.KEY=VALUE).")
                if key not in TOP_LEVEL:
                    raise unknown("top-level key", key, list(TOP_LEVEL) + list(SECTIONS))
                top[key] = _coerce(key, value, TOP_LEVEL[key])
                continue
            if section not in SECTIONS:
                raise unknown("config section", section, SECTIONS)
            spec = type(model) if section == "model" else SECTIONS[section]
            allowed = {f.name: f.default for f in fields(spec)}
            if name not in allowed:
                where = f"[model] of the {model.family} family" if section == "model" else f"[{section}]"
                raise unknown(f"key in {where}", name, allowed)
            sections[section][name] = _coerce(key, value, allowed[name])
        current = {"data": self.data, "model": model, "train": self.train}
        changed = {s: replace(current[s], **v) for s, v in sections.items() if v}
        config = replace(self, **{"model": model, **changed}, **top,
                         pretrain=_pretraining(self.pretrain, pretrain))
        if config.pretrain.levels:
            config._check_pretraining(values)
        return config

    def _check_pretraining(self, values: dict) -> None:
        if self.model.family != "mlp":
            raise ConfigError(f"pretrain.levels = {self.pretrain.levels}: pre-training initializes an MLP, but "
                              f"[model] is a {self.model.family}; set model.family = \"mlp\" (the network fine-tuned).")
        member = self.member()                       # the levels' keys, checked
        for key, got in (("model.hidden", member.model.hidden), ("model.activation", member.model.activation)):
            given = values.get(key)
            if given is not None and _as_given(given) != _as_given(got):
                raise ConfigError(f"{key} = {given!r}, but with pre-training the fine-tuned network's hidden "
                                  f"layers are the levels' codes ({key.split('.')[1]} {_as_given(got)!r}); "
                                  f"leave {key} out, or set it on the levels.")


def _as_given(v):
    return list(v) if isinstance(v, (list, tuple)) else [v] if isinstance(v, int) and not isinstance(v, bool) else v


def _pretraining_key(pretrain: dict, section: str, name: str, value) -> None:
    """Set a ``pretrain.KEY`` or ``level<N>.KEY`` value (checked when the levels are built)."""
    if section == "pretrain":
        if name in ("levels", "probe"):
            pretrain[name] = value
        else:
            pretrain["shared"][name] = value
    else:
        pretrain["own"].setdefault(int(LEVEL.match(section).group(1)), {})[name] = value


def _pretraining(old: Pretraining, new: dict) -> Pretraining:
    levels = _coerce("pretrain.levels", new.get("levels", old.levels), 0)
    probe = _coerce("pretrain.probe", new.get("probe", old.probe), True)
    if levels < 0:
        raise ConfigError(f"pretrain.levels = {levels} must be >= 0 (0: no pre-training).")
    beyond = sorted(n for n in new["own"] if n > levels)
    if beyond and levels:             # levels = 0 turns pre-training off, its tables stay unused
        raise ConfigError(f"[level{beyond[0]}] is set but pretrain.levels = {levels}; raise pretrain.levels to "
                          f"{beyond[-1]} or remove the level's keys.")
    return Pretraining(levels, probe, new["shared"], new["own"])


def _coerce(key: str, value, default, shown: str | None = None):
    """Check a value against the type of the key's default, converting where it is safe
    (``shown``: the key as the user wrote it, when it differs)."""
    if shown is not None:
        try:
            return _coerce(key, value, default)
        except ConfigError as e:
            raise ConfigError(str(e).replace(key, shown, 1)) from None
    if key in NUMBER_OR_LIST:
        if isinstance(value, list):
            value = tuple(value)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) or (
            isinstance(value, tuple) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))
        if not ok:
            raise ConfigError(f"{key} = {value!r}: expected a number or a list of numbers.")
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} = {value!r}: expected true or false.")
        return value
    if isinstance(default, float):
        if isinstance(value, str) and value.strip().lower() in ("inf", "infinity"):
            return math.inf
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} = {value!r}: expected a number.")
        return float(value)
    if isinstance(default, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} = {value!r}: expected a whole number.")
        return value
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key} = {value!r}: expected a list of strings.")
        return tuple(value)
    if not isinstance(value, str):
        raise ConfigError(f"{key} = {value!r}: expected a string.")
    return value


def flatten(table: dict) -> dict[str, object]:
    """{"train": {"lr": 0.1}, "device": "cpu"} -> {"train.lr": 0.1, "device": "cpu"}."""
    out = {}
    for key, value in table.items():
        if isinstance(value, dict):
            if key not in SECTIONS and not LEVEL.match(key):
                raise unknown("config section", key, SECTIONS)
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def parse_override(text: str) -> tuple[str, object]:
    """``"train.lr=0.05"`` -> ("train.lr", 0.05); a value that isn't TOML is a bare string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: write KEY=VALUE, e.g. --set train.lr=0.05.")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.strip(), value


def with_overrides(table: dict, overrides=()) -> dict:
    """A copy of a config's tables with ``KEY=VALUE`` overrides set in them (``search.*`` keys too)."""
    table = {k: dict(v) if isinstance(v, dict) else v for k, v in table.items()}
    for text in overrides:
        key, value = parse_override(text)
        *sections, name = key.split(".")
        where = table
        for section in sections:
            inner = where.get(section)
            where[section] = inner = dict(inner) if isinstance(inner, dict) else {}
            where = inner
        where[name] = value
    return table


def read_toml(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {str(path)!r} is a folder; name a .toml file in it.")
    if not path.exists():
        hint = closest(path.name, [p.name for p in path.parent.glob("*.toml")]) if path.parent.exists() else ""
        raise ConfigError(f"config file {str(path)!r} does not exist.{hint}")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {e}.") from None


def load_config(path: str | Path | None = None, overrides=()) -> Config:
    """A Config from a TOML file (or the defaults), then ``KEY=VALUE`` overrides in order."""
    values = flatten(read_toml(path)) if path is not None else {}
    for text in overrides:
        key, value = parse_override(text)
        values[key] = value
    return Config().with_values(values)


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return "inf" if x > 0 else "-inf"
    return x


@dataclass(frozen=True)
class SearchSpec:
    """The ``[search]`` section: how ``purelearn tune`` searches.

    strategy: random, grid, coordinate, multires, tpe or layerwise. trials: the total wanted (a re-run
    extends the study to it). workers: processes (0: one per core). population: trials trained
    together as one batched population in a process, "auto" (measured) or a number (1: one
    trial at a time). memory_limit: MB a population may use (0: half the free memory). store: the SQLite file or
    database URL (default runs/<config file name>.db). study: its name (default: the config file's
    name). expand: widen an interval whose best value sits on its edge (§3.3.1). k, rounds: grid
    values per knob and successive finer grids (k also sets coordinate descent's values per
    step). stage_size, keep: multires stages and how many best points each refines. startup:
    TPE's random trials before its model is used. keep_models: how many best trials' trained
    models the store keeps (0: every trial's). layerwise (Algorithm 1, §3.3.4): keep is K, the
    configurations kept per level, candidates the settings drawn per level and for the
    fine-tuning (k > 0: a grid of k values per knob instead), screen the fraction of a level's
    candidates trained in full after a cheap screening of all (0: none; each screened level
    trains screen_epochs epochs, 0: none, and is probed); its trials are as many as that plan
    makes. prune: stop hopeless trials early (§3.3.1): auto (decided and said), median,
    successive-halving or none; prune_min_examples the median rule's warm-up and the first rung
    of successive halving (0: one epoch), prune_min_trials the others the median needs,
    prune_reduction the rungs' factor (the best 1/reduction go on). The knobs are in
    ``[search.space]``.
    """

    strategy: str = "random"
    trials: int = 64
    seed: int = 0
    workers: int = 0
    population: str = "auto"
    memory_limit: int = 0
    store: str = ""
    study: str = ""
    expand: bool = False
    k: int = 0
    rounds: int = 1
    stage_size: int = 16
    keep: int = 3
    startup: int = 10
    keep_models: int = 3
    candidates: int = 4
    screen: float = 0.0
    screen_epochs: int = 1
    prune: str = "auto"
    prune_min_examples: int = 0
    prune_min_trials: int = 5
    prune_reduction: int = 3

    def checked(self) -> "SearchSpec":
        """Refuse settings no run can use, before anything is stored."""
        for key in ("trials", "workers", "memory_limit", "startup", "keep_models"):
            low = 1 if key == "trials" else 0
            if getattr(self, key) < low:
                zero = {"startup": "", "keep_models": " (0: every trial's model)."}.get(key, " (0: the default).")
                raise ConfigError(f"search.{key} = {getattr(self, key)} must be >= {low}" + (zero or "."))
        self.population_size()
        self.pruning()
        return self

    def pruning(self):
        from .search.pruning import Pruning

        return Pruning(self.prune, self.prune_min_examples, self.prune_min_trials, self.prune_reduction)

    def population_size(self) -> int | str:
        if self.population == "auto":
            return "auto"
        try:
            size = int(self.population)
        except ValueError:
            size = 0
        if size < 1:
            raise ConfigError(f"search.population = {self.population!r}: use \"auto\" or a whole number >= 1.")
        return size

    def options(self) -> dict:
        """The settings that belong to the chosen strategy."""
        if self.strategy == "grid":
            return {"k": self.k or None, "rounds": self.rounds}
        if self.strategy == "coordinate":
            return {"k": self.k or 5}
        if self.strategy == "multires":
            return {"stage_size": self.stage_size, "keep": self.keep}
        if self.strategy == "tpe":
            return {"startup": self.startup}
        if self.strategy == "layerwise":
            return {"keep": self.keep, "candidates": self.candidates, "k": self.k or None, "screen": self.screen,
                    "screen_epochs": self.screen_epochs}
        return {}


def load_search(path: str | Path, overrides=(), flags: dict | None = None) -> tuple[Config, SearchSpec, dict]:
    """The training config, the ``[search]`` settings and the ``[search.space]`` table of a file;
    overrides (``KEY=VALUE`` text) may set ``search.*`` keys too, and ``flags`` (values already
    typed, from the command line's options) set ``[search]`` keys last."""
    config, spec, space = search_table(read_toml(path), str(path), overrides, flags)
    if space is None:
        raise ConfigError(f"{path}: a [search.space] table is needed for tune, e.g. "
                          "[search.space] \"train.lr\" = \"loguniform(1e-4, 1)\".")
    return config, spec, space


def search_table(table: dict, source: str, overrides=(), flags: dict | None = None
                 ) -> tuple[Config, SearchSpec, dict | None]:
    """:func:`load_search` of a table already read (``source`` names it in messages); the space
    is None where the table has none."""
    table = dict(table)
    search = table.pop("search", {})
    if not isinstance(search, dict):
        raise ConfigError(f"{source}: search must be a table ([search]), got {search!r}.")
    search = dict(search)
    space = search.pop("space", None)
    values = flatten(table)
    search_values = {}
    for text in overrides:
        key, value = parse_override(text)
        if key.startswith("search."):
            search_values[key.removeprefix("search.")] = value
        else:
            values[key] = value
    allowed = {f.name: f.default for f in fields(SearchSpec)}
    merged = {}
    for key, value in (search | search_values | (flags or {})).items():
        if key not in allowed:
            raise unknown("key in [search]", key, list(allowed) + ["space"])
        if key == "population" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)                       # "auto" or a number
        merged[key] = _coerce(f"search.{key}", value, allowed[key])
    spec = SearchSpec(**merged).checked()
    if space is not None and not isinstance(space, dict):
        raise ConfigError(f"{source}: search.space must be a table of knobs ([search.space]), got {space!r}.")
    return Config().with_values(values), spec, space


def to_toml(config: Config) -> str:
    """The config as a TOML file ``purelearn train`` reads back."""
    lines = []
    d = config.to_dict()
    lines.append(f"device = {_toml_value(d.pop('device'))}")
    for section, table in d.items():
        lines.append(f"\n[{section}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in table.items())
    return "\n".join(lines) + "\n"


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return "inf" if v == "inf" else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, float):
        return repr(v)
    return str(v)
