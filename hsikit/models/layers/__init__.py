"""Shared building blocks of the seed models."""

from hsikit.models.layers.feedforward import SwiGLU
from hsikit.models.layers.lora import (
    LoRALinear,
    count_parameters,
    freeze_all_but_lora,
    inject_lora,
    lora_layers,
    merge_lora,
    set_lora_strength,
)
from hsikit.models.layers.mamba import MambaBlock
from hsikit.models.layers.scan import selective_scan, selective_scan_reference
from hsikit.models.layers.transformer import Mlp, SelfAttention, TransformerBlock
from hsikit.models.layers.window_attention import WindowAttention

__all__ = [
    "LoRALinear",
    "MambaBlock",
    "Mlp",
    "SelfAttention",
    "SwiGLU",
    "TransformerBlock",
    "WindowAttention",
    "count_parameters",
    "freeze_all_but_lora",
    "inject_lora",
    "lora_layers",
    "merge_lora",
    "selective_scan",
    "selective_scan_reference",
    "set_lora_strength",
]
