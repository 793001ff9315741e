"""The ASGI guard in front of the request models: 413 for bodies over serve.max_body_bytes and
401 without the API key, before anything is parsed.

A plain ASGI middleware: Starlette's BaseHTTPMiddleware (@app.middleware) costs a task group
and memory streams per request, measurable at 1,000 requests/s. The body limit counts the bytes
as they arrive, so a chunked body (no Content-Length) cannot slip past it."""

from __future__ import annotations

import hmac

OPEN_PATHS = ("/healthz", "/docs", "/redoc", "/openapi.json", "/-/")
BODYLESS = (b"GET", b"HEAD", b"OPTIONS")
TOO_LARGE = object()


class Wrapper:
    """An ASGI app around `self.app` that shows the wrapped app's routes: Serve matches each request
    against `routes` (and `router.redirect_slashes`) for the `route` label of its request metrics."""

    @property
    def routes(self):
        return self.app.routes

    @property
    def router(self):
        return self.app.router


class Guard(Wrapper):
    def __init__(self, app, max_body_bytes: int, api_key: str | None, limit_hint: str = ""):
        self.app, self.max_body_bytes, self.limit_hint = app, max_body_bytes, limit_hint
        self.api_key = api_key.encode() if api_key else None

    def _too_large(self, size: str) -> tuple[int, str]:
        return 413, (f"request body of {size} exceeds serve.max_body_bytes ({self.max_body_bytes} bytes{self.limit_hint}): "
                     "send fewer rows per request or raise serve.max_body_bytes")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"")
        refusal = None
        if length.isdigit() and int(length) > self.max_body_bytes:
            refusal = self._too_large(f"{int(length)} bytes")
        elif self.api_key is not None:
            path, root = scope.get("path", ""), scope.get("root_path", "")
            path = path[len(root):] if root and path.startswith(root) else path
            if not path.startswith(OPEN_PATHS) and not hmac.compare_digest(headers.get(b"x-api-key", b""), self.api_key):
                refusal = (401, "missing or wrong x-api-key")
        if refusal is None and not (scope.get("method", "").encode() in BODYLESS and not length
                                    and b"transfer-encoding" not in headers):
            body = await self._read_body(receive)
            if body is None:                                # the client went away: nobody to answer
                return
            if body is TOO_LARGE:
                refusal = self._too_large(f"more than {self.max_body_bytes} bytes"
                                          + ("" if length else " (sent without a Content-Length)"))
            else:
                receive = _replay(body, receive)
        if refusal:
            from fastapi.responses import JSONResponse

            return await JSONResponse({"detail": refusal[1]}, status_code=refusal[0])(scope, receive, send)
        return await self.app(scope, receive, send)

    async def _read_body(self, receive):
        """The whole body, counted as it arrives: TOO_LARGE as soon as it passes the limit
        (the rest is never read), None if the client disconnected first."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return TOO_LARGE
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive):
    """A `receive` that hands the app the body already read, then defers to the real one."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
