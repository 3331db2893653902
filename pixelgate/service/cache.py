"""The result cache: a request with an explicit seed and the same model, prompt, options and
input images gets the stored result at once. Hits are per tenant unless the operator shares
them."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select

from pixelgate.db import Database
from pixelgate.db.tables import Job
from pixelgate.service.files import FileService


def cache_key(*, task: str, model: str, options: dict[str, Any], inputs: dict[str, Any]) -> str:
    """A digest of what determines the pixels. Inputs count by their content (blob key)."""
    canonical = json.dumps(
        {
            "task": task,
            "model": model,
            "options": options,
            "inputs": {
                role: stored["blob_key"]
                for role, stored in inputs.items()
                if isinstance(stored, dict) and "blob_key" in stored
            },
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class ResultCache:
    def __init__(self, db: Database, files: FileService, *, shared: bool) -> None:
        self._db = db
        self._files = files
        self.shared = shared

    def lookup(self, tenant_id: str, key: str) -> Job | None:
        """The newest succeeded job with this key whose images are all still stored."""
        query = (
            select(Job)
            .where(Job.cache_key == key, Job.status == "succeeded")
            .order_by(Job.finished_at.desc())
            .limit(5)
        )
        if not self.shared:
            query = query.where(Job.tenant_id == tenant_id)
        with self._db.session() as session:
            candidates = list(session.scalars(query))
        for job in candidates:
            file_ids = [item["file_id"] for item in (job.result or {}).get("images", [])]
            if file_ids and len(self._files.get_many(job.tenant_id, file_ids)) == len(file_ids):
                return job
        return None
