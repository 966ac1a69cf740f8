"""`SSLConfig`: every setting of a SimCLR training run, validated and JSON round-trippable."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError

BACKBONES = ("conv", "resnet18")
LOSSES = ("nt_xent", "cross_view")
AUGMENTS = ("auto", "loader", "batched")


@dataclass
class SSLConfig:
    """Settings of one contrastive training run (defaults = the original notebook's)."""

    # Each field's help text (metadata["help"]) is also its `img2text ssl train --flag` help:
    # core/cli/config_options.py generates one option per field.
    data_dir: Path = field(default=Path("data/tiny_coco"), metadata={
        "help": "data folder: Tiny COCO (annotations/ + SPLIT/), the notebook's "
        "tiny_coco_dataset-master layout, or any folder of images", "metavar": "DIR"})
    split: str = field(default="train2017", metadata={
        "help": "split folder for annotated layouts"})
    # 128 px keeps the conv encoder's flatten at 128*16*16, as in the notebook.
    img_size: int = field(default=128, metadata={"help": "square input side in pixels (>= 8)"})
    # Larger batches give NT-Xent more negatives; 64 was the notebook's value.
    batch_size: int = field(default=64, metadata={
        "help": "images per batch (>= 2: the other images are the negatives)"})
    num_epochs: int = field(default=24, metadata={"help": "number of epochs"})
    temperature: float = field(default=0.1, metadata={
        "help": "softmax temperature of the contrastive loss; low values sharpen the ranking"})
    projection_dim: int = field(default=64, metadata={
        "help": "width of the projection head output z (the loss space)"})
    lr: float = field(default=3e-4, metadata={"help": "AdamW learning rate"})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW decoupled weight decay"})
    backbone: str = field(default="conv", metadata={
        "help": "encoder: conv = the notebook's 3-block CNN; resnet18 = torchvision ResNet-18 "
        "from scratch; or a pretrained DINOv2, CLIP or SigLIP hub id (id@revision) or folder, "
        "fine-tuned (its pooled width replaces embedding_dim)"})
    freeze_backbone_epochs: int = field(default=0, metadata={
        "help": "pretrained backbone: epochs at the start with it frozen (only the fresh "
        "projection head learns)"})
    backbone_lr_scale: float = field(default=0.1, metadata={
        "help": "pretrained backbone: its learning rate is lr x this (the head uses lr)"})
    loss: str = field(default="nt_xent", metadata={
        "help": "nt_xent: symmetric SimCLR loss over 2N views; cross_view: the notebook's "
        "one-way variant", "choices": LOSSES})
    seed: int = field(default=0, metadata={"help": "random seed (weights, views, shuffling)"})
    # resolved by core.devices.resolve_device
    device: str = field(default="auto", metadata={
        "help": "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps"})
    workers: int = field(default=0, metadata={
        "help": "DataLoader worker processes; 0 loads images in the training process"})
    out_dir: Path = field(default=Path("runs/ssl"), metadata={
        "help": "run folder to write (checkpoint.safetensors, config.json, history.json, "
        "loss.png after every epoch)", "metavar": "RUN_DIR"})
    embedding_dim: int = field(default=256, metadata={
        "help": "width of the encoder output h that search and evaluation use"})
    eval_k: int = field(default=5, metadata={
        "help": "k of the held-out precision@k health check (neighbours sharing a COCO category)"})
    resume: bool = field(default=False, metadata={
        "help": "continue from the run folder's last checkpoint instead of refusing to overwrite it"})
    # batched = core.ssl.gpu_augment: per-image parameters, one batched pass on the device.
    augment: str = field(default="auto", metadata={
        "help": "where the two views are made: loader = per-image PIL views in the DataLoader "
        "(the notebook's); batched = on the training device in one pass per batch; "
        "auto = batched on CUDA, loader elsewhere", "choices": AUGMENTS})
    # Measured +15-35% per training step on the 2-core CPU (docs/benchmarks.md).
    channels_last: bool = field(default=True, metadata={
        "help": "NHWC memory layout for the conv layers (same maths, faster kernels: oneDNN on "
        "CPU, tensor cores on GPU)"})
    # optimizer.pt holds AdamW's two moments: twice the size of the weights (70 MB of a 105 MB
    # conv run folder). An unfinished run always keeps it; this only decides after the last epoch.
    # Kept by default, so `--resume --epochs N+1` extends a finished run; dropping it is the opt-in.
    keep_optimizer: bool = field(default=True, metadata={
        "help": "keep the optimizer state (optimizer.pt) after the last epoch, so the finished "
        "run can later be extended exactly with --resume and more epochs; --no-keep-optimizer "
        "drops it to save space (2x the weights), and the run can then not be extended"})

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        self.out_dir = Path(self.out_dir)
        for name in ("img_size", "batch_size", "num_epochs", "projection_dim", "embedding_dim", "eval_k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name} must be an integer, got {value!r}")
        if self.img_size < 8:
            # Three 2x max-pools need at least 8 px to leave a 1x1 feature map.
            raise ConfigError(f"img_size must be >= 8 (three 2x poolings), got {self.img_size}")
        if self.batch_size < 2:
            raise ConfigError(
                f"batch_size must be >= 2: contrastive learning needs other images as negatives, "
                f"got {self.batch_size}"
            )
        if self.num_epochs < 1:
            raise ConfigError(f"num_epochs must be >= 1, got {self.num_epochs}")
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if self.projection_dim < 1 or self.embedding_dim < 1:
            raise ConfigError("projection_dim and embedding_dim must be >= 1")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.pretrained_backbone and "/" not in self.backbone and not Path(self.backbone).is_dir():
            raise ConfigError(f"backbone must be one of {', '.join(BACKBONES)}, a pretrained DINOv2/CLIP/"
                              f"SigLIP hub id (org/name[@revision]) or a model folder; got {self.backbone!r}")
        if self.freeze_backbone_epochs < 0 or not self.backbone_lr_scale > 0:
            raise ConfigError("freeze_backbone_epochs must be >= 0 and backbone_lr_scale > 0, got "
                              f"{self.freeze_backbone_epochs} and {self.backbone_lr_scale}")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.augment not in AUGMENTS:
            raise ConfigError(f"augment must be one of {', '.join(AUGMENTS)}, got {self.augment!r}")
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0, got {self.workers}")
        if self.eval_k < 1:
            raise ConfigError(f"eval_k must be >= 1, got {self.eval_k}")
        if not self.split:
            raise ConfigError("split must be a non-empty folder name such as 'train2017'")

    @property
    def pretrained_backbone(self) -> bool:
        """True when ``backbone`` names a pretrained model (fine-tuned), not conv/resnet18."""
        return self.backbone not in BACKBONES

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (paths as strings)."""
        out = dataclasses.asdict(self)
        out["data_dir"] = str(self.data_dir)
        out["out_dir"] = str(self.out_dir)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SSLConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error so typos do not pass silently."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown SSLConfig field(s): {', '.join(unknown)}")
        return cls(**data)
