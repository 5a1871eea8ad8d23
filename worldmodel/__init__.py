"""The open robot world-model package: a Self-Flow video-action diffusion transformer for robots.

``from worldmodel import WorldModel`` loads a trained model behind its verbs (imported lazily, so importing the
package stays light: no torch until it is used).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["WorldModel", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "WorldModel":
        from worldmodel.world_model import WorldModel

        return WorldModel
    raise AttributeError(f"module 'worldmodel' has no attribute {name!r}")
