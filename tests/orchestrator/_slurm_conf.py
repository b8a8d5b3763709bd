"""The one ``slurm.conf`` the Slurm tests write: a cluster of our own, munge on a socket of its
own, spool/pid/log files under ``root``, no accounting, a short scheduler interval."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def slurm_conf(*, cluster: str, first_job: int, controller: tuple[str, str], root: Path, munge: Path,
               nodes: Sequence[tuple[str, str, str]], ports: tuple[int, int] | None = None,
               per_node: bool = False, gres: bool = False) -> str:
    """``nodes``: (name, address, extra NodeName options such as "Gres=gpu:2"); ``controller``:
    (host name, address); ``ports``: slurmctld's and slurmd's (None: Slurm's defaults, as on
    hosts of their own); ``per_node``: slurmd's spool, pid and log files per node name (%n)."""
    suffix = "-%n" if per_node else ""
    port_lines = f"SlurmctldPort={ports[0]}\nSlurmdPort={ports[1]}\n" if ports else ""
    node_lines = "".join(f"NodeName={name} NodeAddr={address} CPUs=2 {extra + ' ' if extra else ''}State=UNKNOWN\n"
                         for name, address, extra in nodes)
    names = ",".join(name for name, _, _ in nodes)
    return f"""\
ClusterName={cluster}
FirstJobId={first_job}
SlurmctldHost={controller[0]}({controller[1]})
SlurmUser=root
SlurmdUser=root
{port_lines}AuthType=auth/munge
CredType=cred/munge
# cred_expire: how long a requeued job waits before it may start again (default 120 s)
AuthInfo=socket={munge}/socket,cred_expire=5
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool{suffix}
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd{suffix}.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd{suffix}.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
{"GresTypes=gpu" + chr(10) if gres else ""}SchedulerParameters=sched_interval=2,bf_interval=1
KillWait=5
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
{node_lines}PartitionName=debug Nodes={names} Default=YES MaxTime=INFINITE State=UP
"""
