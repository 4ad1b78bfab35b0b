"""Model zoo: importing this package registers every model family."""

from hsikit.models import classical, cnn, less_vit, lola_specvit, mamba_hsi, spectralgpt  # noqa: F401  (registration side effect)
from hsikit.models.registry import (
    architecture_config,
    create_model,
    get_entry,
    list_models,
    register_model,
)

__all__ = ["architecture_config", "create_model", "get_entry", "list_models", "register_model"]
