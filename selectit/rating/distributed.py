"""Rating shards on Ray: a local Ray started for the run, or a cluster.

Each rater gets `ray.replicas` Ray actors (RaterReplica). An actor loads its
rater once and keeps it for every shard it is given, so several replicas of one
rater, and several raters, rate at the same time wherever Ray finds the CPUs or
GPUs they ask for. An actor lost with its worker or node is restarted by Ray
(elsewhere if need be) and the shard it was rating is run again; finished
shards are already in the shard cache, which every node must share. Ratings,
cache keys and tables are the same as in-process rating: the replicas run the
same RaterSession.

Nothing leaves the machine when Ray starts here: usage statistics off, no
dashboard, the node on 127.0.0.1, and a local-provider bootstrap file so that
Ray's start-up does not ask cloud metadata addresses which cloud it is on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from selectit.core.errors import ParamsError, SelectitError
from selectit.core.records import Example
from selectit.core.telemetry import TELEMETRY_OFF
from selectit.rating.embedding import EmbeddingSpec
from selectit.rating.keys import rater_cache
from selectit.rating.placement import gpus_per_replica
from selectit.rating.rate import RaterReport, RaterSession, plan_embeddings
from selectit.rating.settings import RatingSettings, RaySettings
from selectit.rating.shards import ShardCache

log = logging.getLogger(__name__)

NAMESPACE = "selectit"

# Environment for Ray's own processes and for its workers.
QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0", **TELEMETRY_OFF}  # no usage reports
# Only for a Ray started here: its node address is taken as loopback instead of
# being found by opening a socket towards 8.8.8.8 (Ray's switch for single-machine use).
LOCAL_ONLY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
# Environment passed on to workers where it is set here (hub libraries offline, caches).
PASSED_ON = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "HF_DATASETS_OFFLINE", "SELECTIT_CACHE")

# Ray's dashboard reads this file to tell which cloud it runs on and, when it is
# missing, asks 169.254.169.254 and metadata.google.internal (even with usage
# statistics off). A cluster started by `ray up` has one; a local Ray gets this.
BOOTSTRAP_CONFIG = Path("~/ray_bootstrap_config.yaml")
LOCAL_BOOTSTRAP = """\
# Written by selectit before it started a local Ray: a local-provider cluster config, so
# that Ray does not probe cloud metadata addresses. Delete it if you run `ray up` here.
cluster_name: local
provider:
  type: local
  head_ip: 127.0.0.1
"""


class RayError(SelectitError):
    """Ray cannot run the shards as params ask (no cluster there, too few resources)."""


def _ensure_local_bootstrap_config() -> None:
    path = BOOTSTRAP_CONFIG.expanduser()
    if not path.exists():
        path.write_text(LOCAL_BOOTSTRAP)
        log.info("wrote %s (a local-provider config, so that Ray probes no cloud metadata address)", path)


def worker_env(cfg: RaySettings, project_root: Path, prefect_api_url: str | None) -> dict[str, str]:
    """`prefect_api_url`: the Prefect server workers report task states to (the flow picks it);
    None: each worker would start a temporary Prefect server of its own."""
    env = dict(QUIET_ENV)
    env.update({name: os.environ[name] for name in PASSED_ON if name in os.environ})
    # The flows and tasks packages are imported from the project folder (only selectit is installed).
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(project_root), os.environ.get("PYTHONPATH")) if p)
    if prefect_api_url:
        env["PREFECT_API_URL"] = prefect_api_url
        if cfg.address != "local" and any(h in prefect_api_url for h in ("//127.0.0.1", "//localhost")):
            log.warning(
                "Ray workers report to the Prefect server at %s: only workers on this machine reach it; "
                "set ray.prefect_api_url (or PREFECT_API_URL) to a server every node reaches",
                prefect_api_url,
            )
    return env


@contextlib.contextmanager
def ray_runtime(cfg: RaySettings, project_root: Path, prefect_api_url: str | None) -> Iterator[None]:
    """Ray, connected for the length of the block: started here for `address: local`,
    joined for a cluster address. A Ray already connected in this process is used as it is."""
    # Set before ray is imported: it reads some of these once, at import.
    os.environ.update(QUIET_ENV)
    if cfg.address == "local":
        os.environ.update(LOCAL_ONLY_ENV)
    import ray

    if ray.is_initialized():
        yield
        return
    kwargs: dict = {
        "namespace": NAMESPACE,
        "runtime_env": {"env_vars": worker_env(cfg, project_root, prefect_api_url)},
        "configure_logging": False,
        "log_to_driver": True,
    }
    if cfg.address == "local":
        _ensure_local_bootstrap_config()
        kwargs.update(include_dashboard=False, _node_ip_address="127.0.0.1")
    else:
        _check_reachable(cfg.address)
        kwargs["address"] = cfg.address
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RayError(f"ray.address: cannot start or reach Ray at {cfg.address!r}: {exc}") from exc
    try:
        yield
    finally:
        ray.shutdown()


# How long the address of a Ray cluster may take to accept a connection. Ray's own client
# retries an unreachable head for many minutes (measured: 834 s and 40 lines of errors).
CONNECT_TIMEOUT_S = 10.0


def _check_reachable(address: str) -> None:
    """A RayError naming ray.address within CONNECT_TIMEOUT_S when nothing listens at
    `host:port` (or `ray://host:port`); `auto` and other forms are left to Ray."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise RayError(
            f"ray.address: nothing answers at {address!r} ({exc}); start the cluster, correct the address, "
            "or set ray.address: local (a Ray on this machine) or null (no Ray)"
        ) from None


def replica_gpus(spec: str, settings: RatingSettings, cfg: RaySettings) -> int:
    """GPUs one replica of this rater asks Ray for."""
    if cfg.gpus_per_replica is not None:
        return cfg.gpus_per_replica
    if settings.device == "cpu":
        return 0
    import ray
    import torch

    if torch.cuda.is_available():  # this machine's GPUs stand for the cluster's
        return gpus_per_replica(spec, settings)
    # No GPU here but some in the cluster: one per replica (a rater larger than one GPU
    # needs ray.gpus_per_replica set; the planner can only measure GPUs it sees).
    return 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0


class RaterReplica:
    """One replica of a rater (a Ray actor): the model loads on its first shard and stays."""

    def __init__(self, spec: str, settings: RatingSettings, cache_root: str, embedding: EmbeddingSpec | None = None):
        self.session = RaterSession(spec, settings, rater_cache(Path(cache_root), spec, settings), embedding)

    def cache_key_fields(self) -> dict:
        return self.session.cache.key_fields

    def rate_shard(self, shard: Sequence[Example]) -> int:
        return self.session.rate_shard(shard, progress=False)

    def embed_shard(self, shard: Sequence[Example]) -> int:
        return self.session.embed_shard(shard, progress=False)

    def report(self) -> RaterReport | None:
        return self.session.report


@dataclass
class RaterPool:
    """The replicas of one rater, and the shard cache they write (keyed where they run)."""

    name: str
    replicas: list
    cache: ShardCache
    session: RaterSession  # this process's view of the cache (its model never loads here)

    @classmethod
    def start(
        cls,
        spec: str,
        name: str,
        settings: RatingSettings,
        cfg: RaySettings,
        cache_root: Path,
        embedding: EmbeddingSpec | None = None,
    ) -> RaterPool:
        import ray

        gpus = replica_gpus(spec, settings, cfg)
        _check_resources(name, cfg, gpus)
        actor = ray.remote(RaterReplica).options(
            num_cpus=cfg.cpus_per_replica,
            num_gpus=gpus,
            max_restarts=cfg.retries,
            max_task_retries=cfg.retries,
        )
        replicas = [actor.remote(spec, settings, str(cache_root), embedding) for _ in range(cfg.replicas)]
        # The cache key names the device type and dtype the replicas rate with, which
        # only they know (this process may have no GPU); replicas that disagree would
        # mix ratings of different kernels in one table.
        keys = ray.get([r.cache_key_fields.remote() for r in replicas])
        if any(k != keys[0] for k in keys):
            raise RayError(f"replicas of rater {name!r} run on different kinds of device or dtype: {keys}")
        log.info("%s: %d replica(s) on Ray, %s CPU and %d GPU each", name, len(replicas), cfg.cpus_per_replica, gpus)
        cache = ShardCache(cache_root, name, keys[0])
        return cls(name, replicas, cache, RaterSession(spec, settings, cache, embedding))

    def fill_embeddings(self, records: Path) -> int:
        """Embed, on the replicas, the rated examples of `records` that have no embedding yet
        (shards rated before embeddings were kept); returns the number of texts run."""
        import ray

        plan = plan_embeddings(self.session, records)
        calls = [self.replica_for(i).embed_shard.remote(shard.load()) for i, shard in enumerate(plan.shards)]
        return sum(ray.get(calls))

    def replica_for(self, index: int):
        return self.replicas[index % len(self.replicas)]

    def report(self) -> RaterReport | None:
        """The rater's identity and speed over all replicas (None when none rated anything)."""
        import ray

        reports = [r for r in ray.get([a.report.remote() for a in self.replicas]) if r is not None]
        if not reports:
            return None
        merged = reports[0]
        merged.n_texts = sum(r.n_texts for r in reports)
        merged.seconds = sum(r.seconds for r in reports)
        return merged

    def stop(self) -> None:
        import ray

        for replica in self.replicas:
            ray.kill(replica)


def _check_resources(name: str, cfg: RaySettings, gpus: int) -> None:
    """Refuse a replica no node could ever hold, instead of waiting for it for ever."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if not any(n.get("CPU", 0) >= cfg.cpus_per_replica and n.get("GPU", 0) >= gpus for n in nodes):
        largest = max(((n.get("CPU", 0), n.get("GPU", 0)) for n in nodes), default=(0, 0))
        raise ParamsError(
            f"ray: a replica of rater {name!r} asks for {cfg.cpus_per_replica} CPU and {gpus} GPU, "
            f"but the largest node of the Ray cluster has {largest[0]:g} CPU and {largest[1]:g} GPU "
            "(ray.cpus_per_replica, ray.gpus_per_replica)"
        )
