"""Adam for the SAE training loop, without ``torch.optim.Optimizer``'s start-up cost.

Constructing any ``torch.optim.Optimizer`` imports ``torch._dynamo`` (its methods are
wrapped to be skipped by the compiler), about a second of CPU per process: a good part of
a short training run started from the command line.  :class:`Adam` keeps the parameter
groups and state in ``torch.optim.Adam``'s layout (its :meth:`state_dict` loads into
``torch.optim.Adam`` and back, so checkpoints are interchangeable) and runs torch's own
update (``torch.optim.adam.adam``: the fused kernel where this torch has it for the
parameters' device and type, the single-tensor loop otherwise), which imports nothing
more.  Betas (0.9, 0.999), eps 1e-8, no weight decay: the training loop's only use.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.adam import adam as adam_update

BETAS = (0.9, 0.999)
EPS = 1e-8
#: the group keys torch.optim.Adam writes (its defaults but lr and betas), so state dicts match
_GROUP_DEFAULTS = {"eps": EPS, "weight_decay": 0, "amsgrad": False, "maximize": False, "foreach": None,
                   "capturable": False, "differentiable": False, "fused": True, "decoupled_weight_decay": False}


class Adam:
    """Adam over parameter groups (``params``, ``lr`` and any extra keys, e.g. ``lr_scale``)."""

    def __init__(self, groups: list[dict[str, Any]], lr: float):
        self.param_groups = [{**_GROUP_DEFAULTS, "lr": lr, "betas": BETAS, **g, "params": list(g["params"])} for g in groups]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}
        self._fused: dict[int, bool] = {}

    def _state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        st = self.state.get(p)
        if st is None:
            st = self.state[p] = {"step": torch.tensor(0.0, dtype=torch.float32, device=p.device),
                                  "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                  "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
        return st

    @torch.no_grad()
    def step(self) -> None:
        for g in self.param_groups:
            params = [p for p in g["params"] if p.grad is not None]
            if not params:
                continue
            states = [self._state(p) for p in params]
            fused = self._fused.get(id(g))
            if fused is None:
                fused = self._fused[id(g)] = bool(g["fused"]) and _fused_ok(params)
            adam_update(params, [p.grad for p in params], [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
                        [], [s["step"] for s in states], foreach=False, capturable=False, differentiable=False, fused=fused,
                        grad_scale=None, found_inf=None, has_complex=False, decoupled_weight_decay=False, amsgrad=False,
                        beta1=g["betas"][0], beta2=g["betas"][1], lr=g["lr"], weight_decay=0.0, eps=g["eps"], maximize=False)

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim.Adam``'s layout: state by parameter index, groups listing indices."""
        index: dict[int, int] = {}
        groups = []
        for g in self.param_groups:
            for p in g["params"]:
                index.setdefault(id(p), len(index))
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": [index[id(p)] for p in g["params"]]})
        by_id = {id(p): p for g in self.param_groups for p in g["params"]}
        state = {index[i]: {k: v.clone() for k, v in self.state[p].items()} for i, p in by_id.items() if p in self.state}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        params = [p for g in self.param_groups for p in g["params"]]
        if len(sd["param_groups"]) != len(self.param_groups) or sum(len(g["params"]) for g in sd["param_groups"]) != len(params):
            raise ValueError("optimizer state does not match the parameter groups")
        ids = [i for g in sd["param_groups"] for i in g["params"]]
        self.state = {}
        for i, p in zip(ids, params):
            if i in sd["state"]:
                st = sd["state"][i]
                self.state[p] = {"step": torch.as_tensor(st["step"], dtype=torch.float32).to(p.device).clone().reshape(()),
                                 "exp_avg": st["exp_avg"].to(p).clone(), "exp_avg_sq": st["exp_avg_sq"].to(p).clone()}
        for g, saved in zip(self.param_groups, sd["param_groups"]):
            g.update({k: v for k, v in saved.items() if k != "params"})


def _fused_ok(params: list[torch.Tensor]) -> bool:
    """Whether torch's fused Adam kernel takes these parameters (dense, one supported device)."""
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    ok = _get_fused_kernels_supported_devices()
    return all(p.device.type in ok and p.is_floating_point() and not p.is_sparse for p in params)
