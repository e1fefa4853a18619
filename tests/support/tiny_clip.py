"""A small Chinese-CLIP with random weights, saved as a cn-clip checkpoint.

Real ViT-B-16 in every way that shapes the contract (224 px input, cn-clip's vocabulary,
512-dimension output) but with narrow, shallow towers, so it builds, exports and runs in
seconds. The image tower is just heavy enough (a few ms a pass) for concurrent requests to
queue behind each other, so batching shows. Needs torch and cn-clip (the export extra).
"""

from __future__ import annotations

import json
from pathlib import Path

TINY_CONFIG = {
    "embed_dim": 512, "image_resolution": 224, "vision_layers": 4, "vision_width": 128, "vision_patch_size": 16,
    "vocab_size": 21128, "text_attention_probs_dropout_prob": 0.1, "text_hidden_act": "gelu",
    "text_hidden_dropout_prob": 0.1, "text_hidden_size": 64, "text_initializer_range": 0.02,
    "text_intermediate_size": 128, "text_max_position_embeddings": 512, "text_num_attention_heads": 2,
    "text_num_hidden_layers": 2, "text_type_vocab_size": 2,
}


#: A little wider and deeper, with cn-clip's own initialisation (``spread=None``): image
#: embeddings of different photos spread (pairwise cosine median 0.79 on
#: tests/support/gallery.py's photos; the real-size ViT-B-16 at random: 0.68), where the tiny
#: model puts every photo within 0.93 of every other and nearest neighbours differ by float
#: rounding. Nearest-neighbour tests need this one.
SPREAD_CONFIG = {**TINY_CONFIG, "vision_layers": 6, "vision_width": 192}


def write_tiny_checkpoint(folder: Path, *, seed: int = 0, module_prefix: bool = True,
                          config: dict | None = None, spread: float | None = 0.05) -> tuple[Path, Path]:
    """(checkpoint, config) files; weights in fp16 as cn-clip's released checkpoints are.

    ``spread``: the weights' standard deviation, or None for cn-clip's own initialisation."""
    import torch
    from cn_clip.clip.model import CLIP, convert_weights

    config = config or TINY_CONFIG
    torch.manual_seed(seed)
    model = CLIP(**config)
    if spread is not None:
        with torch.no_grad():  # CLIP's init leaves some projections tiny; spread the features out
            for parameter in model.parameters():
                if parameter.dim() > 1:
                    parameter.normal_(0, spread)
    convert_weights(model)
    state = model.state_dict()
    if module_prefix:  # as cn-clip's DDP training saves them
        state = {f"module.{k}": v for k, v in state.items()}
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint, config_file = folder / "tiny_cn_clip.pt", folder / "tiny_config.json"
    torch.save({"epoch": 1, "state_dict": state}, checkpoint)
    config_file.write_text(json.dumps(config), encoding="utf-8")
    return checkpoint, config_file


def load_reference(checkpoint: Path, config: Path):
    """The model as cn-clip itself loads a checkpoint (create_model), on the CPU."""
    import torch
    from cn_clip.clip.model import CLIP, convert_weights

    model = CLIP(**json.loads(config.read_text()))
    convert_weights(model)
    state = torch.load(checkpoint, map_location="cpu")["state_dict"]
    model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    return model.float().eval()


def reference_encoders(checkpoint: Path, config: Path):
    """(image bytes -> features, text -> features): cn-clip's ``encode_image`` fed by its own
    image transform (the image opened with PIL, as the references open it) and ``encode_text``
    fed by its own tokenizer, un-normalised, as float32 numpy vectors."""
    import io

    import cn_clip.clip as cn_clip
    import torch
    from cn_clip.clip.utils import image_transform
    from PIL import Image

    model = load_reference(checkpoint, config)
    transform = image_transform(224)

    def image(data: bytes):
        with torch.no_grad():
            return model.encode_image(transform(Image.open(io.BytesIO(data)))[None])[0].numpy()

    def text(value: str):
        with torch.no_grad():
            return model.encode_text(cn_clip.tokenize([value]))[0].numpy()

    return image, text
