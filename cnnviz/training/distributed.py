"""Training on several processes with DistributedDataParallel: who this process is, its shard of an epoch,
what the processes agree on, and `cnnviz train --nproc N` (which runs torchrun).

`torchrun --nproc_per_node N -m cnnviz train ...` starts N processes, each with RANK, WORLD_SIZE, LOCAL_RANK
and MASTER_ADDR/MASTER_PORT in its environment (``--nnodes`` and the rendezvous options spread them over
machines). Each process joins the group (gloo on CPUs, NCCL on GPUs, one GPU per process by LOCAL_RANK),
draws the same shuffled order of every epoch from the same seeded generator and takes its own shard of it
(:func:`shard`: DistributedSampler's split, padded), trains on batches of ``batch_size / world_size``
examples, and DDP averages the gradients: the global batch is the recipe's batch size, the very examples a
single process would put in that batch. Rank 0 alone writes the run folder and prints; the other ranks write
nothing (errors aside).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import sys

import torch

from cnnviz.errors import CnnvizError, ConfigError

BACKENDS = {"cuda": "nccl", "cpu": "gloo"}
TIMEOUT = datetime.timedelta(minutes=10)  # a process that waits this long on the others gives up


class PeerFailed(CnnvizError):
    """Another process of the group failed (it says why); this one ends quietly with the same exit code."""

    quiet = True


@dataclasses.dataclass(frozen=True)
class Distributed:
    """This process's place in a group of training processes."""

    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes the run folder and prints."""
        return self.rank == 0

    def agree(self, ok: bool) -> bool:
        """True when every process says `ok` (a collective: every process must call it at the same point)."""
        flag = torch.tensor([1.0 if ok else 0.0], device=self.device())
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
        return bool(flag.item() > 0)

    def any(self, wanted: bool) -> bool:
        """True when some process says `wanted` (a collective, as :meth:`agree`)."""
        return not self.agree(not wanted)

    @contextlib.contextmanager
    def together(self):
        """Wrap every process's set-up: when it fails in one process, all of them end here. The one that failed
        raises its error, the others end quietly (rank 0 says why), or say their own error when rank 0 had none.
        A collective: every process must reach the end of the block."""
        try:
            yield self
        except BaseException as exc:
            failed = self._failed_ranks(True)
            if isinstance(exc, CnnvizError) and self.rank:
                if 0 in failed:
                    raise PeerFailed(str(exc)) from None
                raise CnnvizError(f"process {self.rank}: {exc}") from None
            raise
        failed = self._failed_ranks(False)
        if failed:
            raise PeerFailed(f"process {failed[0]} failed")

    def _failed_ranks(self, failed: bool) -> list[int]:
        flags = torch.zeros(self.world_size, device=self.device())
        flags[self.rank] = 1.0 if failed else 0.0
        torch.distributed.all_reduce(flags)
        return [rank for rank, flag in enumerate(flags.tolist()) if flag > 0]

    def device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")

    def close(self) -> None:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def environment_world_size() -> int:
    """WORLD_SIZE as torchrun sets it (1 when this process was not started by torchrun)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def environment_rank() -> int:
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def is_secondary_process() -> bool:
    """True in a process of a group that is not rank 0 (it writes nothing and prints only its own errors)."""
    return environment_world_size() > 1 and environment_rank() != 0


def start(device: str) -> Distributed | None:
    """Join the group torchrun started this process in (None when it is alone: no torchrun, or one process).
    `device` is the recipe's ('auto', 'cpu', 'cuda'): NCCL when it means a GPU, else gloo."""
    world = environment_world_size()
    if world == 1:
        return None
    if not torch.distributed.is_available():
        raise ConfigError("this torch build has no torch.distributed; train with one process")
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise ConfigError(f"WORLD_SIZE is {world} but {name} is not set; start the processes with torchrun "
                              "(or cnnviz train --nproc N)")
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device == "mps":
        raise ConfigError("several processes train on CPUs (gloo) or CUDA GPUs (NCCL), not on Apple's MPS")
    rank, local_rank = environment_rank(), int(os.environ["LOCAL_RANK"])
    if cuda:
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' was asked for but no CUDA GPU is available; use 'cpu' or 'auto'")
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"process {rank} wants GPU {local_rank} but this machine has "
                              f"{torch.cuda.device_count()}; start at most one process per GPU")
        torch.cuda.set_device(local_rank)
    backend = "nccl" if cuda else "gloo"
    torch.distributed.init_process_group(backend, timeout=TIMEOUT)
    return Distributed(rank, world, local_rank, backend)


def local_batch_size(batch_size: int, world_size: int) -> int:
    """Each process's batch: the recipe's (global) batch size split evenly; refused when it does not divide."""
    if batch_size % world_size:
        raise ConfigError(f"batch size {batch_size} does not split evenly over {world_size} processes (each "
                          f"trains on batch size / processes); choose a multiple of {world_size}")
    return batch_size // world_size


def shard(order: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This process's share of an epoch's order, as DistributedSampler (drop_last=False) splits it: the order
    padded with its own start to a multiple of `world_size`, then every `world_size`-th element from `rank`.
    The shards are disjoint but for the padding (fewer than `world_size` examples seen twice) and together
    hold every example; batch j of every shard together is batch j of the whole order at the global size."""
    n = len(order)
    total = -(-n // world_size) * world_size
    if total > n:
        order = torch.cat([order, order.repeat(-(-(total - n) // n))[:total - n]])
    return order[rank::world_size]


def shard_length(n: int, world_size: int) -> int:
    """The length of every process's shard of `n` examples."""
    return -(-n // world_size)


def rank_seed(seed: int, rank: int, step: int) -> int:
    """The seed of rank `rank`'s own random stream (dropout) from step `step`: rank 0 keeps the run's stream
    (saved with the run), the others draw different masks."""
    return (seed * 1_000_003 + rank * 7_919 + step) % (2**63 - 1)


# -- cnnviz train --nproc N ------------------------------------------------------------------------------------
def launch(nproc: int, argv: list[str]) -> int:
    """Run ``python -m cnnviz ARGV`` in `nproc` processes on this machine, as ``torchrun --standalone
    --nproc_per_node N`` would (torch.distributed.elastic's launcher, a free port on 127.0.0.1), and return rank 0's
    exit code (or the first failed process's). Each process gets ``cores / nproc`` threads unless OMP_NUM_THREADS
    says otherwise. Ctrl+C is handed on to the processes, which stop together at their next check (rank 0 saves
    the run); this one waits for them (30 s at most) and returns 130."""
    import uuid

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    saved = dict(os.environ)  # the launcher hands this process's environment on to the workers
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", max_restarts=0, monitor_interval=0.1,
                          start_method="spawn")
    _quiet_elastic_logs()
    try:
        elastic_launch(config, sys.executable)("-m", "cnnviz", *argv)
    except ChildFailedError as exc:
        failures = exc.failures
        first = failures.get(0) or failures[min(failures)]
        return first.exitcode if first.exitcode > 0 else 128 - first.exitcode  # -N: killed by signal N
    except SignalException as exc:  # Ctrl+C (or a kill): the launcher handed it on to the processes and waited
        return 128 + int(exc.sigval)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return 0


def _quiet_elastic_logs() -> None:
    """The launcher's own log lines (rendezvous, worker groups) are for torchrun's users, not ours."""
    import logging

    for name in list(logging.root.manager.loggerDict):  # each module's logger has its own level (LOGLEVEL)
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def without_option(argv: list[str], name: str) -> list[str]:
    """`argv` without ``--name VALUE`` / ``--name=VALUE`` (what `--nproc` hands on to torchrun's workers)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == name:
            skip = True
            continue
        if arg.startswith(name + "="):
            continue
        out.append(arg)
    return out

