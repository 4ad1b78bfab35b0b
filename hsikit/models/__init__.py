"""Model zoo: importing this package registers every model family."""

from hsikit.models import (  # noqa: F401  (registration side effect)
    classical,
    cnn,
    less_vit,
    lola_specvit,
    mamba_hsi,
    spectralgpt,
)
from hsikit.models.registry import (
    architecture_config,
    create_model,
    get_entry,
    list_models,
    register_model,
)
from hsikit.models.restoration import essaformer, gridsr, hsdt, mp_hsir  # noqa: F401

__all__ = ["architecture_config", "create_model", "get_entry", "list_models", "register_model"]
