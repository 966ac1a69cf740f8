"""A pretrained image backbone as the SimCLR encoder: DINOv2, or the vision tower of CLIP/SigLIP.

``img2text ssl train --backbone ID`` fine-tunes it with the project's two-view augmentation and
NT-Xent under a fresh projection head. The encoder's output ``h`` is the tower's pooled feature
(DINOv2: the layer-normed CLS token; CLIP: the post-layernorm CLS; SigLIP: its attention-pool
head), so its width is the tower's hidden size. Images arrive as the project's tensors
(``img_size``, ImageNet normalisation; position embeddings are interpolated to that size).
The backbone trains at ``lr * backbone_lr_scale`` and can stay frozen for the first
``freeze_backbone_epochs`` epochs. A run's checkpoint holds the whole tower's weights; building
the architecture again (to load a checkpoint) reads only the backbone's ``config.json``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from core.errors import ConfigError

# family -> (transformers config class, vision model class); SigLIP 2 takes patch sequences, not images
TOWERS = {
    "dinov2": ("Dinov2Config", "Dinov2Model"),
    "clip": ("CLIPVisionConfig", "CLIPVisionModel"),
    "siglip": ("SiglipVisionConfig", "SiglipVisionModel"),
}


class PretrainedBackbone(nn.Module):
    """``(B, 3, S, S)`` images -> the tower's pooled features ``(B, dim)``."""

    def __init__(self, spec: str, pretrained_weights: bool = False) -> None:
        super().__init__()
        import transformers

        from core.ssl.backbones import resolve_backbone

        source = resolve_backbone(spec, hash_weights=False)
        if source.family.name not in TOWERS:
            raise ConfigError(f"--backbone {spec}: fine-tuning supports {', '.join(TOWERS)} "
                              f"(SigLIP 2 takes patch sequences, not image tensors); got {source.family.name}")
        config_cls, model_cls = (getattr(transformers, n) for n in TOWERS[source.family.name])
        self.family = source.family.name
        if pretrained_weights:
            self.tower = model_cls.from_pretrained(source.folder, use_safetensors=True)
        else:
            self.tower = model_cls(config_cls.from_pretrained(source.folder))
        self.dim = int(self.tower.config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        extra: dict[str, Any] = {} if self.family == "dinov2" else {"interpolate_pos_encoding": True}
        return self.tower(pixel_values=x, **extra).pooler_output  # type: ignore[no-any-return]


def is_pretrained(encoder: nn.Module) -> bool:
    return isinstance(encoder, PretrainedBackbone)


def make_optimizer(model: nn.Module, config: Any) -> torch.optim.Optimizer:
    """AdamW; a pretrained backbone's parameters in their own group at ``lr * backbone_lr_scale``."""
    encoder = getattr(model, "encoder", None)
    if encoder is None or not is_pretrained(encoder):
        return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    backbone = {id(p) for p in encoder.parameters()}
    head = [p for p in model.parameters() if id(p) not in backbone]
    groups = [{"params": head, "lr": config.lr},
              {"params": list(encoder.parameters()), "lr": config.lr * config.backbone_lr_scale}]
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


def set_backbone_frozen(model: nn.Module, frozen: bool) -> None:
    """Freeze (no gradients, so AdamW leaves it alone) or unfreeze a pretrained backbone."""
    encoder = getattr(model, "encoder", None)
    if encoder is not None and is_pretrained(encoder):
        for p in encoder.parameters():
            p.requires_grad_(not frozen)


__all__ = ["TOWERS", "PretrainedBackbone", "is_pretrained", "make_optimizer", "set_backbone_frozen"]
