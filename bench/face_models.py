"""Face models of realistic cost for the benchmark, built with torch and random weights.

Speed does not depend on weight values, but the face pipeline's cost does depend on how many
faces are found (each is aligned and embedded). So:

- the recogniser is an ArcFace-style IResNet-50 (the architecture of buffalo_l's
  w600k_r50: 112x112 in, 512 out, about 6.3 GMACs a face), random weights;
- the detector has SCRFD's signature and a backbone and heads of about 10 GFLOPs at 640x640,
  but its scores come from the bench's red squares (tests/support/fake_faces.py's rule), with
  the backbone's own scores added at a weight of 1e-20: the network computes everything a
  real detector computes, and finds the faces the bench drew.

Both export like the stock files: the detector takes ``[1, 3, H, W]`` and flattens its outputs
into rows (``[n, 1|4|10]``), the recogniser takes a free batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

STRIDES = (8, 16, 32)
ANCHORS = 2
HALF_BOX = 80.0  # px in the 640 letterbox: boxes 160 wide
# ArcFace's five landmarks in a 112 crop (insightface's face_align.arcface_dst).
TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                     [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)


def build_recognizer(path: Path) -> Path:
    """The ONNX file."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
                nn.PReLU(cout), nn.Conv2d(cout, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout))
            self.short = (nn.Identity() if stride == 1 and cin == cout else
                          nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

        def forward(self, x):
            return self.body(x) + self.short(x)

    class IResNet50(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers = [nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64)]
            cin = 64
            for cout, blocks in ((64, 3), (128, 4), (256, 14), (512, 3)):
                layers += [Block(cin, cout, 2)] + [Block(cout, cout, 1) for _ in range(blocks - 1)]
                cin = cout
            self.features = nn.Sequential(*layers, nn.BatchNorm2d(512))
            self.fc = nn.Linear(512 * 7 * 7, 512)
            self.bn = nn.BatchNorm1d(512)

        def forward(self, x):
            return self.bn(self.fc(torch.flatten(self.features(x), 1)))

    model = IResNet50().eval()
    example = torch.zeros(1, 3, 112, 112)
    torch.onnx.export(model, example, str(path), input_names=["input.1"], output_names=["fc1"],
                      dynamic_axes={"input.1": {0: "batch"}, "fc1": {0: "batch"}}, opset_version=17, dynamo=False)
    return path


def build_detector(path: Path) -> Path:
    """The ONNX file."""
    import torch
    from torch import nn

    def conv(cin: int, cout: int, stride: int = 1) -> nn.Module:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    class Detector(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(conv(3, 24, 2), conv(24, 24), conv(24, 48, 2), conv(48, 48))
            self.c8 = nn.Sequential(conv(48, 72, 2), conv(72, 72), conv(72, 72))
            self.c16 = nn.Sequential(conv(72, 144, 2), conv(144, 144), conv(144, 144))
            self.c32 = nn.Sequential(conv(144, 288, 2), conv(288, 288), conv(288, 288))
            self.necks = nn.ModuleList(conv(c, 64) for c in (72, 144, 288))
            self.heads = nn.ModuleList(nn.Sequential(conv(64, 64), conv(64, 64), nn.Conv2d(64, ANCHORS * 15, 3, 1, 1))
                                       for _ in STRIDES)
            self.register_buffer("redness", torch.tensor([1.0, -0.5, -0.5]).view(1, 3, 1, 1))
            kps = (TEMPLATE - 56.0) * (2 * HALF_BOX / 112.0) * 0.8
            self.register_buffer("kps", torch.from_numpy(kps.reshape(-1)))

        def forward(self, x):
            f8 = self.c8(self.stem(x))
            f16 = self.c16(f8)
            f32 = self.c32(f16)
            red = (x * self.redness).sum(1, keepdim=True)
            scores, boxes, points = [], [], []
            for stride, feature, neck, head in zip(STRIDES, (f8, f16, f32), self.necks, self.heads):
                learned = head(neck(feature)).permute(0, 2, 3, 1).reshape(-1, 15) * 1e-20
                pooled = nn.functional.avg_pool2d(red, stride).permute(0, 2, 3, 1).reshape(-1, 1)
                pooled = pooled.repeat_interleave(ANCHORS, 0)  # two anchors a cell, one after the other
                scores.append(torch.sigmoid(10 * (pooled - 1.5)) + learned[:, :1])
                boxes.append(torch.full_like(pooled, HALF_BOX / stride).expand(-1, 4) + learned[:, 1:5])
                points.append(self.kps.view(1, 10) / stride + learned[:, 5:15] + 0 * pooled)
            return (*scores, *boxes, *points)

    names = [f"{kind}_{stride}" for kind in ("score", "bbox", "kps") for stride in STRIDES]
    model = Detector().eval()
    example = torch.zeros(1, 3, 640, 640)
    torch.onnx.export(model, example, str(path), input_names=["input.1"], output_names=names,
                      dynamic_axes={"input.1": {2: "height", 3: "width"}, **{n: {0: f"rows_{n}"} for n in names}},
                      opset_version=17, dynamo=False)
    return path
