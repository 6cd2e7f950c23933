"""Layer-wise relevance propagation (LRP), deep Taylor decomposition (DTD), CLRP and SGLRP.

Relevance starts at the output (by default the one-hot of the explained class, as Brama &
Grinshpoun seed it) and is pushed back layer by layer to the pixels. Each layer type has its own
backward rule:

* weighted layers (``Conv1d/2d``, ``Linear``, ``BatchNorm``), with ``a`` the layer's input,
  ``w`` its weights and ``z_j = sum_i a_i w_ij``:

  - ``"epsilon"``: ``R_i = sum_j a_i w_ij / (z_j + eps sign z_j) R_j``;
  - ``"zplus"``  (DTD's z⁺ rule): only positive contributions, ``R_i = sum_j (a_i w_ij)^+ / sum_i (a_i w_ij)^+ R_j``;
  - ``"alpha_beta"`` (``alpha`` - ``beta`` = 1; α1β0 is ``zplus``): positive and negative
    contributions normalised separately, weighted ``alpha`` and ``-beta``;
  - ``"zbox"`` (DTD's z^B rule, for the layer that reads the image): with the lowest and
    highest possible inputs ``l`` and ``h``, ``R_i = sum_j (a_i w_ij - l_i w_ij^+ - h_i w_ij^-) / z^B_j R_j``.
    The model normalises inside itself, so the box is the pixel range [0, 1] mapped through that
    normalisation: ``l = (0 - mean) / std``, ``h = (1 - mean) / std`` per channel;

* element-wise activations (ReLU, ReLU6, LeakyReLU, Hardtanh): relevance passes unchanged;
* routing operations (max-pooling: to the maximum; flatten / view / reshape / padding / cat /
  dropout in eval mode): relevance follows the operation's Jacobian, which only moves it;
* bias-free linear operations (average pooling, means, residual additions): proportional to each
  input's share of the sum (the epsilon rule without parameters).

A BatchNorm that follows a convolution is merged into it first (one affine layer, so a rule sees
the layer the network actually computes); one that does not is treated as a per-channel affine
layer with the same rules. By default biases are left out of every rule's denominator (DTD treats
them as zero, and every rule then conserves relevance up to its stabiliser); ``bias=True`` puts
them in, and they absorb their share.

``rule="dtd"`` (the default) is what the paper uses: z⁺ everywhere, z^B at the input layer. Any
layer's rule can be set by name (``layer_rules={"features.0": "epsilon"}``).

Variants, selected with ``variant``:

* ``"lrp"``: relevance of one class (seed ``"one_hot"`` = 1, or ``"logit"`` = the class's logit);
* ``"clrp"`` (Gu et al.): ``R_t - R_o * sum(R_t) / sum(R_o)``, where ``R_t`` starts from the target
  logit and ``R_o`` from the target logit spread evenly over the other classes;
* ``"sglrp"`` (Iwana et al.): one pass from the seed ``y_t (1 - y_t)`` at the target and
  ``-y_t y_n`` at every other class ``n`` (``y`` the softmax), i.e. the softmax's gradient.

Why its own implementation: zennit implements rules as gradient hooks, which makes every
network a special case of canonizers and composites, and captum's LRP does not take DTD's box
rule or residual additions. Here the network is traced once (``torch.fx``) into its graph of
layers and operations, and the relevance walks that graph backwards with one explicit rule per
node: residual additions, merged BatchNorms, padding convolutions of any class and CLRP/SGLRP's
several seeds are ordinary nodes and seeds, and a layer or operation that has no rule fails by
name before any relevance is computed. zennit serves as the test oracle for the rules.

Everything is batched: one forward pass stores the activations, and each node's rule is one
vectorised step (the transposed layer applied through autograd) for the whole batch.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from .base import Explanation, Interpreter

__all__ = ["LRP", "RULES", "VARIANTS", "LRPGraph", "LRPError"]

RULES = ("epsilon", "zplus", "alpha_beta", "zbox")
PRESETS = {"dtd": ("zplus", "zbox"), "epsilon": ("epsilon", "epsilon"), "zplus": ("zplus", "zplus"),
           "alpha_beta": ("alpha_beta", "alpha_beta")}
VARIANTS = ("lrp", "clrp", "sglrp")
SEEDS = ("one_hot", "logit")
STABILIZER = 1e-6

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d)
_PASS_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardtanh, nn.Identity, nn.Dropout, nn.Dropout2d)
_ROUTE_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.Flatten, nn.Unflatten, nn.ZeroPad2d, nn.ConstantPad2d)
_PROPORTIONAL_MODULES = (nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)
_PASS_FUNCTIONS = {F.relu, torch.relu, F.relu6, F.hardtanh, F.leaky_relu, F.dropout}
_ROUTE_FUNCTIONS = {torch.flatten, torch.reshape, torch.cat, torch.squeeze, torch.unsqueeze, F.pad, F.max_pool2d,
                    operator.getitem}
_ROUTE_METHODS = {"view", "reshape", "flatten", "squeeze", "unsqueeze", "contiguous", "permute", "transpose"}
_PROPORTIONAL_FUNCTIONS = {operator.add, operator.iadd, torch.add, F.avg_pool2d, F.adaptive_avg_pool2d, torch.mean,
                           torch.sum}
_PROPORTIONAL_METHODS = {"mean", "sum", "add"}
_SHAPE_FUNCTIONS = {getattr, len}  # x.size(), x.shape[...]: no relevance flows through them
_SHAPE_METHODS = {"size", "dim"}


class LRPError(ValueError):
    """A model, layer or rule that LRP cannot take."""


class _Tracer(fx.Tracer):
    """Keeps every convolution (also the 'same padding' subclasses that compute their padding from
    the input's size) and every torch.nn layer as one node."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, nn.Sequential):
            return False
        return isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)) or super().is_leaf_module(m, qualname)


def _stabilize(z: torch.Tensor, eps: float) -> torch.Tensor:
    """``z + eps * sign(z)``, with sign(0) = +1, so the division is safe and keeps its sign."""
    return z + eps * (z >= 0).to(z) * 2 - eps


@dataclass
class _Weighted:
    """One affine layer as the rules see it: ``f(x, weight, bias)`` plus its parameters."""

    name: str
    module: nn.Module  # the module whose forward is replayed with other parameters
    weight: torch.Tensor
    bias: torch.Tensor | None
    kind: str  # "conv" | "linear" | "affine" (a BatchNorm on its own)

    # the rules' positive and negative parts, computed once on first use (VGG's linear layers hold 100 M weights)
    @cached_property
    def pos(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.weight.clamp(min=0), None if self.bias is None else self.bias.clamp(min=0)

    @cached_property
    def neg(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.weight.clamp(max=0), None if self.bias is None else self.bias.clamp(max=0)

    def apply(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.kind == "affine":
            shape = (1, -1) + (1,) * (x.dim() - 2)
            out = x * weight.view(shape)
            return out if bias is None else out + bias.view(shape)
        params = {"weight": weight}
        if getattr(self.module, "bias", None) is not None:  # the module adds a bias: replace it
            params["bias"] = bias if bias is not None else torch.zeros_like(self.module.bias)
            return functional_call(self.module, params, (x,))
        out = functional_call(self.module, params, (x,))
        if bias is None:
            return out
        return out + bias.view((1, -1) + (1,) * (out.dim() - 2))


def _merge_batchnorm(layer: nn.Module, bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``bn(layer(x))`` as one layer (eval-mode statistics)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1 / torch.sqrt(bn.running_var + bn.eps)
    shift = (bn.bias if bn.affine else 0) - bn.running_mean * scale
    w = layer.weight * scale.view(-1, *([1] * (layer.weight.dim() - 1)))
    b = shift if layer.bias is None else layer.bias * scale + shift
    return w.detach(), b.detach()


def _batchnorm_affine(bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1 / torch.sqrt(bn.running_var + bn.eps)
    shift = (bn.bias if bn.affine else 0) - bn.running_mean * scale
    return scale.detach(), shift.detach()


class LRPGraph:
    """A network's traced graph with one LRP role per node: built once per model."""

    def __init__(self, net: nn.Module, model_name: str = "model"):
        self.net = net
        try:
            graph = _Tracer().trace(net)
        except Exception as exc:  # data-dependent control flow, unsupported Python
            raise LRPError(f"LRP cannot trace {model_name} into a graph of layers ({type(exc).__name__}: {exc}); "
                           f"it needs a forward pass without data-dependent control flow") from exc
        self.graph = graph
        self.modules = dict(net.named_modules())
        self.nodes = list(graph.nodes)
        self.placeholder = next(n for n in self.nodes if n.op == "placeholder")
        self.output = next(n for n in self.nodes if n.op == "output")
        self.roles: dict[fx.Node, str] = {}
        self.weighted: dict[fx.Node, _Weighted] = {}
        self.skipped: set[fx.Node] = set()  # convolutions merged into the BatchNorm after them
        for node in self.nodes:
            self.roles[node] = self._role(node, model_name)
        self._merge_batchnorms()
        self.input_layers = {node for node in self.weighted if self.weighted_input(node) is self.placeholder}

    # -- structure ---------------------------------------------------------------------------
    def _role(self, node: fx.Node, model_name: str) -> str:
        if node.op in ("placeholder", "output", "get_attr"):
            return node.op
        if node.op == "call_module":
            m = self.modules[node.target]
            if isinstance(m, _WEIGHTED):
                return "weighted"
            if isinstance(m, _PASS_MODULES):
                return "pass"
            if isinstance(m, _ROUTE_MODULES):
                return "route"
            if isinstance(m, _PROPORTIONAL_MODULES):
                return "proportional"
            return "unsupported"
        if node.op == "call_function":
            t = node.target
            if t in _PASS_FUNCTIONS:
                return "pass"
            if t in _ROUTE_FUNCTIONS:
                return "route"
            if t in _PROPORTIONAL_FUNCTIONS:
                return "proportional"
            if t in _SHAPE_FUNCTIONS:
                return "shape"
            return "unsupported"
        if node.op == "call_method":
            if node.target in _ROUTE_METHODS:
                return "route"
            if node.target in _PROPORTIONAL_METHODS:
                return "proportional"
            if node.target in _SHAPE_METHODS:
                return "shape"
            if node.target in ("relu", "relu_"):
                return "pass"
        return "unsupported"

    def describe(self, node: fx.Node) -> str:
        if node.op == "call_module":
            return f"layer {node.target!r} ({type(self.modules[node.target]).__name__})"
        name = getattr(node.target, "__name__", str(node.target))
        return f"operation {name!r} ({node.op}, node {node.name})"

    def _merge_batchnorms(self) -> None:
        for node in self.nodes:
            if self.roles[node] != "weighted":
                continue
            m = self.modules[node.target]
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                src = node.args[0]
                srcm = self.modules.get(src.target) if isinstance(src, fx.Node) and src.op == "call_module" else None
                if isinstance(srcm, (nn.Conv1d, nn.Conv2d, nn.Linear)) and len(src.users) == 1:
                    w, b = _merge_batchnorm(srcm, m)
                    kind = "linear" if isinstance(srcm, nn.Linear) else "conv"
                    self.weighted[node] = _Weighted(f"{src.target}+{node.target}", srcm, w, b, kind)
                    self.weighted.pop(src, None)
                    self.skipped.add(src)
                else:
                    scale, shift = _batchnorm_affine(m)
                    self.weighted[node] = _Weighted(node.target, m, scale, shift, "affine")
            else:
                kind = "linear" if isinstance(m, nn.Linear) else "conv"
                b = m.bias.detach() if m.bias is not None else None
                self.weighted[node] = _Weighted(node.target, m, m.weight.detach(), b, kind)

    def weighted_input(self, node: fx.Node) -> fx.Node:
        """The node whose output a weighted layer reads (past a merged convolution)."""
        src = node.args[0]
        if src in self.skipped:
            return src.args[0]
        return src

    def layer_names(self) -> list[str]:
        """Names of the weighted layers (a merged pair is named by either module)."""
        return [w.name for w in self.weighted.values()]

    def check_supported(self, model_name: str) -> None:
        """Every node that relevance can reach must have a rule."""
        reach = {self.output}
        for node in reversed(self.nodes):
            if node not in reach:
                continue
            if node is not self.output and self.roles[node] == "unsupported":
                raise LRPError(
                    f"LRP cannot handle {model_name}: {self.describe(node)} has no relevance rule here. Supported: "
                    f"convolutions, linear layers, BatchNorm (merged), ReLU/ReLU6/LeakyReLU/Hardtanh, max/average "
                    f"pooling, flatten/reshape/cat/pad, residual additions, dropout (eval). Smooth activations "
                    f"(SiLU, GELU, sigmoid gates) and multiplicative gates are not piecewise linear, so DTD does "
                    f"not apply to them")
            if self.roles[node] == "shape":
                continue
            for arg in node.all_input_nodes:
                reach.add(arg)


class LRP(Interpreter):
    """LRP / DTD / CLRP / SGLRP on a :class:`~advxai.models.Classifier` (see the module docstring).

    ``maps`` is the relevance summed over colour channels [B, 1, H, W] (signed; the heat-and-blur
    defense takes its absolute value), ``raw`` the per-channel relevance [B, C, H, W].
    """

    name = "lrp"
    differentiable = False

    def __init__(self, model, rule: str = "dtd", input_rule: str | None = None, variant: str = "lrp",
                 seed: str = "one_hot", epsilon: float = 1e-6, alpha: float = 1.0, beta: float = 0.0,
                 bias: bool = False, layer_rules: dict[str, str] | None = None, low: float = 0.0, high: float = 1.0):
        super().__init__(model)
        if rule not in PRESETS and rule not in RULES:
            raise LRPError(f"unknown LRP rule {rule!r}; valid: {', '.join(sorted(set(PRESETS) | set(RULES)))}")
        if rule == "zbox":
            raise LRPError("'zbox' needs the input's bounds and applies only to the layer that reads the image; "
                           "use rule='dtd' (z+ with zbox at the input) or input_rule='zbox'")
        hidden, first = PRESETS.get(rule, (rule, rule))
        if input_rule is not None:
            if input_rule not in RULES:
                raise LRPError(f"unknown input rule {input_rule!r}; valid: {', '.join(RULES)}")
            first = input_rule
        if variant not in VARIANTS:
            raise LRPError(f"unknown LRP variant {variant!r}; valid: {', '.join(VARIANTS)}")
        if seed not in SEEDS:
            raise LRPError(f"unknown seed {seed!r}; valid: {', '.join(SEEDS)}")
        if not (isinstance(epsilon, (int, float)) and epsilon >= 0):
            raise LRPError(f"epsilon must be >= 0, got {epsilon!r}")
        if alpha < 0 or beta < 0 or abs(alpha - beta - 1) > 1e-9:
            raise LRPError(f"alpha_beta needs alpha, beta >= 0 and alpha - beta = 1, got alpha={alpha}, beta={beta}")
        if not low < high:
            raise LRPError(f"the input box needs low < high, got [{low}, {high}]")
        self.rule, self.hidden_rule, self.input_rule = rule, hidden, first
        self.variant, self.seed = variant, seed
        self.epsilon, self.alpha, self.beta, self.bias = float(epsilon), float(alpha), float(beta), bool(bias)
        self.low, self.high = float(low), float(high)
        model_name = getattr(getattr(model, "info", None), "name", type(model).__name__)
        net = model.net if hasattr(model, "net") and hasattr(model, "normalize") else model
        self._normalize = model.normalize if net is not model else (lambda x: x)
        self._graph = LRPGraph(net, model_name)
        self._graph.check_supported(model_name)
        self.layer_rules = self._resolve_layer_rules(dict(layer_rules or {}))

    # -- rules per layer -------------------------------------------------------------------------
    def _resolve_layer_rules(self, overrides: dict[str, str]) -> dict[str, str]:
        g = self._graph
        by_name: dict[str, fx.Node] = {}
        for node, w in g.weighted.items():
            by_name[w.name] = node
            for part in w.name.split("+"):
                by_name[part] = node
        other_layers = {n.target: n for n in g.nodes if n.op == "call_module" and n not in g.weighted}
        rules = {}
        for name, rule in overrides.items():
            if rule not in RULES:
                raise LRPError(f"unknown rule {rule!r} for layer {name!r}; valid: {', '.join(RULES)}")
            if name not in by_name:
                if name in other_layers:
                    raise LRPError(f"{g.describe(other_layers[name])} has no weights and takes no rule (activations "
                                   f"pass relevance, pooling and reshaping route it); rules apply to: "
                                   f"{', '.join(g.layer_names())}")
                raise LRPError(f"no layer named {name!r}; layers with rules: {', '.join(g.layer_names())}")
            node = by_name[name]
            if rule == "zbox" and node not in g.input_layers:
                raise LRPError(f"'zbox' needs the input's bounds: it applies only to a layer reading the image "
                               f"({', '.join(g.weighted[n].name for n in g.input_layers)}), not {name!r}")
            rules[g.weighted[node].name] = rule
        for node, w in g.weighted.items():
            if w.name not in rules:
                rules[w.name] = self.input_rule if node in g.input_layers else self.hidden_rule
                if rules[w.name] == "zbox" and node not in g.input_layers:
                    raise LRPError(f"'zbox' applies only to a layer reading the image, not {w.name!r}")
        return rules

    def _box(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The pixel box [low, high] mapped through the model's normalisation, shaped like ``x``."""
        c = x.shape[1]
        low = self._normalize(torch.full((1, c, 1, 1), self.low, device=x.device, dtype=x.dtype))
        high = self._normalize(torch.full((1, c, 1, 1), self.high, device=x.device, dtype=x.dtype))
        return low.expand_as(x), high.expand_as(x)

    def _weighted_rule(self, layer: _Weighted, rule: str, a: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
        w = layer.weight
        b = layer.bias if self.bias else None
        (wp, bp), (wn, bn) = layer.pos, layer.neg
        if not self.bias:
            bp = bn = None

        def contributions(inputs_and_params, combine):
            """``combine`` maps the layer outputs of each (input, weight, bias) to the denominator(s) and the
            relevance is ``sum_k coef_k * input_k * J_k^T (R / denominator_k)`` through autograd."""
            # a term whose input is zero everywhere and that has no bias (x^- after a ReLU) adds nothing:
            # its layer pass is skipped
            active = [bool(inp.any()) or bs is not None for inp, _, bs, _ in inputs_and_params]
            active[0] = active[0] or not any(active)
            with torch.enable_grad():
                leaves, outs = [], []
                for (inp, wt, bs, _), on in zip(inputs_and_params, active):
                    leaf = inp.detach().requires_grad_(True) if on else None
                    leaves.append(leaf)
                    outs.append(layer.apply(leaf, wt, bs) if on else None)
                ref = next(o for o in outs if o is not None)
                scales = combine([o.detach() if o is not None else torch.zeros_like(ref) for o in outs])
                idx = [k for k, on in enumerate(active) if on]
                grads = torch.autograd.grad([outs[k] for k in idx], [leaves[k] for k in idx],
                                            [relevance / scales[k] for k in idx])
            return sum(inputs_and_params[k][3] * leaves[k].detach() * g for k, g in zip(idx, grads))

        if rule == "epsilon":
            return contributions([(a, w, b, 1.0)], lambda o: [_stabilize(o[0], self.epsilon)])
        if rule in ("zplus", "alpha_beta"):
            ap, an = a.clamp(min=0), a.clamp(max=0)
            if rule == "zplus" or self.beta == 0:
                pos = [(ap, wp, bp, 1.0), (an, wn, None, 1.0)]
                return contributions(pos, lambda o: [_stabilize(o[0] + o[1], STABILIZER)] * 2) * (
                    self.alpha if rule == "alpha_beta" else 1.0)
            terms = [(ap, wp, bp, self.alpha), (an, wn, None, self.alpha), (ap, wn, bn, -self.beta),
                     (an, wp, None, -self.beta)]
            return contributions(terms, lambda o: [_stabilize(o[0] + o[1], STABILIZER)] * 2
                                 + [_stabilize(o[2] + o[3], STABILIZER)] * 2)
        if rule == "zbox":
            low, high = self._box(a)
            terms = [(a, w, b, 1.0), (low, wp, bp, -1.0), (high, wn, bn, -1.0)]
            return contributions(terms, lambda o: [_stabilize(o[0] - o[1] - o[2], STABILIZER)] * 3)
        raise LRPError(f"unknown rule {rule!r}")

    # -- the pass ------------------------------------------------------------------------------------
    def _forward(self, x: torch.Tensor) -> dict[fx.Node, Any]:
        """Every node's output for the normalised batch (one forward pass, no graph)."""
        g = self._graph
        env: dict[fx.Node, Any] = {}

        def load(a):
            return fx.node.map_arg(a, lambda n: env[n])

        with torch.no_grad():
            for node in g.nodes:
                if node.op == "placeholder":
                    env[node] = self._normalize(x)
                elif node.op == "get_attr":
                    obj = g.net
                    for part in node.target.split("."):
                        obj = getattr(obj, part)
                    env[node] = obj
                elif node.op == "call_module":
                    env[node] = g.modules[node.target](*load(node.args), **load(node.kwargs))
                elif node.op == "call_function":
                    env[node] = node.target(*load(node.args), **load(node.kwargs))
                elif node.op == "call_method":
                    self_obj, *rest = load(node.args)
                    env[node] = getattr(self_obj, node.target)(*rest, **load(node.kwargs))
                elif node.op == "output":
                    env[node] = load(node.args[0])
        return env

    def _replay(self, node: fx.Node, env: dict, leaves: dict[fx.Node, torch.Tensor]):
        g = self._graph

        def load(a):
            return fx.node.map_arg(a, lambda n: leaves.get(n, env[n]))

        if node.op == "call_module":
            return g.modules[node.target](*load(node.args), **load(node.kwargs))
        if node.op == "call_function":
            return node.target(*load(node.args), **load(node.kwargs))
        self_obj, *rest = load(node.args)
        return getattr(self_obj, node.target)(*rest, **load(node.kwargs))

    def propagate(self, env: dict[fx.Node, Any], seed: torch.Tensor) -> torch.Tensor:
        """Relevance at the (normalised) input for the output relevance ``seed`` [B, K]."""
        g = self._graph
        rel: dict[fx.Node, torch.Tensor] = {g.output.args[0]: seed}

        def give(node: fx.Node, r: torch.Tensor) -> None:
            rel[node] = rel[node] + r if node in rel else r

        for node in reversed(g.nodes):
            if node not in rel or node.op in ("placeholder", "output"):
                continue
            r = rel.pop(node)
            role = g.roles[node]
            if node in g.weighted:
                src = g.weighted_input(node)
                layer = g.weighted[node]
                give(src, self._weighted_rule(layer, self.layer_rules[layer.name], env[src], r))
            elif role == "pass":
                give(node.all_input_nodes[0], r)
            elif role in ("route", "proportional"):
                tensors = [n for n in node.all_input_nodes if isinstance(env[n], torch.Tensor)]
                leaves = {n: env[n].detach().requires_grad_(True) for n in tensors}
                with torch.enable_grad():
                    out = self._replay(node, env, leaves)
                    # routing moves relevance along the Jacobian; proportional ops share it by contribution
                    upstream = r if role == "route" else r / _stabilize(out.detach(), STABILIZER)
                    grads = torch.autograd.grad(out, list(leaves.values()), upstream, allow_unused=True)
                for n, gr in zip(tensors, grads):
                    if gr is not None:
                        give(n, gr if role == "route" else env[n] * gr)
            else:  # check_supported rules this out; a safety net for graphs edited afterwards
                raise LRPError(f"no relevance rule for {g.describe(node)}")
        return rel.get(g.placeholder, torch.zeros_like(env[g.placeholder]))

    def seeds(self, logits: torch.Tensor, target: torch.Tensor) -> list[torch.Tensor]:
        """The output relevances the variant propagates (one for LRP and SGLRP, two for CLRP)."""
        k = logits.shape[1]
        onehot = F.one_hot(target, k).to(logits)
        z_t = logits.gather(1, target[:, None])
        if self.variant == "lrp":
            return [onehot * (z_t if self.seed == "logit" else 1.0)]
        if self.variant == "clrp":
            return [onehot * z_t, (1 - onehot) * z_t / (k - 1)]
        p = logits.softmax(1)
        p_t = p.gather(1, target[:, None])
        return [onehot * p_t * (1 - p_t) - (1 - onehot) * p_t * p]

    def relevance(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(relevance [B, C, H, W], logits)`` for the variant."""
        env = self._forward(x)
        logits = env[self._graph.output]
        if isinstance(logits, (tuple, list)):
            raise LRPError("LRP needs a model returning one logits tensor")
        parts = [self.propagate(env, s) for s in self.seeds(logits, target)]
        if self.variant == "clrp":
            r_t, r_o = parts
            ratio = r_t.flatten(1).sum(1) / _stabilize(r_o.flatten(1).sum(1), STABILIZER)
            return (r_t - r_o * ratio.view(-1, 1, 1, 1)).detach(), logits
        return parts[0].detach(), logits

    def attribute(self, x: torch.Tensor, target: torch.Tensor, create_graph: bool) -> Explanation:
        rel, logits = self.relevance(x.detach(), target)
        maps = rel.sum(1, keepdim=True)
        return Explanation(maps=maps, raw=rel, target=target, logits=logits.detach(),
                           extras={"variant": self.variant, "rules": dict(self.layer_rules)})
