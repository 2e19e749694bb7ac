"""The steps' losses and right answers kept where they were computed, read back many steps at a time.

`loss.item()` after every step makes the host wait for the GPU every step; on a small network that wait is most
of the step (issue 4 measured the Trainer Python-bound on an H100). In the deferred mode the Trainer queues each
step's figures here instead (a few tensor operations, no wait) and reads them back in one go every few steps,
when a consumer asks, and at every epoch end; the divergence check runs on what was read.

With several processes each step's figures are summed over the processes as they are queued (an asynchronous
all_reduce that every process issues in the same order, right after its step), so every process reads the same
figures of the global batch, and a read waits on collectives already under way: any process may read at any time
(rank 0 reads for its recorder between batches) without the others having to take part.
"""
from __future__ import annotations

import torch


class StepLedger:
    """Each queued step's mean loss over the global batch, its right answers and its examples."""

    def __init__(self, world_size: int = 1) -> None:
        self.world_size = world_size
        self._figures: list[torch.Tensor] = []  # per step: [loss * local examples, local right answers]
        self._works: list = []  # the all_reduce of each step's figures (several processes)
        self._examples: list[int] = []  # examples of each step over all the processes

    def __len__(self) -> int:
        return len(self._figures)

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        """Queue a step's figures (no host sync)."""
        n = y.shape[0]
        figures = torch.stack([loss.detach().float() * n, (logits.detach().argmax(1) == y).sum().float()])
        if self.world_size > 1:
            self._works.append(torch.distributed.all_reduce(figures, async_op=True))
        self._figures.append(figures)
        self._examples.append(n * self.world_size)

    def read(self) -> list[tuple[float, int, int]]:
        """(mean loss, right answers, examples) of each step queued since the last read, oldest first; forgets them."""
        if not self._figures:
            return []
        for work in self._works:
            work.wait()
        values = torch.stack(self._figures).cpu().tolist()  # the one host sync
        examples = self._examples
        self._figures, self._works, self._examples = [], [], []
        return [(total / n, int(round(hits)), n) for (total, hits), n in zip(values, examples)]

    def clear(self) -> None:
        """Forget the queued steps (a failed run went back to its good state); collectives under way end first."""
        for work in self._works:
            work.wait()
        self._figures, self._works, self._examples = [], [], []
