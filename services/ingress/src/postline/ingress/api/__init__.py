"""The send API (DESIGN.md "Interfaces"): one set of rules behind two doors.

models.py    request/answer shapes, the source of the OpenAPI document
checks.py    what a request means, checked (guard clauses naming the field)
service.py   `SendApi`: authenticate, check, idempotency, compose, publish
routes.py    the HTTP door (FastAPI); ``postline.ingress.grpc_server`` is the gRPC one
"""

from postline.ingress.api.errors import ApiError
from postline.ingress.api.service import SendApi, SendOutcome

__all__ = ["ApiError", "SendApi", "SendOutcome"]
