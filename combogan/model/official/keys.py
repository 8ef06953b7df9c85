"""The official files' state-dict keys mapped to combogan's, and the architecture read from
their tensors' shapes.

Official CycleGAN (junyanz/pytorch-CycleGAN-and-pix2pix), `<epoch>_net_G_A.pth` etc.:
    G_A (A -> B) = ResnetGenerator 'model.i':  i < 10 (c7s1, two downsamplings) -> enc_A 'net.i';
                   residual blocks 10 .. 9+n: the first n//2 -> enc_A, the rest -> dec_B
                   ('conv_block.*' -> 'block.*'); the layers after them -> dec_B 'net.(i-10-n//2)'
    G_B (B -> A)   the same into enc_B and dec_A
    D_A            judges domain B -> B's discriminator ('model.i' -> 'net.i'); D_B -> A's
    InstanceNorm running statistics (PyTorch < 0.4 checkpoints) are dropped, as the official
    loader does.
Official ComboGAN (AAnoosheh/ComboGAN), `<epoch>_net_G<i>.pth`:
    G<i>, i < N: encoder of domain i; G<N+i>: its decoder ('model.*' -> 'net.*',
    'conv_block.*' -> 'block.*'), PReLU activations and 4x4 transposed convolutions.
    D<i>: domain i's two-view critic, its keys unchanged ('model_gray.*', 'model_rgb.*').

Each function takes a state dict and the file it came from (for messages) and returns
(architecture fields, {our key: (their key, tensor)}); `fit` checks a mapping against a module.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from ...errors import UserError

Mapping = dict[str, tuple[str, torch.Tensor]]
State = dict[str, torch.Tensor]


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(map(str, t.shape)) + ")"


def fit(module: nn.Module, mapped: Mapping, path: Path, what: str) -> State:
    """Check `mapped` (our key -> (their key, tensor)) against `module`; one clear error if not."""
    want = module.state_dict()
    for ours, (theirs, tensor) in mapped.items():
        if ours not in want:
            raise UserError(f"{path}: key '{theirs}' {_shape(tensor)} fits no supported {what}")
        if want[ours].shape != tensor.shape:
            raise UserError(f"{path}: key '{theirs}' has shape {_shape(tensor)}; the {what} it belongs to expects {_shape(want[ours])}")
    missing = [k for k in want if k not in mapped and not k.endswith("num_batches_tracked")]
    if missing:
        raise UserError(f"{path}: the {what} lacks weights for '{missing[0]}' (a truncated or different network?)")
    return {ours: tensor for ours, (_, tensor) in mapped.items()}


def _index(key: str, path: Path) -> tuple[int, str]:
    m = re.fullmatch(r"model\.(\d+)\.(.+)", key)
    if m is None:
        raise UserError(f"{path}: key '{key}' fits no supported architecture (expected 'model.<i>.…' keys)")
    return int(m.group(1)), m.group(2)


def _norm_and_stats(state: State, first_norm: str) -> tuple[str, State]:
    """'batch' if the first norm layer has affine weights, else 'instance' (then drop the running
    statistics that PyTorch < 0.4 saved for InstanceNorm, as the official loader does)."""
    if f"{first_norm}.weight" in state:
        return "batch", state
    return "instance", {k: v for k, v in state.items() if not re.search(r"\.(running_mean|running_var|num_batches_tracked)$", k)}


def _generator_arch(state: State, path: Path, blocks: list[int], up_key: str, activation: str) -> dict:
    if "model.1.weight" not in state:
        raise UserError(f"{path}: no 'model.1.weight' (the first 7x7 convolution): not a ResNet generator")
    dropout = any(re.search(r"conv_block\.6\.weight$", k) for k in state)
    kernel = state[up_key].shape[-1] if up_key in state else 3
    # The official generators always have two stride-2 stages, whatever combogan's default.
    return {"ngf": int(state["model.1.weight"].shape[0]), "n_blocks": len(blocks), "n_downsampling": 2, "dropout": 0.5 if dropout else 0.0,
            "upsample": "transpose4" if kernel == 4 else "transpose", "activation": activation, "output": "image"}


def cyclegan_generator(state: State, path: Path) -> tuple[dict, Mapping, Mapping]:
    """(architecture fields, encoder part, decoder part) of a ResnetGenerator's state dict."""
    norm, state = _norm_and_stats(state, "model.2")
    blocks = sorted({_index(k, path)[0] for k in state if ".conv_block." in k})
    n = len(blocks)
    if blocks != list(range(10, 10 + n)):
        raise UserError(f"{path}: residual blocks at model.{blocks[:3]}…, expected model.10 onwards: not a ResnetGenerator")
    arch = {**_generator_arch(state, path, blocks, f"model.{10 + n}.weight", "relu"), "norm": norm}
    enc: Mapping = {}
    dec: Mapping = {}
    for key, tensor in state.items():
        i, rest = _index(key, path)
        rest = rest.replace("conv_block.", "block.", 1)
        if i < 10:
            enc[f"net.{i}.{rest}"] = (key, tensor)
        elif i < 10 + n:
            j = i - 10
            (enc if j < n // 2 else dec)[f"net.{10 + j if j < n // 2 else j - n // 2}.{rest}"] = (key, tensor)
        else:
            dec[f"net.{i - 10 - n // 2}.{rest}"] = (key, tensor)
    return arch, enc, dec


def cyclegan_critic(state: State, path: Path) -> tuple[dict, Mapping]:
    """(architecture fields, mapping) of an NLayerDiscriminator's state dict."""
    norm, state = _norm_and_stats(state, "model.3")
    convs = sorted({_index(k, path)[0] for k in state if k.endswith(".weight") and state[k].dim() == 4})
    if not convs or "model.0.weight" not in state:
        raise UserError(f"{path}: no 'model.0.weight': not a PatchGAN discriminator")
    arch = {"ndf": int(state["model.0.weight"].shape[0]), "n_layers_d": len(convs) - 2, "norm": norm}
    return arch, {f"net.{_index(k, path)[0]}.{_index(k, path)[1]}": (k, v) for k, v in state.items()}


def combogan_half(state: State, path: Path, encoder: bool) -> tuple[dict, Mapping]:
    """(architecture fields, mapping) of an official ComboGAN encoder or decoder."""
    norm, state = _norm_and_stats(state, "model.2" if encoder else "model.0.conv_block.2")
    mapped = {}
    for key, tensor in state.items():
        i, rest = _index(key, path)
        mapped[f"net.{i}.{rest.replace('conv_block.', 'block.', 1)}"] = (key, tensor)
    blocks = sorted({_index(k, path)[0] for k in state if ".conv_block." in k})
    act = "prelu" if any(v.shape == (1,) and k.endswith(".weight") for k, v in state.items()) else "relu"
    if encoder:
        return {**_generator_arch(state, path, blocks, "", act), "norm": norm}, mapped
    up = f"model.{len(blocks)}.weight"
    if up not in state:
        raise UserError(f"{path}: no '{up}' (the first upsampling) after {len(blocks)} residual blocks: not a ComboGAN decoder")
    return {"n_blocks": len(blocks), "n_downsampling": 2, "upsample": "transpose4" if state[up].shape[-1] == 4 else "transpose",
            "norm": norm, "activation": act, "ngf": int(state[up].shape[1]) // 2}, mapped


def combogan_critic(state: State, path: Path) -> tuple[dict, Mapping]:
    """(architecture fields, mapping) of an official ComboGAN two-view critic."""
    norm, state = _norm_and_stats(state, "model_rgb.1.1")
    if "model_rgb.0.0.weight" not in state or "model_gray.0.0.weight" not in state:
        raise UserError(f"{path}: no 'model_rgb.0.0.weight' / 'model_gray.0.0.weight': not a ComboGAN critic")
    stages = {int(k.split(".")[1]) for k in state if k.startswith(("model_rgb.", "model_gray."))}
    arch = {"ndf": int(state["model_rgb.0.0.weight"].shape[0]), "n_layers_d": max(stages), "norm": norm}
    return arch, {k: (k, v) for k, v in state.items()}
