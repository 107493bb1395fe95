"""PK sampling for identity + triplet losses: each batch holds P identities × K instances."""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

__all__ = ["PKSampler"]


class PKSampler(Sampler[list]):
    """Batch sampler of ``p`` distinct identities × ``k`` dataset indices each.

    ``pids`` is the identity of every dataset index. Per epoch each identity's indices are
    shuffled and cut into groups of ``k`` (an identity with fewer than ``k`` indices is
    completed by sampling with replacement; a remainder shorter than ``k`` is completed from
    the identity's other indices); a batch takes one group from each of ``p`` identities drawn
    at random among those with groups left. When fewer than ``p`` identities have groups left,
    new groups are dealt, so every epoch has exactly ``len(self)`` batches:
    ``max(1, len(pids) // (p * k))`` unless ``num_batches`` is given.

    Deterministic per ``(seed, epoch)``; call :meth:`set_epoch` each epoch. With
    ``tag_repeats`` each element is an ``(index, repeat)`` pair, ``repeat`` counting earlier
    copies of the same index in the batch (for :class:`MultimodalTrainSet`, so that copies get
    different augmentations); otherwise plain indices.
    """

    def __init__(
        self,
        pids: Sequence[Hashable],
        p: int,
        k: int,
        seed: int = 0,
        *,
        num_batches: int | None = None,
        tag_repeats: bool = False,
    ) -> None:
        if p < 1 or k < 1:
            raise ValueError(f"p and k must be >= 1, got p={p}, k={k}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        groups: dict[Hashable, list[int]] = {}
        for index, pid in enumerate(pids):
            groups.setdefault(pid, []).append(index)
        if len(groups) < p:
            raise ValueError(f"PK sampling needs at least p={p} identities, found {len(groups)}")
        self.p, self.k, self.seed = int(p), int(k), int(seed)
        self.tag_repeats = tag_repeats
        self.epoch = 0
        self._ids = list(groups)
        self._indices = [np.asarray(groups[i], dtype=np.int64) for i in self._ids]
        n = len(pids) // (self.p * self.k)
        self.num_batches = max(1, n) if num_batches is None else int(num_batches)
        if self.num_batches < 1:
            raise ValueError(f"num_batches must be >= 1, got {num_batches}")

    def set_epoch(self, epoch: int) -> None:
        """Select the random stream of ``epoch``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_batches

    def _deal(self, rng: np.random.Generator) -> list[list[np.ndarray]]:
        """A fresh pass: for each identity, its indices shuffled into groups of k."""
        k = self.k
        chunks: list[list[np.ndarray]] = []
        for idx in self._indices:
            if len(idx) < k:
                order = np.concatenate([rng.permutation(idx), rng.choice(idx, k - len(idx))])
                chunks.append([order])
                continue
            order = rng.permutation(idx)
            rest = len(order) % k
            if rest:  # complete the last group from this identity's other indices
                extra = rng.choice(order[: len(order) - rest], k - rest, replace=False)
                order = np.concatenate([order, extra])
            chunks.append(list(order.reshape(-1, k)))
        return chunks

    def __iter__(self) -> Iterator[list]:
        rng = np.random.default_rng([self.seed, self.epoch])
        chunks = self._deal(rng)
        for _ in range(self.num_batches):
            alive = [i for i, c in enumerate(chunks) if c]
            if len(alive) < self.p:
                chunks = self._deal(rng)
                alive = list(range(len(chunks)))
            chosen = rng.choice(alive, self.p, replace=False)
            batch = [int(j) for i in chosen for j in chunks[i].pop()]
            if self.tag_repeats:
                seen: dict[int, int] = {}
                tagged = []
                for j in batch:
                    tagged.append((j, seen.get(j, 0)))
                    seen[j] = seen.get(j, 0) + 1
                yield tagged
            else:
                yield batch
