"""zett: zero-shot tokenizer transfer.

Importing zett stores the typed config schemas in Hydra's ConfigStore (``zett.config``), which the YAML files under
``configs/`` name first in their defaults: ``hydra.compose`` over ``configs/`` works once anything of zett is
imported.
"""

import zett.config  # noqa: F401 - registers the schemas (zett/config/schema.py)
