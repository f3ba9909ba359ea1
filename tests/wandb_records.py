"""Read back what W&B wrote for an offline run, without the network or wandb's own reader.

An offline run's ``run-<id>.wandb`` file is a 7-byte header (``:W&B``, magic 0xBEE1, a
version byte) followed by LevelDB's log format: 32 KiB blocks of chunks, each chunk a
7-byte header (masked CRC32C: 4 bytes, length: 2 bytes little-endian, type: 1 byte) and its
payload; type 1 is a whole record, 2/3/4 the first/middle/last piece of a long one. Each
record is a ``wandb_internal_pb2.Record`` protobuf. Tests read the run's config and history
from it, so what they check is what ``wandb sync`` would upload.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def raw_records(path: Path) -> list[bytes]:
    """The payloads of every record in a ``.wandb`` file (the CRCs are not checked)."""
    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B transaction log")
    records, pending, pos = [], b"", 7
    while pos + CHUNK_HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < CHUNK_HEADER:  # block trailer: zero padding
            pos += left_in_block
            continue
        length, kind = struct.unpack_from("<HB", data, pos + 4)
        payload = data[pos + CHUNK_HEADER : pos + CHUNK_HEADER + length]
        pos += CHUNK_HEADER + length
        if kind == FULL:
            records.append(payload)
        elif kind == FIRST:
            pending = payload
        elif kind == MIDDLE:
            pending += payload
        elif kind == LAST:
            records.append(pending + payload)
            pending = b""
        elif kind == 0 and length == 0:  # zero padding at the end of a block
            pos += BLOCK - pos % BLOCK if pos % BLOCK else 0
    return records


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def read_offline_run(run_dir: Path) -> dict:
    """``{"config": {key: value}, "history": [ {key: value}, ... ], "files": [...]}`` of
    one offline run folder (``<save_dir>/wandb/offline-run-*``)."""
    (log,) = run_dir.glob("run-*.wandb")
    config: dict = {}
    history: list[dict] = []
    artifacts: list[str] = []
    for payload in raw_records(log):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "config":
            for item in record.config.update:
                config[_key(item)] = json.loads(item.value_json)
        elif kind == "history":
            history.append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "artifact":
            artifacts.append(record.artifact.name)
    files = sorted(str(p.relative_to(run_dir / "files")) for p in (run_dir / "files").rglob("*"))
    return {"config": config, "history": history, "artifacts": artifacts, "files": files}
