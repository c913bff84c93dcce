"""The FastAPI app: routes under ``/v1``, the web page at ``/``, a local docs page at ``/docs``.

Every route parses its input, checks the key, and hands the work to :class:`~cnnkit.serve.service.Service`;
every error leaves as ``application/problem+json`` through :func:`~cnnkit.serve.problems.problem_for`.
"""
import logging
from importlib.resources import files
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, File, Form, Path, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cnnkit import __version__
from cnnkit.core.errors import CnnkitError
from cnnkit.serve.galleries import NAME_RE
from cnnkit.serve.keys import ApiKey
from cnnkit.serve.problems import CODES, PROBLEM_JSON, Problem, problem_for
from cnnkit.serve.service import Service

log = logging.getLogger("cnnkit.serve")
STATIC = files("cnnkit.serve") / "static"
#: query parameters that look like credentials: refused, so that a key never sits in a URL or a log
_KEY_PARAMS = {"key", "api_key", "apikey", "token", "access_token", "authorization"}
_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
                                       "object-src 'none'; frame-ancestors 'none'; base-uri 'none'"}


# -- problem documents --------------------------------------------------------------------------

class ProblemDetail(BaseModel):
    """RFC 9457 problem details, with a stable ``code``."""
    type: str
    title: str
    status: int
    detail: str
    code: str


def _problem_response(p: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(p.body(), status_code=p.status, media_type=PROBLEM_JSON,
                        headers={**(p.headers or {}), **(headers or {})})


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the problem statuses a route can answer."""
    codes: dict[int, list[str]] = {}
    for code, (status, _) in CODES.items():
        codes.setdefault(status, []).append(code)
    out: dict[int | str, dict[str, Any]] = {}
    for s in sorted(set(statuses) | {400, 401, 413, 429, 500, 503}):
        out[s] = {"model": ProblemDetail, "description": "problem; code: " + ", ".join(codes.get(s, [])),
                  "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetail"}}}}
    return out


# -- request body limit -------------------------------------------------------------------------

class BodyLimit:
    """Refuse request bodies above ``limit`` bytes (413) from Content-Length, and stop reading
    chunked bodies as soon as they pass it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_large = Problem("image-too-large", f"the request body is larger than the limit of {self.limit} bytes")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await _problem_response(too_large, {"Connection": "close"})(scope, receive, send)
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise too_large
            return msg

        await self.app(scope, limited, send)


# -- auth and parameters ------------------------------------------------------------------------

def caller(request: Request) -> ApiKey | None:
    """The key of this request (None when the server has no keys at all: loopback only)."""
    keys = request.app.state.service.keys
    if not keys.any():
        return None
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem("unauthorized", "send `Authorization: Bearer KEY` (create one with "
                      "`cnnkit serve keys add`)", {"WWW-Authenticate": 'Bearer realm="cnnkit"'})
    key = keys.check(token.strip())
    if key is None:
        raise Problem("unauthorized", "this key is wrong or revoked", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return key


def allow(key: ApiKey | None, role: str, gallery: str | None) -> None:
    """Raise ``forbidden`` unless ``key`` may act with ``role`` on ``gallery``."""
    if key is not None and not key.allows(role, gallery):
        scope = "every gallery" if key.gallery == "*" else f"gallery {key.gallery!r}"
        raise Problem("forbidden", f"this key has role {key.role!r} on {scope}; this needs {role!r}"
                      + (f" on gallery {gallery!r}" if gallery else ""))


#: the OpenAPI answer of a route that sends a JPEG chip
JPEG = {200: {"content": {"image/jpeg": {}}}}


def jpeg(data: bytes) -> Response:
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


def multipart(request: Request) -> None:
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise Problem("unsupported-media-type", f"send multipart/form-data with the image in field \"image\", "
                      f"not {ctype or 'no content type'!r}")


Caller = Annotated[ApiKey | None, Depends(caller)]
Multipart = Depends(multipart)
GalleryName = Annotated[str, Path(pattern=NAME_RE.pattern, description="gallery name")]
#: a subject name: 1 to 200 characters, not blank, no control characters or slashes
SUBJECT_PATTERN = r"^[^\x00-\x1f/]*[^\x00-\x1f/\s][^\x00-\x1f/]*$"
SubjectName = Annotated[str, Path(min_length=1, max_length=200, pattern=SUBJECT_PATTERN, description="subject (person) name")]
FaceId = Annotated[int, Path(ge=1, le=2**63 - 1, description="an unknown face's id, as listed")]
FaceMode = Annotated[Literal["single", "largest"], Form(description="several faces: 422 (single) or take the main one")]


class NameUnknown(BaseModel):
    name: str = Field(min_length=1, max_length=200, pattern=SUBJECT_PATTERN, description="the person's name")
    faces: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(
        min_length=1, max_length=10000, description="the ids of the faces to enroll: a cluster's, as listed")


class NewGallery(BaseModel):
    name: str = Field(pattern=NAME_RE.pattern, description="lower-case letters, digits, underscores")
    thumbnails: bool = Field(False, description="store a 112 px chip of each subject (deleted with them)")


# -- the app ------------------------------------------------------------------------------------

def create_app(service: Service) -> FastAPI:
    """The ASGI app over one :class:`Service` (whose models may load later: ``/readyz`` says when)."""
    app = FastAPI(title="cnnkit face gallery", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json",
                  description="One-shot face verification and identification over named galleries. "
                              "Errors are RFC 9457 application/problem+json with a stable `code`. "
                              "Send keys as `Authorization: Bearer KEY`; never in a URL. No liveness check.")
    app.state.service = service
    app.add_middleware(BodyLimit, limit=service.config.max_upload)

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        if _KEY_PARAMS & {k.lower() for k in request.query_params}:
            resp: Response = _problem_response(Problem("bad-request", "API keys are never accepted in a URL; send "
                                                       "`Authorization: Bearer KEY`"))
        else:
            resp = await call_next(request)
        for k, v in _HEADERS.items():
            resp.headers.setdefault(k, v)
        return resp

    # errors -----------------------------------------------------------------------------------
    @app.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem) -> JSONResponse:
        return _problem_response(exc)

    @app.exception_handler(CnnkitError)
    async def on_cnnkit(request: Request, exc: CnnkitError) -> JSONResponse:
        p = problem_for(exc)
        if p.status >= 500:
            log.error("request %s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return _problem_response(p)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors()[:5]:
            where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body",))
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return _problem_response(Problem("invalid-request", "; ".join(parts) or "invalid request"))

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "bad-request", 404: "not-found", 405: "method-not-allowed", 413: "image-too-large",
                415: "unsupported-media-type", 422: "invalid-request"}.get(exc.status_code)
        if code is None:
            code = "bad-request" if exc.status_code < 500 else "internal-error"
        detail = exc.detail if isinstance(exc.detail, str) else CODES[code][1]
        return _problem_response(Problem(code, detail), dict(exc.headers or {}))

    @app.exception_handler(ClientDisconnect)
    async def on_disconnect(request: Request, exc: ClientDisconnect) -> JSONResponse:
        return _problem_response(Problem("bad-request", "the client disconnected before the body was complete"))

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return _problem_response(problem_for(exc))

    async def read(upload: UploadFile) -> bytes:
        data = await upload.read()
        if len(data) > service.config.max_upload:
            raise Problem("image-too-large", f"the image is larger than {service.config.max_upload} bytes")
        return data

    # health -----------------------------------------------------------------------------------
    @app.get("/healthz", tags=["health"], summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="Models loaded and the gallery store reachable",
             responses=problems(503))
    async def readyz() -> Any:
        if not service.ready:
            raise Problem("not-ready", "the models are still loading")
        if not await service.io(service.galleries.reachable):
            raise Problem("store-unavailable", "the gallery store cannot be reached")
        return {"status": "ready"}

    @app.get("/v1/info", tags=["info"], summary="Encoder, metric and the decision in force",
             responses=problems(403, 404, 422))
    async def info(key: Caller, gallery: Annotated[str | None, Query(pattern=NAME_RE.pattern)] = None) -> Any:
        allow(key, "read", gallery)
        if not service.ready:
            raise Problem("not-ready", "the models are still loading")
        return await service.io(service.info, gallery)

    # galleries --------------------------------------------------------------------------------
    @app.get("/v1/galleries", tags=["galleries"], summary="Galleries this key can see", responses=problems(403))
    async def list_galleries(key: Caller) -> Any:
        names = await service.io(service.galleries.names)
        return {"galleries": [n for n in names if key is None or key.allows("read", n)]}

    @app.post("/v1/galleries", tags=["galleries"], status_code=201, summary="Create a gallery",
              responses=problems(403, 409, 415, 422))
    async def create_gallery(key: Caller, body: NewGallery) -> Any:
        allow(key, "admin", None)
        return await service.io(lambda: service.create_gallery(body.name, thumbnails=body.thumbnails))

    @app.get("/v1/galleries/{gallery}", tags=["galleries"], summary="One gallery", responses=problems(403, 404, 422))
    async def get_gallery(key: Caller, gallery: GalleryName) -> Any:
        allow(key, "read", gallery)
        return await service.io(service.galleries.describe, gallery)

    @app.delete("/v1/galleries/{gallery}", tags=["galleries"], status_code=204, summary="Delete a gallery and all in it",
                responses=problems(403, 404, 422))
    async def delete_gallery(key: Caller, gallery: GalleryName) -> Response:
        allow(key, "admin", None)
        await service.io(service.drop_gallery, gallery)
        return Response(status_code=204)

    # subjects ---------------------------------------------------------------------------------
    @app.get("/v1/galleries/{gallery}/subjects", tags=["subjects"], summary="Subjects, by name, a page at a time",
             responses=problems(403, 404, 422))
    async def list_subjects(key: Caller, gallery: GalleryName,
                            limit: Annotated[int, Query(ge=1, le=500)] = 50,
                            cursor: Annotated[str | None, Query(max_length=400)] = None) -> Any:
        allow(key, "read", gallery)
        return await service.io(service.subjects, gallery, limit, cursor)

    @app.get("/v1/galleries/{gallery}/subjects/{subject}", tags=["subjects"], summary="One subject",
             responses=problems(403, 404, 422))
    async def get_subject(key: Caller, gallery: GalleryName, subject: SubjectName) -> Any:
        allow(key, "read", gallery)
        return await service.io(service.subject, gallery, subject)

    @app.get("/v1/galleries/{gallery}/subjects/{subject}/thumbnail", tags=["subjects"],
             summary="The subject's 112 px chip (galleries created with thumbnails)",
             responses={**JPEG, **problems(403, 404, 422)})
    async def get_thumbnail(key: Caller, gallery: GalleryName, subject: SubjectName) -> Response:
        allow(key, "read", gallery)
        return jpeg(await service.io(service.thumbnail, gallery, subject))

    @app.delete("/v1/galleries/{gallery}/subjects/{subject}", tags=["subjects"], status_code=204,
                summary="Delete a subject: every embedding and the thumbnail", responses=problems(403, 404, 422))
    async def delete_subject(key: Caller, gallery: GalleryName, subject: SubjectName) -> Response:
        allow(key, "write", gallery)
        await service.io(service.delete_subject, gallery, subject)
        return Response(status_code=204)

    @app.post("/v1/galleries/{gallery}/subjects/{subject}/faces", tags=["subjects"], status_code=201,
              summary="Enroll one photo of a subject", dependencies=[Multipart],
              responses={200: {"description": "these exact bytes were already enrolled"},
                         **problems(403, 404, 409, 413, 415, 422)})
    async def enroll(key: Caller, gallery: GalleryName, subject: SubjectName,
                    image: Annotated[UploadFile, File(description="the photo (type read from its bytes)")],
                    face: FaceMode = "single") -> Any:
        allow(key, "write", gallery)
        data = await read(image)
        status, body = await service.infer(service.enroll, gallery, subject, data, face, image.filename)
        return JSONResponse(body, status_code=status)

    @app.post("/v1/galleries/{gallery}/faces", tags=["subjects"], summary="Enroll a batch: one result or problem per photo",
              dependencies=[Multipart], responses=problems(403, 404, 413, 415, 422))
    async def enroll_batch(key: Caller, gallery: GalleryName,
                          image: Annotated[list[UploadFile], File(description="photos, in order")],
                          subject: Annotated[list[str], Form(description="one subject name per photo, in order")],
                          face: FaceMode = "single") -> Any:
        allow(key, "write", gallery)
        if len(image) != len(subject):
            raise Problem("invalid-request", f"{len(image)} images but {len(subject)} subject names")
        results = []
        for i, (upload, name) in enumerate(zip(image, subject)):
            try:
                if not name.strip() or len(name) > 200:
                    raise Problem("invalid-request", "a subject name must be 1 to 200 characters")
                data = await read(upload)
                status, body = await service.infer(service.enroll, gallery, name, data, face, upload.filename)
                results.append({"index": i, "status": status, **body})
            except (Problem, CnnkitError) as exc:
                p = problem_for(exc)
                if p.code in ("gallery-not-found", "rate-limited", "internal-error", "store-unavailable"):
                    raise p from None
                results.append({"index": i, "status": p.status, "subject": name, "problem": p.body()})
        return {"gallery": gallery, "enrolled": sum(r["status"] == 201 for r in results),
                "failed": sum(r["status"] >= 400 for r in results), "results": results}

    # decisions --------------------------------------------------------------------------------
    @app.post("/v1/verify", tags=["decisions"], summary="Same person? image + subject (+ gallery), or image_a + image_b",
              dependencies=[Multipart], responses=problems(403, 404, 409, 413, 415, 422))
    async def verify(key: Caller,
                     image: Annotated[UploadFile | None, File()] = None,
                     subject: Annotated[str | None, Form(max_length=200)] = None,
                     gallery: Annotated[str | None, Form(pattern=NAME_RE.pattern)] = None,
                     image_a: Annotated[UploadFile | None, File()] = None,
                     image_b: Annotated[UploadFile | None, File()] = None,
                     face: FaceMode = "single") -> Any:
        if image is not None and subject and gallery and image_a is None and image_b is None:
            allow(key, "read", gallery)
            data = await read(image)
            return await service.infer(service.verify_subject, gallery, subject, data, face)
        if image_a is not None and image_b is not None and image is None and not subject:
            allow(key, "read", gallery)
            a, b = await read(image_a), await read(image_b)
            return await service.infer(service.verify_pair, a, b, face)
        allow(key, "read", gallery)
        raise Problem("invalid-request", "send either image + subject + gallery, or image_a + image_b")

    @app.post("/v1/galleries/{gallery}/identify", tags=["decisions"], summary="Name every face of a photo, or null",
              dependencies=[Multipart], responses=problems(403, 404, 409, 413, 415, 422))
    async def identify(key: Caller, gallery: GalleryName, image: Annotated[UploadFile, File()],
                       top_k: Annotated[int, Form(ge=1, le=50)] = 5) -> Any:
        allow(key, "read", gallery)
        data = await read(image)
        return await service.infer(service.identify, gallery, data, top_k)

    @app.post("/v1/embed", tags=["decisions"], summary="The embedding of every face of a photo",
              dependencies=[Multipart], responses=problems(403, 413, 415, 422))
    async def embed(key: Caller, image: Annotated[UploadFile, File()]) -> Any:
        allow(key, "read", None)
        data = await read(image)
        return await service.infer(service.embed, data)

    # unknown faces --------------------------------------------------------------------------------
    @app.get("/v1/galleries/{gallery}/unknown", tags=["unknown faces"],
             summary="Faces identify named nobody (cnnkit serve --capture-unknown), in clusters, largest first",
             responses=problems(403, 404, 422))
    async def list_unknown(key: Caller, gallery: GalleryName) -> Any:
        allow(key, "read", gallery)
        return await service.infer(service.unknown_clusters, gallery)

    @app.get("/v1/galleries/{gallery}/unknown/faces/{face_id}/chip", tags=["unknown faces"],
             summary="An unknown face's 112 px chip",
             responses={**JPEG, **problems(403, 404, 422)})
    async def get_unknown_chip(key: Caller, gallery: GalleryName, face_id: FaceId) -> Response:
        allow(key, "read", gallery)
        return jpeg(await service.io(service.unknown_chip, gallery, face_id))

    @app.delete("/v1/galleries/{gallery}/unknown/faces/{face_id}", tags=["unknown faces"], status_code=204,
                summary="Forget one unknown face (nothing is enrolled)", responses=problems(403, 404, 422))
    async def discard_unknown(key: Caller, gallery: GalleryName, face_id: FaceId) -> Response:
        allow(key, "write", gallery)
        await service.io(service.discard_unknown, gallery, face_id)
        return Response(status_code=204)

    @app.post("/v1/galleries/{gallery}/unknown/name", tags=["unknown faces"], status_code=201,
              summary="Enroll these unknown faces (a cluster's ids, as listed) as one person, in one "
                      "transaction; 409 if any was named, discarded or purged since",
              responses={200: {"description": "every face was already enrolled for this person"},
                         **problems(403, 404, 409, 415, 422)})
    async def name_unknown(key: Caller, gallery: GalleryName, body: NameUnknown) -> Any:
        allow(key, "write", gallery)
        status, out = await service.infer(service.name_unknown, gallery, body.name, body.faces)
        return JSONResponse(out, status_code=status)

    # export / import ----------------------------------------------------------------------------
    @app.get("/v1/galleries/{gallery}/export", tags=["galleries"], summary="NDJSON: a header with the encoder tag, "
             "then one embedding per line", responses={200: {"content": {"application/x-ndjson": {}}},
                                                       **problems(403, 404, 422)})
    async def export(key: Caller, gallery: GalleryName) -> Response:
        allow(key, "write", gallery)
        body = await service.io(lambda: b"".join(service.export_lines(gallery)))
        return Response(body, media_type="application/x-ndjson",
                        headers={"Content-Disposition": f'attachment; filename="{gallery}.ndjson"'})

    @app.post("/v1/galleries/{gallery}/import", tags=["galleries"], summary="Add the embeddings of an export "
              "(refused if another encoder made them)", responses=problems(403, 404, 409, 415, 422))
    async def import_(key: Caller, gallery: GalleryName, request: Request) -> Any:
        allow(key, "write", gallery)
        ctype = request.headers.get("content-type", "")
        if not ctype.lower().startswith(("application/x-ndjson", "application/jsonl", "text/plain")):
            raise Problem("unsupported-media-type", f"send application/x-ndjson (the body of GET .../export), not {ctype!r}")
        body = await request.body()
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise Problem("invalid-request", "the body is not UTF-8 text") from None
        return await service.infer(service.import_lines, gallery, body)

    # web page and docs --------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        return FileResponse(str(STATIC / "docs.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app
