"""Reading a trial's layer statistics (§4.2, ``train.monitor``): a table of the last snapshot,
and what in it calls for attention, with the remedy's section."""

from __future__ import annotations

import math

# §6.2: an average update about 1/1000 of the average weight; ten times off either way is worth a look
UPDATE_RATIO = (1e-4, 1e-2)
SATURATED = 0.5        # most of a layer's outputs at a bound: their slope, so their gradient, near zero
DEAD = 0.5             # most of a rectifier layer's units silent on every monitored example
VANISHING = 100.0      # the gradient's spread shrinking this much from the top hidden layer to the first


def layer_table(stats) -> dict:
    """The last snapshot: per layer of units its outputs' mean and spread, its gradient's spread,
    its saturated or dead fraction and its latest probe error; per parameter tensor its spread, its
    gradient's and the update ratio."""
    def last(entry, key, part=None):
        v = entry.get(key)
        if v is None:
            return None
        v = v[part][-1] if part else v[-1]
        return v if v is not None and math.isfinite(v) else None

    def probed(entry):              # the probe runs at fewer snapshots than the rest: its latest
        return next((v for v in reversed(entry.get("probe_error") or []) if v is not None and math.isfinite(v)), None)

    units = [{"layer": name, "activation": u["activation"], "mean": last(u, "post", "mean"),
              "std": last(u, "post", "std"), "grad_std": last(u, "grad", "std"), "saturated": last(u, "saturated"),
              "dead": last(u, "dead"), "probe_error": probed(u)} for name, u in stats.units.items()]
    tensors = [{"tensor": name, "layer": t["layer"], "std": last(t, "value", "std"), "grad_std": last(t, "grad", "std"),
                "update_ratio": last(t, "update_ratio")} for name, t in stats.tensors.items()]
    return {"examples_seen": stats.examples[-1] if stats.examples else None, "units": units, "tensors": tensors}


def findings(stats, weights=("W",)) -> list[str]:
    """What the last snapshot shows that calls for attention, each with its remedy and section."""
    table, out = layer_table(stats), []
    for t in table["tensors"]:
        r = t["update_ratio"]
        if r is not None and t["tensor"].startswith(weights) and not UPDATE_RATIO[0] <= r <= UPDATE_RATIO[1]:
            side = "small: a larger learning rate (or lr_scale) for this layer" if r < UPDATE_RATIO[0] else \
                "large: a smaller learning rate for this layer, or it may diverge"
            out.append(f"{t['tensor']}: the last update was {r:.1e} of the weights' size, far from about 1/1000 "
                       f"(§6.2); too {side} (§3.1.1).")
    for u in table["units"]:
        if u["saturated"] is not None and u["saturated"] > SATURATED:
            out.append(f"{u['layer']}: {u['saturated']:.0%} of its {u['activation']} outputs are saturated, where the "
                       "gradient vanishes (§4.2); standardized inputs, a smaller initial range (model.init_scale) or "
                       "another non-linearity (§3.2).")
        if u["dead"] is not None and u["dead"] > DEAD:
            out.append(f"{u['layer']}: {u['dead']:.0%} of its rectifier units are zero on every monitored example and "
                       "no longer learn (§4.2); a smaller learning rate or another initialization (§3.2).")
    spread = [u["grad_std"] for u in table["units"][:-1] if u["grad_std"] is not None]   # hidden layers
    if len(spread) >= 2 and spread[0] > 0 and spread[-1] / spread[0] > VANISHING:
        out.append(f"the gradient's spread falls {spread[-1] / spread[0]:.0f}-fold from the top hidden layer to the "
                   "first: the lower layers hardly learn (§4.2); unsupervised pre-training (§1.1) or layer-wise "
                   "learning rates (train.lr_scale, §3.1.1).")
    return out
