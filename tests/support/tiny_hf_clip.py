"""A small ChineseCLIPModel with random weights, saved as transformers saves one (config.json,
model.safetensors, vocab.txt, preprocessor_config.json), as OFA-Sys' and QA-CLIP's folders are.
Needs torch and transformers (the export extra)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

#: OFA-Sys' processor config: squeeze into 224x224 (their checkpoints' preprocessor_config.json).
SQUEEZE = {"do_resize": True, "size": {"height": 224, "width": 224}, "do_center_crop": False, "crop_size": 224,
           "resample": 3, "do_normalize": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
           "image_std": [0.26862954, 0.26130258, 0.27577711], "do_convert_rgb": True,
           "image_processor_type": "ChineseCLIPImageProcessor"}
#: transformers' own default: the shortest side to 224, then a centre crop.
SHORTEST_EDGE = {**SQUEEZE, "size": {"shortest_edge": 224}, "do_center_crop": True,
                 "crop_size": {"height": 224, "width": 224}}


def write_tiny_hf_clip(folder: Path, processor: dict | None = None, seed: int = 0) -> Path:
    import cn_clip.clip as cn_clip
    import torch
    from transformers import ChineseCLIPConfig, ChineseCLIPModel

    torch.manual_seed(seed)
    config = ChineseCLIPConfig(
        text_config={"vocab_size": 21128, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                     "intermediate_size": 128, "max_position_embeddings": 512},
        vision_config={"hidden_size": 96, "num_hidden_layers": 3, "num_attention_heads": 2, "intermediate_size": 192,
                       "image_size": 224, "patch_size": 16, "projection_dim": 512},
        projection_dim=512)
    model = ChineseCLIPModel(config).eval()
    model.save_pretrained(str(folder), safe_serialization=True)
    shutil.copyfile(Path(cn_clip.__file__).parent / "vocab.txt", folder / "vocab.txt")
    (folder / "preprocessor_config.json").write_text(json.dumps(processor or SQUEEZE), encoding="utf-8")
    return folder


def reference(folder: Path):
    """(image bytes -> features, text -> features) as transformers gives them: its own processor
    (from the folder's config), then get_image_features / get_text_features."""
    import io

    import torch
    from PIL import Image
    from transformers import BertTokenizer, ChineseCLIPImageProcessor, ChineseCLIPModel

    model = ChineseCLIPModel.from_pretrained(str(folder)).eval()
    images = ChineseCLIPImageProcessor.from_pretrained(str(folder))
    tokenizer = BertTokenizer(str(folder / "vocab.txt"))

    def features(out):
        return (out if isinstance(out, torch.Tensor) else out.pooler_output)[0].numpy()

    def image(data: bytes):
        pixels = images(images=Image.open(io.BytesIO(data)), return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            return features(model.get_image_features(pixel_values=pixels))

    def text(value: str):
        tokens = tokenizer([value], padding="max_length", max_length=52, truncation=True, return_tensors="pt")
        with torch.no_grad():
            return features(model.get_text_features(**tokens))

    return image, text
