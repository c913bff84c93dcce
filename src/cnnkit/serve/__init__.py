"""``cnnkit serve``: the face gallery as an HTTP service (FastAPI on uvicorn) with a web page.

Extra ``cnnkit[serve]``. Nothing in cnnkit imports this package; it calls ``cnnkit.faces`` and
``cnnkit.store``.

>>> from cnnkit.serve import ServeConfig, Service, create_app
>>> app = create_app(Service(ServeConfig(db="galleries/")).load())   # an ASGI app
"""
from cnnkit.serve.app import create_app
from cnnkit.serve.keys import ROLES, ApiKey, KeyStore
from cnnkit.serve.service import ServeConfig, Service

__all__ = ["create_app", "Service", "ServeConfig", "KeyStore", "ApiKey", "ROLES"]
