"""Which stages of an experiment are done, keyed by a digest of everything they read.

`<out>/stages.json` maps each stage (`build/sdft`, `train/vanilla`, `eval/sdft/math`, ...) to the
digest of its inputs: its resolved options, the seed model's fingerprint and the content of the
files it reads (so a rebuilt training set invalidates the run trained on it, and that run's
evaluations). A stage whose digest is recorded and whose outputs exist is skipped; anything else is
(re)run. The log is rewritten atomically after each stage, so a killed experiment loses at most the
stage in progress, and that stage's generations are in the completion cache.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from selfdistill.io import write_json_atomic

LOG_FILE = "stages.json"


def digest(*parts) -> str:
    """A short hex digest of JSON-serialisable parts (paths and other objects as strings)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def content_digest(source: str) -> str:
    """What a dataset reference holds: a file's bytes, a folder's files, else (recipe, Hub id) the name."""
    path = Path(source)
    if path.is_file():
        return _file_digest(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return digest([(str(p.relative_to(path)), _file_digest(p)) for p in files])
    return f"name:{source}"


def _file_digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            hasher.update(block)
    return hasher.hexdigest()[:20]


class StageLog:
    def __init__(self, out: Path):
        self.path = out / LOG_FILE
        self.stages: dict[str, dict] = {}
        if self.path.is_file():
            self.stages = json.loads(self.path.read_text(encoding="utf-8"))

    def done(self, name: str, key: str, *outputs: Path) -> bool:
        entry = self.stages.get(name)
        return bool(entry and entry.get("key") == key and entry.get("finished") and all(p.exists() for p in outputs))

    def started_with(self, name: str, key: str) -> bool:
        """The stage began with these inputs and did not finish (a resumable training run)."""
        entry = self.stages.get(name)
        return bool(entry and entry.get("key") == key and not entry.get("finished"))

    def start(self, name: str, key: str) -> None:
        self.stages[name] = {"key": key, "finished": None}
        write_json_atomic(self.stages, self.path)

    def finish(self, name: str, key: str, seconds: float) -> None:
        self.stages[name] = {"key": key, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "seconds": round(seconds, 1)}
        write_json_atomic(self.stages, self.path)
