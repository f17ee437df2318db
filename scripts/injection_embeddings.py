"""Window embeddings of the injection data from the filter's transformer layer, cached.

`embeddings(records)` runs the filter's `embed` example (the same Rust code that scores at run
time) over every text once and keeps the result in `target/injection-data/embeddings/`, keyed by
the digest of the texts and of the encoder's weights, so the evaluation and the head's training
read the same vectors.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import subprocess

import numpy as np

from injection_common import DATA, ROOT

ENCODER = ROOT / "target" / "encoder" / "all-MiniLM-L6-v2"
EMBED = ROOT / "target" / "release" / "examples" / "embed"
DIM = 384


def embeddings(records: list[dict]) -> list[np.ndarray]:
    """Per record, its windows' embeddings (`[windows, 384]`, unit length)."""
    digest = hashlib.sha256()
    digest.update((ENCODER / "model.safetensors").read_bytes()[:1 << 20])
    for r in records:
        digest.update(r["text"].encode())
        digest.update(b"\0")
    key = digest.hexdigest()[:16]
    cache = DATA / "embeddings"
    cache.mkdir(parents=True, exist_ok=True)
    floats, counts = cache / f"{key}.f32", cache / f"{key}.json"
    if not counts.exists():
        payload = "".join(json.dumps(r["text"]) + "\n" for r in records).encode()
        out = subprocess.run(
            [str(EMBED), str(ENCODER), str(floats)], input=payload, capture_output=True, check=True
        ).stdout.decode().splitlines()
        if len(out) != len(records):
            raise SystemExit(f"embed returned {len(out)} lines for {len(records)} texts")
        counts.write_text(json.dumps([json.loads(line)["windows"] for line in out]))
    n = json.loads(counts.read_text())
    matrix = np.fromfile(floats, dtype="<f4").reshape(-1, DIM)
    if matrix.shape[0] != sum(n):
        raise SystemExit(f"{floats} holds {matrix.shape[0]} windows, the index {sum(n)}")
    out, at = [], 0
    for k in n:
        out.append(matrix[at : at + k])
        at += k
    return out
