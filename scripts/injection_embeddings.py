"""Window embeddings of the injection data from the filter's transformer layer, cached.

`embeddings(path)` runs the filter's `embed` example (the same Rust code that scores at run
time) over every text of a data file (`dev.jsonl`, `heldout.jsonl`) once and keeps the result in
`target/injection-data/embeddings/`, keyed by the digest of the file and of the encoder's
weights, so the evaluation and the head's training read the same vectors.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import subprocess
import threading

import numpy as np

from injection_common import DATA, ROOT, load

ENCODER = ROOT / "target" / "encoder" / "all-MiniLM-L6-v2"
EMBED = ROOT / "target" / "release" / "examples" / "embed"
DIM = 384


def _feed(proc: subprocess.Popen, payload: bytes) -> None:
    proc.stdin.write(payload)
    proc.stdin.close()


def embeddings(path: pathlib.Path) -> list[np.ndarray]:
    """Per record of the data file, its windows' embeddings (`[windows, 384]`, unit length)."""
    records = load(path)
    digest = hashlib.sha256()
    digest.update((ENCODER / "model.safetensors").read_bytes())
    digest.update(path.read_bytes())
    key = f"{path.stem}-{digest.hexdigest()[:16]}"
    cache = DATA / "embeddings"
    cache.mkdir(parents=True, exist_ok=True)
    floats, counts = cache / f"{key}.f32", cache / f"{key}.json"
    if not counts.exists():
        # Two single-threaded processes, each on a contiguous half, use two cores better than
        # one process with two threads (small matrices); the halves are joined in order.
        halves = [records[: len(records) // 2], records[len(records) // 2 :]]
        procs = []
        env = {**os.environ, "RAYON_NUM_THREADS": "1"}
        for k, part in enumerate(halves):
            payload = "".join(json.dumps(r["text"]) + "\n" for r in part).encode()
            lines = pathlib.Path(f"{floats}.{k}.lines").open("wb")
            proc = subprocess.Popen([str(EMBED), str(ENCODER), f"{floats}.{k}"], stdin=subprocess.PIPE, stdout=lines, env=env)
            procs.append((proc, payload, len(part)))
        windows: list[int] = []
        for proc, payload, expected in procs:
            threading.Thread(target=_feed, args=(proc, payload), daemon=True).start()
        for k, (proc, _, expected) in enumerate(procs):
            code = proc.wait()
            lines = pathlib.Path(f"{floats}.{k}.lines").read_text().splitlines()
            if code != 0 or len(lines) != expected:
                raise SystemExit(f"embed failed or returned {len(lines)} lines for {expected} texts")
            windows += [json.loads(line)["windows"] for line in lines]
        with floats.open("wb") as out:
            for k in range(len(halves)):
                part = pathlib.Path(f"{floats}.{k}")
                out.write(part.read_bytes())
                part.unlink()
                pathlib.Path(f"{floats}.{k}.lines").unlink()
        counts.write_text(json.dumps(windows))
    n = json.loads(counts.read_text())
    matrix = np.fromfile(floats, dtype="<f4").reshape(-1, DIM)
    if matrix.shape[0] != sum(n):
        raise SystemExit(f"{floats} holds {matrix.shape[0]} windows, the index {sum(n)}")
    out, at = [], 0
    for k in n:
        out.append(matrix[at : at + k])
        at += k
    return out
