"""The deployment config: its models (:mod:`.models`), loading with file:line errors
(:mod:`.loading`), the strict base every model uses (:mod:`.strict`), YAML locations
(:mod:`.yaml_locations`) and the analysis/metrics sections (:mod:`.analysis`).

Names are re-exported lazily: the rules own their config models and build on
:mod:`gridwatch.config.strict`, while the config's models import the rules' union; loading this
package eagerly would make that a cycle at import time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gridwatch.config.loading import (
        ConfigError as ConfigError,
    )
    from gridwatch.config.loading import (
        ConfigIssue as ConfigIssue,
    )
    from gridwatch.config.loading import (
        check_camera as check_camera,
    )
    from gridwatch.config.loading import (
        load_config as load_config,
    )
    from gridwatch.config.loading import (
        parse_config as parse_config,
    )
    from gridwatch.config.models import *  # noqa: F403

_SUBMODULES = ("gridwatch.config.models", "gridwatch.config.loading")


def __getattr__(name: str) -> Any:
    for mod in _SUBMODULES:
        module = importlib.import_module(mod)
        if hasattr(module, name):
            return getattr(module, name)
    raise AttributeError(f"module 'gridwatch.config' has no attribute {name!r}")
