"""Tokenizer transfer: ``zett.transfer(base_model, target_tokenizer, method=...) -> (model, tokenizer)``.

The package itself is callable (``zett.transfer(...)`` is ``zett.transfer.transfer(...)``), and holds the parts:
``predict`` (chunked hypernetwork / FVT prediction), ``baselines`` (lexical, random), ``specials`` (chat-template
tokens, id remapping), ``save`` (``save_transferred``) and ``focus`` (FOCUS baseline).
"""

import sys
import types

from zett.transfer.api import (
    METHODS,
    TransferError,
    TransferInfo,
    load_hypernet,
    load_model,
    transfer,
)
from zett.transfer.save import save_transferred


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return transfer(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["METHODS", "TransferError", "TransferInfo", "load_hypernet", "load_model",
           "save_transferred", "transfer"]
