"""Model registry: CIFAR-style image classifiers that take [0, 1] pixels.

Public API
----------
- `create_model(arch, *, num_classes, input_shape, mean, std, width=None) -> nn.Module`
- `MODELS` (name -> factory), `register_model(name=None)` (decorator), `list_models()`
- every model: `model.normalize` (first module, a `Normalize` with buffers), `model.classifier`
  (the final `nn.Linear`), the stem conv is the first `nn.Conv2d` in `model.modules()`, and
  `model.unprunable_modules()` lists extra modules for Torch-Pruning's `ignored_layers`.
- `pruned_state_dict(model)` / `load_pruned_state_dict(fresh_model, state)`: save and restore a
  structurally pruned model as tensors and plain values only.

Torch-Pruning 1.6.1 serialization: `tp.state_dict(model)` copies every module's `__dict__`
(submodule objects included), so `torch.load(path, weights_only=True)` refuses it; it only
round-trips with `weights_only=False`, i.e. by unpickling code. Use `pruned_state_dict` /
`load_pruned_state_dict` instead (`torch.save` it; `torch.load(path, weights_only=True)`).

Architectures: `small_cnn` (digits, any small input), `digits_cnn` (the default; 5 prunable
groups), `vgg_small`, `vgg11_bn`, `vgg16_bn`,
`resnet18`, `resnet34`, `resnet50`, `mobilenetv2`, `wrn28` (k = width, default 10), `wrn28_4`,
`wrn28_10`, `mobilevit_xxs`.
"""

from __future__ import annotations

from robprune.config.names import ARCHS, check_registry

from . import digits, mobilenet, mobilevit, resnet, small, vgg, wrn  # noqa: F401  (registers)
from .base import ImageClassifier, ImageSpec
from .normalize import Normalize
from .registry import MODELS, create_model, list_models, register_model
from .serialization import load_pruned_state_dict, pruned_state_dict

check_registry("model", ARCHS, MODELS)

__all__ = [
    "MODELS",
    "ImageClassifier",
    "ImageSpec",
    "Normalize",
    "create_model",
    "list_models",
    "load_pruned_state_dict",
    "pruned_state_dict",
    "register_model",
]
