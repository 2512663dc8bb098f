"""An index of the boundaries on disk: written once, read by every serving process.

A `Locator` is numpy arrays and the units' codes and names. `save` writes each array as
a .npy file and the strings as one UTF-8 blob with offsets, then a manifest last, into a
fresh directory that is renamed into place (a reader sees a whole snapshot or none).
`load` maps the files read-only (numpy's mmap): the pages live in the operating system's
page cache, shared by every process on the machine that loads the same snapshot, and a
process starts answering as soon as the manifest is read, not after a rebuild.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from geo.locate.index import LevelIndex
from geo.locate.locator import Locator, Units
from geo.units import levels

FORMAT = 1
MANIFEST = "manifest.json"
_INDEX_ARRAYS = ("code_rank", "bbox", "edge_ptr", "ex0", "ey0", "ex1", "ey1", "labels", "cand_ptr", "cand")
_INDEX_SCALARS = ("n", "x0", "y0", "sx", "sy", "nx", "ny", "cell_m", "snap_m")


class Strings(Sequence[str]):
    """Many strings as one UTF-8 blob and their offsets: one object, not a million."""

    def __init__(self, blob: np.ndarray, offsets: np.ndarray) -> None:
        self.blob = blob
        self.offsets = offsets

    @classmethod
    def of(cls, values: Sequence[str]) -> Strings:
        encoded = [v.encode("utf-8") for v in values]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        return cls(np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return bytes(self.blob[int(self.offsets[i]):int(self.offsets[i + 1])]).decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        return (self[i] for i in range(len(self)))


def save(locator: Locator, folder: Path, meta: dict[str, Any]) -> Path:
    """Write `locator` to `folder` (which must not exist yet), with `meta` in its manifest."""
    folder = Path(folder)
    partial = folder.with_name(folder.name + f".partial-{os.getpid()}")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    arrays: dict[str, np.ndarray] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for level in levels.LEVELS:
        units = locator.units[level]
        arrays[f"{level}.ids"] = units.ids
        arrays[f"{level}.versions"] = units.versions
        order = units.id_order if units.id_order is not None else np.argsort(units.ids, kind="stable")
        arrays[f"{level}.id_order"] = order
        for name, values in (("codes", units.codes), ("names", units.names)):
            strings = values if isinstance(values, Strings) else Strings.of(values)
            arrays[f"{level}.{name}.blob"] = strings.blob
            arrays[f"{level}.{name}.offsets"] = strings.offsets
        for parent, ids in units.chain.items():
            arrays[f"{level}.chain.{parent}"] = ids
            arrays[f"{level}.parent.{parent}"] = locator._parent_index[(level, parent)]
        index = locator.indexes[level]
        for name in _INDEX_ARRAYS:
            arrays[f"{level}.index.{name}"] = getattr(index, name)
        scalars[level] = {name: getattr(index, name) for name in _INDEX_SCALARS}
    for name, array in arrays.items():
        np.save(partial / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
    manifest = {"format": FORMAT, "generation": locator.generation, "levels": scalars,
                "arrays": sorted(arrays), **meta}
    (partial / MANIFEST).write_text(json.dumps(manifest, default=float), encoding="utf-8")
    partial.rename(folder)
    return folder


def manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of a whole snapshot in `folder` (None: none there, or another format)."""
    try:
        data: dict[str, Any] = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if data.get("format") == FORMAT else None


def load(folder: Path) -> Locator:
    """The Locator saved in `folder`, its arrays mapped read-only from the files."""
    folder = Path(folder)
    info = manifest(folder)
    if info is None:
        raise FileNotFoundError(f"no index snapshot in {folder}")

    def array(name: str) -> np.ndarray:
        loaded: np.ndarray = np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)
        return loaded

    units: dict[str, Units] = {}
    indexes: dict[str, LevelIndex] = {}
    parent_index: dict[tuple[str, str], np.ndarray] = {}
    for level in levels.LEVELS:
        parents = levels.ancestors(level)
        units[level] = Units(
            ids=array(f"{level}.ids"),
            codes=Strings(array(f"{level}.codes.blob"), array(f"{level}.codes.offsets")),
            names=Strings(array(f"{level}.names.blob"), array(f"{level}.names.offsets")),
            versions=array(f"{level}.versions"),
            chain={p: array(f"{level}.chain.{p}") for p in parents},
            id_order=array(f"{level}.id_order"),
        )
        for p in parents:
            parent_index[(level, p)] = array(f"{level}.parent.{p}")
        fields = {name: array(f"{level}.index.{name}") for name in _INDEX_ARRAYS}
        scalars = info["levels"][level]
        index = LevelIndex(level, int(scalars["n"]), fields["code_rank"], fields["bbox"], fields["edge_ptr"],
                           fields["ex0"], fields["ey0"], fields["ex1"], fields["ey1"])
        for name in ("x0", "y0", "sx", "sy", "cell_m", "snap_m"):
            setattr(index, name, float(scalars[name]))
        index.nx, index.ny = int(scalars["nx"]), int(scalars["ny"])
        index.labels, index.cand_ptr, index.cand = fields["labels"], fields["cand_ptr"], fields["cand"]
        indexes[level] = index
    generation = info.get("generation")
    return Locator(units, indexes, parent_index, None if generation is None else int(generation))
