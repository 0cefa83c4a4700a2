"""A minimal OLE compound file writer (MS-CFB version 3), for building Outlook .msg files in tests: no
library on PyPI writes one. Every stream is padded with NULs to the mini-stream cutoff (4096 bytes), so all
live in regular sectors and no mini stream is needed; MAPI string readers strip the trailing NULs."""

from __future__ import annotations

import struct
from pathlib import Path

_SECTOR = 512
_END, _FREE, _FATSECT, _NONE = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD, 0xFFFFFFFF
_CUTOFF = 4096


def _entry(name: str, kind: int, child: int, right: int, start: int, size: int) -> bytes:
    encoded = (name + "\x00").encode("utf-16-le")
    return (
        encoded.ljust(64, b"\x00")
        + struct.pack("<HBBIII", len(encoded), kind, 1, _NONE, right, child)  # black; no left sibling
        + b"\x00" * 16  # CLSID
        + struct.pack("<IQQIQ", 0, 0, 0, start, size)
    )


def write_cfb(path: Path, streams: dict[str, bytes]) -> Path:
    """streams: {"name" or "storage/name": bytes}, one level of storages."""
    tree: dict[str, list[str]] = {"": []}
    for key in streams:
        storage, _, _ = key.rpartition("/")
        if storage and storage not in tree:
            tree[storage] = []
            tree[""].append(storage)
        tree[storage].append(key)
    data = {k: v.ljust(_CUTOFF, b"\x00") for k, v in streams.items()}
    # Sectors: each stream's, then the directory's, then the FAT's.
    chains: list[list[int]] = []
    next_sector = 0
    starts: dict[str, int] = {}
    for key, blob in data.items():
        n = -(-len(blob) // _SECTOR)
        starts[key] = next_sector
        chains.append(list(range(next_sector, next_sector + n)))
        next_sector += n
    # The directory: root, then every storage and stream; siblings chained to the right.
    order = [""] + [k for k in tree if k] + list(data)
    ids = {k: i for i, k in enumerate(order)}
    entries = []
    for key in order:
        siblings = tree[key.rpartition("/")[0]] if key else []
        i = siblings.index(key) if key else -1
        right = ids[siblings[i + 1]] if key and i + 1 < len(siblings) else _NONE
        name = key.rpartition("/")[2] if key else "Root Entry"
        if key == "" or key in tree:
            child = ids[tree[key][0]] if tree[key] else _NONE
            entries.append(_entry(name, 5 if key == "" else 1, child, right, _END if key == "" else 0, 0))
        else:
            entries.append(_entry(name, 2, _NONE, right, starts[key], len(data[key])))
    directory = b"".join(entries)
    directory += b"\x00" * (-len(directory) % _SECTOR)
    dir_start = next_sector
    dir_n = len(directory) // _SECTOR
    chains.append(list(range(dir_start, dir_start + dir_n)))
    next_sector += dir_n
    fat_n = 1
    while (next_sector + fat_n) > fat_n * (_SECTOR // 4):
        fat_n += 1
    fat = [_FREE] * (fat_n * (_SECTOR // 4))
    for chain in chains:
        for a, b in zip(chain, chain[1:] + [_END], strict=True):
            fat[a] = b
    fat_sectors = list(range(next_sector, next_sector + fat_n))
    for s in fat_sectors:
        fat[s] = _FATSECT
    if fat_n > 109:
        raise ValueError("too large for a header-only DIFAT")
    header = (
        bytes.fromhex("D0CF11E0A1B11AE1")
        + b"\x00" * 16
        + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
        + b"\x00" * 6
        + struct.pack("<IIIIIIIII", 0, fat_n, dir_start, 0, _CUTOFF, _END, 0, _END, 0)
        + struct.pack("<109I", *(fat_sectors + [_FREE] * (109 - fat_n)))
    )
    body = b"".join(data.values()) + directory + struct.pack(f"<{len(fat)}I", *fat)
    path.write_bytes(header + body)
    return path


def msg_streams(
    subject: str, sender: str, address: str, to: str, body: str, attachments: list[tuple[str, bytes]]
) -> dict[str, bytes]:
    """An Outlook message's MAPI properties as streams (Unicode strings, PR_ATTACH_DATA_BIN)."""

    def text(value: str) -> bytes:
        return value.encode("utf-16-le")

    streams = {
        "__substg1.0_0037001F": text(subject),
        "__substg1.0_0C1A001F": text(sender),
        "__substg1.0_0C1F001F": text(address),
        "__substg1.0_0E04001F": text(to),
        "__substg1.0_1000001F": text(body),
    }
    for n, (name, blob) in enumerate(attachments):
        storage = f"__attach_version1.0_#{n:08X}"
        streams[f"{storage}/__substg1.0_3707001F"] = text(name)
        streams[f"{storage}/__substg1.0_37010102"] = blob
    return streams
