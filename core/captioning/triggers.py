"""Trigger words: a fixed prefix and suffix around every caption (kohya's caption prefix/postfix).

LoRA and fine-tuning sets tie a concept to a rare token ("ohwx, a dog on a couch"); the same
prefix/suffix applies to every output format, is recorded in the output's ``.meta.json`` and
must match on ``--resume``. Failed records keep their empty caption.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from core.captioning.outputs import CaptionRecord


@dataclass(frozen=True)
class Triggers:
    """Text put around each caption; each field's help text is its CLI flag's help."""

    prefix: str = field(default="", metadata={
        "help": "put before every caption, as written (e.g. 'ohwx, '); recorded in OUTPUT.meta.json"})
    suffix: str = field(default="", metadata={
        "help": "put after every caption, as written (e.g. ', photo'); recorded in OUTPUT.meta.json"})

    def apply(self, record: CaptionRecord) -> CaptionRecord:
        """``record`` with the prefix and suffix around its caption (failed records unchanged)."""
        if not record.ok or not (self.prefix or self.suffix):
            return record
        return replace(record, caption=f"{self.prefix}{record.caption}{self.suffix}")

    def to_meta(self) -> dict[str, str]:
        """The keys recorded in ``OUTPUT.meta.json`` (and compared on resume)."""
        return {"prefix": self.prefix, "suffix": self.suffix}
