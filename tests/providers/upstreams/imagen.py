"""A fake Google Imagen `:predict` endpoint, on the Gemini API's path and on Vertex AI's, and
a fake OAuth token endpoint that checks service-account JWT assertions."""

from __future__ import annotations

import base64
import itertools
import json
import time
from typing import Any
from urllib.parse import parse_qs

import jwt

from tests.providers.upstreams.images import image_bytes, size_of
from tests.providers.upstreams.server import FakeUpstream, Received, Reply

GEMINI_PATH = "/v1beta/models/{model}:predict"
VERTEX_PATH = "/v1/projects/{project}/locations/{region}/publishers/google/models/{model}:predict"
TOKEN_PATH = "/token"
GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASPECT_SIZES = {
    "1:1": (64, 64),
    "3:4": (48, 64),
    "4:3": (64, 48),
    "9:16": (36, 64),
    "16:9": (64, 36),
}


def google_error(status: int, message: str, code_name: str, **headers: str) -> Reply:
    """Google's documented error shape."""
    return Reply.json(
        {"error": {"code": status, "message": message, "status": code_name}}, status, **headers
    )


class FakeImagen(FakeUpstream):
    def __init__(
        self,
        *,
        api_key: str,
        project: str = "pixel-project",
        region: str = "europe-west4",
        access_token: str = "ya29.test-token",
        account_email: str = "pixelgate@pixel-project.iam.gserviceaccount.com",
        public_key: Any = None,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.project = project
        self.region = region
        self.access_token = access_token
        self.account_email = account_email
        self.public_key = public_key
        self.tokens_issued = 0
        self.made: list[bytes] = []
        self._counter = itertools.count()

    def gemini_path(self, model: str) -> str:
        return GEMINI_PATH.format(model=model)

    def vertex_path(self, model: str) -> str:
        return VERTEX_PATH.format(project=self.project, region=self.region, model=model)

    def handle(self, request: Received) -> Reply:
        if request.path == TOKEN_PATH:
            return self._token(request)
        if request.method != "POST" or not request.path.endswith(":predict"):
            return google_error(404, "Not found", "NOT_FOUND")
        if request.path.startswith("/v1beta/models/"):
            if request.headers.get("x-goog-api-key") != self.api_key:
                return google_error(
                    400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT"
                )
        elif request.path.startswith(f"/v1/projects/{self.project}/locations/{self.region}/"):
            if request.headers.get("authorization") != f"Bearer {self.access_token}":
                return google_error(
                    401, "Request had invalid authentication credentials.", "UNAUTHENTICATED"
                )
        else:
            return google_error(404, "Not found", "NOT_FOUND")
        body = request.json
        if not isinstance(body, dict) or not isinstance(body.get("instances"), list):
            return google_error(400, "Invalid JSON payload: instances", "INVALID_ARGUMENT")
        [instance] = body["instances"]
        parameters: dict[str, Any] = body.get("parameters", {})
        if "seed" in parameters and parameters.get("addWatermark", True):
            return google_error(
                400, "Seed is not supported when watermark is enabled.", "INVALID_ARGUMENT"
            )
        fmt = parameters.get("outputOptions", {}).get("mimeType", "image/png").split("/")[1]
        width, height = ASPECT_SIZES[parameters.get("aspectRatio", "1:1")]
        for reference in instance.get("referenceImages", []):
            if reference["referenceType"] == "REFERENCE_TYPE_RAW":
                raw = base64.b64decode(reference["referenceImage"]["bytesBase64Encoded"])
                width, height = size_of(raw)  # an edit keeps the input's size
        predictions = []
        for _ in range(int(parameters.get("sampleCount", 1))):
            index = next(self._counter)
            data = image_bytes(width, height, fmt, color=(index % 256, 120, 60))
            self.made.append(data)
            predictions.append(
                {"bytesBase64Encoded": base64.b64encode(data).decode(), "mimeType": f"image/{fmt}"}
            )
        return Reply(200, json.dumps({"predictions": predictions}).encode(),
                     {"content-type": "application/json"})  # fmt: skip

    def _token(self, request: Received) -> Reply:
        form = parse_qs(request.body.decode())
        if request.content_type != "application/x-www-form-urlencoded" or form.get(
            "grant_type"
        ) != [GRANT]:
            return Reply.json({"error": "unsupported_grant_type"}, 400)
        try:
            claims = jwt.decode(
                form["assertion"][0],
                self.public_key,
                algorithms=["RS256"],
                audience=self.url + TOKEN_PATH,
            )
        except jwt.PyJWTError as exc:
            return Reply.json({"error": "invalid_grant", "error_description": str(exc)}, 400)
        if claims.get("iss") != self.account_email or "cloud-platform" not in claims["scope"]:
            return Reply.json({"error": "invalid_grant", "error_description": "bad claims"}, 400)
        if not claims["iat"] <= time.time() + 5 < claims["exp"]:
            return Reply.json({"error": "invalid_grant", "error_description": "expired"}, 400)
        self.tokens_issued += 1
        return Reply.json(
            {"access_token": self.access_token, "expires_in": 3599, "token_type": "Bearer"}
        )
