#!/usr/bin/env python3
"""Converts a Hugging Face Trainer checkpoint's Adam state to tda-lab's optimizer_state.safetensors.

A PEFT run saved by the HF Trainer holds, in each checkpoint-*/ folder, the adapter
(adapter_model.safetensors) and the optimizer's state_dict pickled by torch (optimizer.pt).
The state_dict keys parameters by their position in the optimizer's parameter groups, not
by name, so this script pairs them with the adapter's tensors in the order the Trainer gave
them to the optimizer: the trainable parameters in model.named_parameters() order, which for
a PEFT LoRA model is layer by layer, q, k, v, o, gate, up, down, and lora_A before lora_B.
Give --param-order (a file with one adapter key per line) when the run used another order.
Every moment must have its adapter tensor's shape, which catches most wrong pairings.

Written: <checkpoint>/optimizer_state.safetensors with <key>.exp_avg and <key>.exp_avg_sq
(F32, the adapter's layout) and metadata format, step, beta1, beta2, eps, learning_rate
(see src/model/optimizerState.ts). The learning rate is the first parameter group's
current one (the HF scheduler has already stepped, so it is the next step's rate); pass
--learning-rate to record another, e.g. the mean rate of the epoch that ended here.

Needs torch (Debian: apt-get install python3-torch). Usage:
  python3 scripts/convert_optimizer_state.py runs/lora/checkpoint-500 [--optimizer FILE]
      [--param-order FILE] [--learning-rate LR]
"""
import argparse
import json
import os
import re
import struct
import sys

FORMAT = "tda-lab.optimizer_state"
OUT_FILE = "optimizer_state.safetensors"
ADAPTER_FILE = "adapter_model.safetensors"
MODULE_ORDER = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
KEY_RE = re.compile(r"^base_model\.model\.model\.layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_(A|B)(?:\.default)?\.weight$")


class ConvertError(Exception):
    """A one-line message naming the file and the field."""


def fail(file, field, message):
    raise ConvertError(f"{file}: '{field}': {message}" if field else f"{file}: {message}")


def read_safetensors_header(file):
    """The tensor entries of a safetensors file's JSON header (no tensor data is read)."""
    try:
        with open(file, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n).decode("utf-8"))
    except FileNotFoundError:
        fail(file, None, "adapter weights not found")
    except (struct.error, ValueError) as e:
        fail(file, None, f"not a safetensors file ({e})")
    header.pop("__metadata__", None)
    return header


def model_order(keys, file):
    """Adapter keys in named_parameters() order of a PEFT LLaMA-family model."""

    def rank(key):
        m = KEY_RE.match(key)
        if not m or m.group(2) not in MODULE_ORDER:
            fail(file, key, "not a LoRA factor of a LLaMA-family linear layer; give --param-order")
        return (int(m.group(1)), MODULE_ORDER.index(m.group(2)), m.group(3))

    return sorted(keys, key=rank)


def read_param_order(file, adapter_keys, adapter_file):
    with open(file, encoding="utf-8") as f:
        keys = [line.strip() for line in f if line.strip()]
    for k in keys:
        if k not in adapter_keys:
            fail(file, k, f"is not a tensor of {adapter_file}")
    missing = sorted(set(adapter_keys) - set(keys))
    if missing:
        fail(file, missing[0], "adapter tensor missing from the order")
    if len(set(keys)) != len(keys):
        fail(file, None, "lists a key twice")
    return keys


def scalar(x):
    return float(x.item()) if hasattr(x, "item") else float(x)


def write_safetensors(file, tensors, metadata):
    """tensors: name -> (shape, float32 bytes). Header padded to 8 bytes; written atomically."""
    header = {"__metadata__": metadata}
    offset = 0
    for name in sorted(tensors):
        shape, data = tensors[name]
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    tmp = f"{file}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name in sorted(tensors):
            f.write(tensors[name][1])
    os.replace(tmp, file)


def convert(checkpoint, optimizer_file=None, param_order=None, learning_rate=None):
    import torch

    adapter_file = os.path.join(checkpoint, ADAPTER_FILE)
    optimizer_file = optimizer_file or os.path.join(checkpoint, "optimizer.pt")
    adapter = read_safetensors_header(adapter_file)
    keys = read_param_order(param_order, adapter, adapter_file) if param_order else model_order(adapter, adapter_file)
    if not os.path.exists(optimizer_file):
        fail(optimizer_file, None, "optimizer state not found (the HF Trainer writes optimizer.pt in each checkpoint unless save_only_model)")
    sd = torch.load(optimizer_file, map_location="cpu")
    if not isinstance(sd, dict) or "state" not in sd or "param_groups" not in sd:
        fail(optimizer_file, None, "not a torch optimizer state_dict (expected 'state' and 'param_groups')")
    groups = [g for g in sd["param_groups"] if g["params"]]
    if len(groups) > 1 and not param_order:
        fail(optimizer_file, "param_groups", f"{len(groups)} non-empty parameter groups: their order is not named_parameters() order; give --param-order")
    ids = [i for g in sd["param_groups"] for i in g["params"]]
    if len(ids) != len(keys):
        fail(optimizer_file, "param_groups", f"the optimizer has {len(ids)} parameters, the adapter {len(keys)} tensors")
    group = groups[0] if groups else sd["param_groups"][0]
    if "betas" not in group or "eps" not in group:
        fail(optimizer_file, "param_groups", "has no betas/eps: not an Adam optimizer")
    beta1, beta2 = (float(b) for b in group["betas"])
    lr = float(learning_rate if learning_rate is not None else group["lr"])

    tensors = {}
    steps = set()
    for pid, key in zip(ids, keys):
        shape = adapter[key]["shape"]
        state = sd["state"].get(pid)
        if state is None:
            # A parameter that never received a gradient: Adam's moments are still zero.
            m = v = torch.zeros(shape, dtype=torch.float32)
        else:
            for name in ("exp_avg", "exp_avg_sq"):
                if name not in state:
                    fail(optimizer_file, f"state.{pid}.{name}", f"missing (for {key}); only torch Adam/AdamW states are supported")
            m, v = state["exp_avg"], state["exp_avg_sq"]
            steps.add(int(scalar(state["step"])))
        for name, t in (("exp_avg", m), ("exp_avg_sq", v)):
            if list(t.shape) != list(shape):
                fail(optimizer_file, f"state.{pid}.{name}", f"shape {list(t.shape)} does not match {key} {shape}: wrong parameter order? give --param-order")
            data = t.detach().to(torch.float32).contiguous().cpu().numpy().astype("<f4").tobytes()
            tensors[f"{key}.{name}"] = (shape, data)
    if len(steps) > 1:
        fail(optimizer_file, "state", f"parameters were stepped different numbers of times ({sorted(steps)})")
    step = steps.pop() if steps else 0
    metadata = {"format": FORMAT, "step": str(step), "beta1": repr(beta1), "beta2": repr(beta2), "eps": repr(float(group["eps"])), "learning_rate": repr(lr)}
    out = os.path.join(checkpoint, OUT_FILE)
    write_safetensors(out, tensors, metadata)
    return out, len(keys), step


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", help="a checkpoint-* folder with adapter_model.safetensors and optimizer.pt")
    p.add_argument("--optimizer", help="the optimizer state_dict (default: <checkpoint>/optimizer.pt)")
    p.add_argument("--param-order", help="file with the adapter keys in the optimizer's parameter order, one per line")
    p.add_argument("--learning-rate", type=float, help="the learning rate to record (default: the first parameter group's lr)")
    a = p.parse_args(argv)
    try:
        out, n, step = convert(a.checkpoint, a.optimizer, a.param_order, a.learning_rate)
    except ConvertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out}: moments of {n} adapter tensors at step {step}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
