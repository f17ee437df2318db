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
        # Two single-threaded processes use two cores better than one process with two threads
        # (small matrices). Records are dealt to them alternately, so long texts, which cluster
        # by source, are shared evenly; the parts are merged back into the file's order.
        parts = [records[0::2], records[1::2]]
        procs = []
        env = {**os.environ, "RAYON_NUM_THREADS": "1"}
        for k, part in enumerate(parts):
            payload = "".join(json.dumps(r["text"]) + "\n" for r in part).encode()
            lines = pathlib.Path(f"{floats}.{k}.lines").open("wb")
            proc = subprocess.Popen([str(EMBED), str(ENCODER), f"{floats}.{k}"], stdin=subprocess.PIPE, stdout=lines, env=env)
            procs.append((proc, payload, len(part)))
        for proc, payload, _ in procs:
            threading.Thread(target=_feed, args=(proc, payload), daemon=True).start()
        per_part: list[list[np.ndarray]] = []
        for k, (proc, _, expected) in enumerate(procs):
            code = proc.wait()
            lines = pathlib.Path(f"{floats}.{k}.lines").read_text().splitlines()
            if code != 0 or len(lines) != expected:
                raise SystemExit(f"embed failed or returned {len(lines)} lines for {expected} texts")
            sizes = [json.loads(line)["windows"] for line in lines]
            matrix = np.fromfile(f"{floats}.{k}", dtype="<f4").reshape(-1, DIM)
            if matrix.shape[0] != sum(sizes):
                raise SystemExit(f"embed part {k} wrote {matrix.shape[0]} windows, its lines say {sum(sizes)}")
            offsets = np.cumsum([0, *sizes])
            per_part.append([matrix[offsets[i] : offsets[i + 1]] for i in range(len(sizes))])
        windows: list[int] = []
        with floats.open("wb") as out:
            for i in range(len(records)):
                block = per_part[i % 2][i // 2]
                out.write(block.astype("<f4").tobytes())
                windows.append(int(block.shape[0]))
        for k in range(len(parts)):
            pathlib.Path(f"{floats}.{k}").unlink()
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
