"""Model zoo: importing this package registers every model family."""

from hsikit.models import classical, cnn  # noqa: F401  (registration side effect)
from hsikit.models.registry import create_model, get_entry, list_models, register_model

__all__ = ["create_model", "get_entry", "list_models", "register_model"]
