"""Handing out review work: the pending trajectories split among annotators, each share a store of its own.

Each trajectory goes to exactly ``overlap`` annotators, and the shares differ by at most one: after a
(seeded) shuffle, the k-th trajectory goes to annotators ``(k + j) mod n`` for ``j < overlap``. With an
overlap above one, several annotators see each trajectory, which is what agreement is measured on and
what the decision rule (``store.decisions``) settles once their stores are merged back (``store.merge``).
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

from .db import Store
from .errors import CuratorError
from .formats.files import cannot_write
from .formats.sqlite import export_trajectories


def assignable(store: Store) -> list[str]:
    """The trajectories to hand out: those with no decision yet, except the ones still being written."""
    running = set(store.trajectory_ids(status="running"))
    return [i for i in store.trajectory_ids(review="pending") if i not in running]


def split(trajectory_ids: Sequence[str], annotators: Sequence[str], overlap: int,
          seed: int | None = None) -> dict[str, list[str]]:
    """Each annotator's share, in the store's order; ``annotators`` are distinct and ``1 <= overlap <= len``."""
    order = list(trajectory_ids)
    random.Random(seed).shuffle(order)
    given = {i: {annotators[(k + j) % len(annotators)] for j in range(overlap)} for k, i in enumerate(order)}
    return {name: [i for i in trajectory_ids if name in given[i]] for name in annotators}


def write_shares(store: Store, folder: Path, shares: dict[str, list[str]]) -> dict[str, Path]:
    """``folder/<annotator>.db`` for each share, a self-contained store (``formats.sqlite``).

    A file already there is refused before anything is written: an annotator may be reviewing in it.
    A failure part-way removes the files this call wrote.
    """
    paths = {name: folder / f"{name}.db" for name in shares}
    for path in paths.values():
        if path.exists():
            raise CuratorError(f"{path}: already exists (an annotator may be working in it); merge it and move it "
                               "away first")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cannot_write(folder, exc) from None
    written: list[Path] = []
    try:
        for name, path in paths.items():
            export_trajectories(store, path, shares[name])
            written.append(path)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return paths
