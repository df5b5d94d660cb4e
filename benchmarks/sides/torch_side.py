"""PyTorch (only when importable): the minicnn model translated layer by layer into ``torch.nn``
modules (NCHW, weights copied), each timed on the minicnn layer's input (transposed to NCHW);
eager autograd train step with Adam (Keras's epsilon) and ``no_grad`` inference.

Per op: forward under ``no_grad``; backward = ``torch.autograd.grad`` of the output w.r.t. the
input (not for the first layer) and the weights with ``retain_graph`` (the backward alone, no forward). Flatten flattens
NCHW (C, H, W) order: the next Dense's weight rows are in another order than minicnn's, which
changes no time. Keras's 'same' padding is an explicit ``ZeroPad2d`` of the layer's own pads (asymmetric with
strides, which torch's ``padding='same'`` refuses); average pooling with 'same' padding is not
translated (that layer is reported skipped).
"""

from __future__ import annotations

import os

import numpy as np

from .. import ops as ops_mod
from ..timing import measure, measure_latency


#: minicnn activation -> torch.nn module class
_ACTS = {"tanh": "Tanh", "sigmoid": "Sigmoid", "elu": "ELU", "selu": "SELU", "softplus": "Softplus",
         "gelu": "GELU", "swish": "SiLU", "silu": "SiLU", "relu6": "ReLU6", "softsign": "Softsign"}


def _nchw(a):
    return a.transpose(0, 3, 1, 2) if a.ndim == 4 else a


class TorchSide:
    def __init__(self):
        import minicnn
        import torch

        minicnn.use_backend("numpy")  # only to compute the layers' inputs
        self.torch = torch
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        torch.set_num_threads(n)

    def info(self):
        return {"version": self.torch.__version__, "threads": self.torch.get_num_threads()}

    def _module(self, layer, dtype, linear=False):
        """(module, activation module or None) for one minicnn layer."""
        nn, torch = self.torch.nn, self.torch
        kind = type(layer).__name__
        tdt = getattr(torch, np.dtype(dtype).name)
        if kind in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D"):
            m = self._conv(layer, kind, tdt)
        elif kind == "Dense":
            k = layer.params["kernel"]
            m = nn.Linear(k.shape[0], k.shape[1], bias="bias" in layer.params, dtype=tdt)
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(np.ascontiguousarray(k.T)))
                if m.bias is not None:
                    m.bias.copy_(torch.from_numpy(layer.params["bias"]))
        elif kind == "MaxPool2D":
            if layer.padding != "valid":
                raise NotImplementedError("torch max pooling has no 'same' padding")
            m = nn.MaxPool2d(tuple(layer.pool_size), stride=tuple(layer.strides))
        elif kind == "AveragePooling2D":
            if layer.padding != "valid":
                raise NotImplementedError("torch average pooling has no Keras 'same' padding")
            m = nn.AvgPool2d(tuple(layer.pool_size), stride=tuple(layer.strides))
        elif kind == "GlobalAveragePooling2D":
            m = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        elif kind == "BatchNormalization":
            c = int(layer.input_shape[-1])
            bn = nn.BatchNorm2d if len(layer.input_shape) == 3 else nn.BatchNorm1d
            # Keras: moving = momentum * moving + (1 - momentum) * batch; torch's momentum is the other weight
            m = bn(c, eps=layer.epsilon, momentum=1.0 - layer.momentum, affine=True, dtype=tdt)
        elif kind == "Flatten":
            m = nn.Flatten()
        elif kind == "Dropout":
            m = nn.Dropout(layer.rate)
        elif kind == "ReLU" or (kind == "Activation" and getattr(layer, "activation", None) == "relu"):
            return nn.ReLU()
        elif kind == "Activation" and getattr(layer, "activation", None) in _ACTS:
            return getattr(nn, _ACTS[layer.activation])()
        elif kind == "Activation" and getattr(layer, "activation", None) == "softmax":
            return nn.Identity() if linear else nn.Softmax(dim=-1)
        elif kind == "Softmax":
            m = nn.Identity() if linear else nn.Softmax(dim=-1)
        else:
            raise NotImplementedError(f"no torch translation for {kind}")
        act = getattr(layer, "activation", None)
        if act == "relu":
            return nn.Sequential(m, nn.ReLU())
        if act == "softmax" and not linear:
            return nn.Sequential(m, nn.Softmax(dim=-1))
        if act in _ACTS:
            return nn.Sequential(m, getattr(nn, _ACTS[act])())
        if act not in (None, "linear", "softmax"):
            raise NotImplementedError(f"no torch translation for activation {act!r}")
        return m

    def _conv(self, layer, kind, tdt):
        """Conv2D / DepthwiseConv2D / SeparableConv2D with Keras's padding: 'same' as an explicit
        ZeroPad2d of the layer's own (top, bottom, left, right), which may be asymmetric with
        strides (torch's padding='same' refuses strides)."""
        nn, torch = self.torch.nn, self.torch
        cin = int(layer.input_shape[-1])
        dil = tuple(getattr(layer, "dilation_rate", (1, 1)))
        common = {"stride": tuple(layer.strides), "dilation": dil, "dtype": tdt}
        if kind == "Conv2D":
            k = layer.params["kernel"]
            conv = nn.Conv2d(cin, k.shape[3], tuple(layer.kernel_size), bias="bias" in layer.params, **common)
            w = k.transpose(3, 2, 0, 1)
        else:
            dm = int(layer.depth_multiplier)
            k = layer.params["kernel" if kind == "DepthwiseConv2D" else "depthwise_kernel"]
            conv = nn.Conv2d(cin, cin * dm, tuple(layer.kernel_size), groups=cin,
                             bias=kind == "DepthwiseConv2D" and "bias" in layer.params, **common)
            w = k.reshape(k.shape[0], k.shape[1], cin * dm, 1).transpose(2, 3, 0, 1)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            if conv.bias is not None:
                conv.bias.copy_(torch.from_numpy(layer.params["bias"]))
        mods = []
        pads = tuple(int(p) for p in (layer.pads or (0, 0, 0, 0)))
        if any(pads):
            top, bottom, left, right = pads
            mods.append(nn.ZeroPad2d((left, right, top, bottom)))
        mods.append(conv)
        if kind == "SeparableConv2D":
            pk = layer.params["pointwise_kernel"]
            pw = nn.Conv2d(pk.shape[2], pk.shape[3], 1, bias="bias" in layer.params, dtype=tdt)
            with torch.no_grad():
                pw.weight.copy_(torch.from_numpy(np.ascontiguousarray(pk.transpose(3, 2, 0, 1))))
                if pw.bias is not None:
                    pw.bias.copy_(torch.from_numpy(layer.params["bias"]))
            mods.append(pw)
        return mods[0] if len(mods) == 1 else nn.Sequential(*mods)

    def prepare(self, model):
        return None

    def ops(self, handle, model, batch, repeats):
        torch = self.torch
        cases, (y, z, fused) = ops_mod.cases(model, batch)
        res = {}
        for c in cases:
            try:
                fm = self._module(c.layer, model.dtype)
                bm = self._module(c.layer, model.dtype, linear=True) if c.from_logits else fm
            except NotImplementedError as exc:
                res[c.name] = {"skipped": str(exc)}
                continue
            fm.train(), bm.train()
            x = torch.from_numpy(np.ascontiguousarray(_nchw(c.x)))
            dy = torch.from_numpy(np.ascontiguousarray(_nchw(c.dy)))

            def fwd(fm=fm, x=x):
                with torch.no_grad():
                    return fm(x)

            xg = x.clone().requires_grad_(c.need_dx)
            out = bm(xg)
            ins = ([xg] if c.need_dx else []) + list(bm.parameters())
            if not ins:  # a first layer without weights: nothing to differentiate
                res[c.name] = {"fwd": measure(fwd, repeats["op"]), "bwd": None}
                continue
            res[c.name] = {"fwd": measure(fwd, repeats["op"]),
                           "bwd": measure(lambda out=out, ins=ins, dy=dy: torch.autograd.grad(
                               out, ins, dy, retain_graph=True), repeats["op"]),
                           "bwd_from_logits": c.from_logits}
        labels = torch.from_numpy(y.argmax(1))
        zt = torch.from_numpy(z)
        yt = torch.from_numpy(y)

        def loss_of(t):
            if fused:
                return torch.nn.functional.cross_entropy(t, labels)
            return -(yt * torch.log(t.clamp_min(1e-7))).sum(1).mean()

        def lf():
            with torch.no_grad():
                return loss_of(zt)

        def lb():
            t = zt.clone().requires_grad_()
            v = loss_of(t)
            return v, torch.autograd.grad(v, [t])

        res[ops_mod.LOSS_OP] = {"fwd": measure(lf, repeats["op"]), "bwd": measure(lb, repeats["op"]),
                                "from_logits": fused}
        return res

    def _net(self, model, for_training):
        fused = ops_mod.fused_softmax(model)
        last = len(model.layers) - 1
        mods = [self._module(l, model.dtype, linear=for_training and fused and i == last)
                for i, l in enumerate(model.layers)]
        return self.torch.nn.Sequential(*mods), fused

    def train_step(self, handle, model, batch, repeats):
        torch = self.torch
        net, fused = self._net(model, True)
        net.train()
        x, y = ops_mod.batch_data(model, batch)
        x = torch.from_numpy(np.ascontiguousarray(_nchw(x)))
        labels = torch.from_numpy(y.argmax(1))
        yt = torch.from_numpy(y)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)

        def step():
            opt.zero_grad(set_to_none=True)
            out = net(x)
            loss = (torch.nn.functional.cross_entropy(out, labels) if fused
                    else -(yt * torch.log(out.clamp_min(1e-7))).sum(1).mean())
            loss.backward()
            opt.step()

        return measure(step, repeats["step"], warmup=3)

    def infer(self, handle, model, batch, repeats):
        torch = self.torch
        net, _ = self._net(model, False)
        net.eval()
        x = torch.from_numpy(np.ascontiguousarray(_nchw(ops_mod.batch_data(model, batch, seed=2)[0])))

        def run():
            with torch.no_grad():
                return net(x)

        return measure(run, repeats["infer"])

    def latency(self, handle, model, repeats):
        """One image (NCHW) through the eager module under ``no_grad``."""
        torch = self.torch
        net, _ = self._net(model, False)
        net.eval()
        x = torch.from_numpy(np.ascontiguousarray(_nchw(ops_mod.batch_data(model, 1, seed=3)[0])))

        def run():
            with torch.no_grad():
                return net(x)

        return {"no_grad": measure_latency(run, repeats["latency"])}
