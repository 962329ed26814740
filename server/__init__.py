"""hideNet streaming server: pages, HTTP API, websocket streaming over simulated links.

Public API::

    from server import ServerConfig, create_app
    app = create_app(ServerConfig(model="interp"))
"""

from .app import create_app
from .config import ServerConfig

__all__ = ["ServerConfig", "create_app"]
