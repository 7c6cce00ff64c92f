"""How many MLflow (uvicorn) workers an instance can afford without running out of memory.

Ubuntu AMIs have no swap, so "never swaps" means the server's resident memory must fit beside the
OS. The figures are resident set sizes measured on the loopback stack with MLflow 3.17.2 (parent
~270 MiB, a worker ~300 MiB after runs, metrics and a 50 MB artifact, the job runner's seven
processes ~1.3 GiB), rounded up for request peaks.
"""

from __future__ import annotations

# Ubuntu server, amazon-ssm-agent, snapd, nginx, journald and the page cache the system needs.
SYSTEM_RESERVE_MIB = 512
# The `mlflow server` process, which stays alive as uvicorn's parent, and uvicorn's supervisor.
SERVER_PARENT_MIB = 320
# One uvicorn worker with the basic-auth app loaded, plus its share of request peaks.
WORKER_MIB = 384
# MLflow's job runner (GenAI scorers): its runner and huey consumer processes.
JOB_RUNNER_MIB = 1400
MIN_WORKERS = 1
MAX_WORKERS = 8
# The least memory that holds the job runner beside one worker without eating the system's reserve.
JOB_RUNNER_MIN_INSTANCE_MIB = SYSTEM_RESERVE_MIB + SERVER_PARENT_MIB + JOB_RUNNER_MIB + MIN_WORKERS * WORKER_MIB


def uvicorn_workers(instance_memory_mib: int, *, job_runner: bool = False) -> int:
    available = instance_memory_mib - SYSTEM_RESERVE_MIB - SERVER_PARENT_MIB
    if job_runner:
        available -= JOB_RUNNER_MIB
    return max(MIN_WORKERS, min(MAX_WORKERS, available // WORKER_MIB))
