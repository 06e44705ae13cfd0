"""On a real SLURM: the demo DAG through `snakemake --profile profiles/slurm` to a valid solution.zip (slow).

The test starts a single-node cluster from Debian's packages (`.ci/run` installs them): munged,
MariaDB (the accounting database), slurmdbd (accounting: the executor reads job states with
`sacct`), slurmctld and slurmd, each with its own files in a temp dir and its own loopback ports,
then stops them. It needs root (slurmd starts jobs as their owner). If a daemon does not start,
the test fails with the daemon's own log, it never skips.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from facelm.challenge.submission_check import validate_solution
from facelm.data.folder import list_images

REPO = Path(__file__).resolve().parents[1]
CLUSTER = "facelmtest"
ACCOUNT = "facelm"
DB_PASSWORD = "slurm-test-db"
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")
CONFIGLESS_LINK = Path("/run/slurm/conf")  # slurmd links the config it fetched here
PROGRAMS = ["munged", "mungekey", "munge", "mariadbd", "mariadb-install-db", "mariadb", "slurmdbd", "slurmctld", "slurmd",
            "sacctmgr", "sacct", "sbatch", "sinfo"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _program(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not found:
        pytest.fail(f"{name} is not installed: apt-get install munge mariadb-server slurmdbd slurmctld slurmd slurm-client")
    return found


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return f"(no {path.name})"


class Cluster:
    """Files, ports and daemons of the throwaway cluster; :meth:`start` brings them up in order."""

    def __init__(self, root: Path):
        self.root = root
        self.node = "facelmnode"
        self.ports = {name: _free_port() for name in ("mariadb", "slurmdbd", "slurmctld", "slurmd")}
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.pidfiles: list[tuple[str, Path]] = []
        self.env = {**os.environ, "SLURM_CONF": str(root / "etc" / "slurm.conf")}

    # ------------------------------------------------------------------ helpers
    def run(self, *cmd, what: str, log: Path | None = None, **kwargs) -> subprocess.CompletedProcess:
        result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=self.env, **kwargs)
        if result.returncode != 0:
            extra = f"\n--- {log.name} ---\n{_tail(log)}" if log else ""
            pytest.fail(f"{what} failed (exit {result.returncode}): {result.stderr.strip()[-1500:]}{extra}")
        return result

    def wait_for(self, what: str, ready, log: Path, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while not ready():
            if time.time() > deadline:
                pytest.fail(f"{what} did not start within {timeout:.0f} s\n--- {log.name} ---\n{_tail(log)}")
            time.sleep(0.3)

    def _listening(self, port: int) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    # ------------------------------------------------------------------ daemons
    def start(self) -> None:
        if CONFIGLESS_LINK.exists():
            pytest.fail(f"{CONFIGLESS_LINK} exists: a slurmd already runs on this machine; the test cluster would clash with it")
        for sub in ("etc", "munge", "db", "log", "state", "spool", "run"):
            (self.root / sub).mkdir(parents=True)
        self._munge()
        self._mariadb()
        self._write_slurm_conf()
        self._slurmdbd()
        self.run(_program("sacctmgr"), "-i", "add", "cluster", CLUSTER, what="sacctmgr add cluster")
        self.run(_program("sacctmgr"), "-i", "add", "account", ACCOUNT, f"cluster={CLUSTER}", what="sacctmgr add account")
        self.run(_program("sacctmgr"), "-i", "add", "user", os.environ.get("USER", "root"), f"account={ACCOUNT}",
                 f"cluster={CLUSTER}", what="sacctmgr add user")
        log = self.root / "log" / "slurmctld.log"
        self.run(_program("slurmctld"), "-f", self.root / "etc" / "slurm.conf", what="slurmctld", log=log)
        self.pidfiles.append(("slurmctld", self.root / "run" / "slurmctld.pid"))
        self.wait_for("slurmctld", lambda: self._listening(self.ports["slurmctld"]), log)
        log = self.root / "log" / "slurmd.log"
        # configless, as many sites run it: slurmd fetches the config from slurmctld and links it at
        # /run/slurm/conf, where commands inside jobs (the executor's srun) find it
        self.run(_program("slurmd"), "--conf-server", f"127.0.0.1:{self.ports['slurmctld']}", "-N", self.node,
                 what="slurmd", log=log)
        self.pidfiles.append(("slurmd", self.root / "run" / "slurmd.pid"))
        self.wait_for("slurmd (node idle in sinfo)", self._node_idle, log)

    def _node_idle(self) -> bool:
        out = subprocess.run([_program("sinfo"), "-h", "-N", "-o", "%t"], capture_output=True, text=True, env=self.env)
        return out.returncode == 0 and out.stdout.strip() in ("idle", "mix", "alloc")

    def _munge(self) -> None:
        """munged on its default socket (SLURM 22.05's clients do not all honour AuthInfo=socket=...):
        one already running there is used as it is; otherwise one with a fresh key is started."""
        if MUNGE_SOCKET.exists() and subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
            return
        MUNGE_SOCKET.parent.mkdir(parents=True, exist_ok=True)
        key = self.root / "munge" / "munge.key"
        self.run(_program("mungekey"), "--create", f"--keyfile={key}", what="mungekey")
        log = self.root / "log" / "munged.log"
        pidfile = self.root / "munge" / "munged.pid"
        self.run(_program("munged"), "--force", f"--key-file={key}", f"--socket={MUNGE_SOCKET}", f"--log-file={log}",
                 f"--pid-file={pidfile}", f"--seed-file={self.root / 'munge' / 'seed'}", what="munged", log=log)
        self.pidfiles.append(("munged", pidfile))
        self.wait_for("munged", MUNGE_SOCKET.exists, log)

    def _mariadb(self) -> None:
        data, log = self.root / "db", self.root / "log" / "mariadb.log"
        self.run(_program("mariadb-install-db"), "--user=root", f"--datadir={data}", "--auth-root-authentication-method=socket",
                 "--skip-test-db", what="mariadb-install-db")
        self.db_socket = self.root / "run" / "mysqld.sock"
        proc = subprocess.Popen([_program("mariadbd"), "--no-defaults", "--user=root", f"--datadir={data}",
                                 f"--socket={self.db_socket}", "--bind-address=127.0.0.1", f"--port={self.ports['mariadb']}",
                                 f"--log-error={log}", f"--pid-file={self.root / 'run' / 'mariadb.pid'}",
                                 "--innodb-buffer-pool-size=64M"], env=self.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        self.procs.append(("mariadbd", proc))
        self.wait_for("mariadbd", lambda: self.db_socket.exists() and self._listening(self.ports["mariadb"]), log)
        sql = (f"CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}';"
               f"CREATE USER 'slurm'@'localhost' IDENTIFIED BY '{DB_PASSWORD}';"
               "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
               "FLUSH PRIVILEGES;")
        self.run(_program("mariadb"), f"--socket={self.db_socket}", "-u", "root", "-e", sql, what="mariadb: create the slurm user", log=log)

    def _write_slurm_conf(self) -> None:
        etc, run, log = self.root / "etc", self.root / "run", self.root / "log"
        cpus = os.cpu_count() or 1
        common = "AuthType=auth/munge\n"
        (etc / "slurm.conf").write_text(
            f"ClusterName={CLUSTER}\nSlurmctldHost=localhost(127.0.0.1)\n{common}"
            f"SlurmUser=root\nSlurmdUser=root\nSlurmctldPort={self.ports['slurmctld']}\nSlurmdPort={self.ports['slurmd']}\n"
            f"StateSaveLocation={self.root / 'state'}\nSlurmdSpoolDir={self.root / 'spool'}\n"
            f"SlurmctldPidFile={run / 'slurmctld.pid'}\nSlurmdPidFile={run / 'slurmd.pid'}\n"
            f"SlurmctldLogFile={log / 'slurmctld.log'}\nSlurmdLogFile={log / 'slurmd.log'}\n"
            "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nJobAcctGatherType=jobacct_gather/none\n"
            "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core_Memory\nMpiDefault=none\nReturnToService=2\n"
            # the node advertises 64 GB whatever the machine has, so that the rules' real memory
            # requests (up to 8 GB for the light steps) fit; the demo's jobs use far less
            "SlurmdParameters=config_overrides\n"
            "SlurmctldParameters=enable_configless\nSchedulerType=sched/backfill\nSlurmctldTimeout=30\nSlurmdTimeout=60\nMinJobAge=300\nKillWait=5\n"
            f"AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=localhost\n"
            f"AccountingStoragePort={self.ports['slurmdbd']}\nAccountingStoreFlags=job_comment\nJobCompType=jobcomp/none\n"
            f"NodeName={self.node} NodeAddr=127.0.0.1 NodeHostname={socket.gethostname()} CPUs={cpus} "
            "RealMemory=65536 State=UNKNOWN\n"
            f"PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP\n")
        dbd = etc / "slurmdbd.conf"
        dbd.write_text(
            f"{common}DbdHost=localhost\nDbdPort={self.ports['slurmdbd']}\nSlurmUser=root\n"
            f"PidFile={run / 'slurmdbd.pid'}\nLogFile={log / 'slurmdbd.log'}\n"
            f"StorageType=accounting_storage/mysql\nStorageHost=127.0.0.1\nStoragePort={self.ports['mariadb']}\n"
            f"StorageUser=slurm\nStoragePass={DB_PASSWORD}\nStorageLoc=slurm_acct_db\n")
        dbd.chmod(0o600)

    def _slurmdbd(self) -> None:
        log = self.root / "log" / "slurmdbd.log"
        self.run(_program("slurmdbd"), what="slurmdbd", log=log)
        self.pidfiles.append(("slurmdbd", self.root / "run" / "slurmdbd.pid"))
        self.wait_for("slurmdbd", lambda: self._listening(self.ports["slurmdbd"]), log)

    def stop(self) -> None:
        """Stop every daemon this test started (by its pid file or process), newest first."""
        for name, pidfile in reversed(self.pidfiles):
            try:
                pid = int(pidfile.read_text().split()[0])
                os.kill(pid, signal.SIGTERM)
            except (OSError, ValueError, IndexError):
                continue
            for _ in range(50):
                try:
                    os.kill(pid, 0)
                except OSError:
                    break
                time.sleep(0.2)
            else:
                os.kill(pid, signal.SIGKILL)
        if CONFIGLESS_LINK.is_symlink() and str(self.root) in os.readlink(CONFIGLESS_LINK):
            CONFIGLESS_LINK.unlink()
        for _, proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def slurm_cluster():
    if os.geteuid() != 0:
        pytest.fail("the SLURM test needs root (it starts slurmd, which launches the jobs); CI runs as root")
    for name in PROGRAMS:
        _program(name)
    root = Path(tempfile.mkdtemp(prefix="facelm-slurm-"))
    cluster = Cluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_demo_dag_runs_through_the_slurm_executor(slurm_cluster, tmp_path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(data_dir=str(tmp_path / "data"), results_dir=str(tmp_path / "results"),
                  submissions_dir=str(tmp_path / "submissions"))
    config["train"].update(size=64, epochs=1, workers=0)
    config["tune"].update(n_trials=1, epochs=1)
    config["models"] = config["models"][:1]
    config["folds"]["train_folds"] = [0]
    config["compute"] = {"threads": 1, "train_mem_mb": 2000, "train_runtime_min": 30}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    env = {**slurm_cluster.env, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    command = [str(Path(sys.executable).with_name("snakemake")), "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml"),
               "--profile", str(REPO / "profiles" / "slurm"), "--slurm-init-seconds-before-status-checks", "1",
               "--seconds-between-status-checks", "2", "--latency-wait", "5",
               # a job asking for more CPUs than the one node has would wait forever (PartitionConfig)
               "--max-threads", str(os.cpu_count() or 1), "submission"]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    print(f"snakemake through SLURM: {time.perf_counter() - started:.0f} s")
    assert result.returncode == 0, (result.stderr[-4000:] + "\n--- slurmctld ---\n"
                                    + _tail(slurm_cluster.root / "log" / "slurmctld.log"))
    # every job ran as a SLURM job with its rule's resources (the executor names the rule in the comment)
    sacct = slurm_cluster.run(_program("sacct"), "-X", "-n", "-P", "-a", "-o", "Comment,State,ReqCPUS,ReqMem,Timelimit",
                              what="sacct").stdout.splitlines()
    jobs = [line.split("|") for line in sacct if line]
    rules = sorted(comment.removeprefix("rule_").split("_wildcards_")[0] for comment, *_ in jobs)
    assert rules == sorted(["demo_data", "check_data", "check_data", "check_data", "gamma_cache", "gamma_cache", "folds",
                            "tune_worker", "tune_best", "train", "ensemble", "submission"]), sacct
    assert all(state == "COMPLETED" for _, state, *_ in jobs), sacct
    by_rule = {comment.removeprefix("rule_").split("_wildcards_")[0]: rest for comment, _, *rest in jobs}
    assert by_rule["train"] == ["1", "2000M", "00:30:00"]  # compute.threads, train_mem_mb, train_runtime_min
    assert by_rule["check_data"] == [str(min(4, os.cpu_count() or 1)), "4000M", "02:00:00"]
    solution = tmp_path / "submissions" / "demo" / "solution.zip"
    names, points = validate_solution(solution, list_images(tmp_path / "data" / "aflw_test"))
    assert len(names) == 48 and points.shape == (48, 68, 2)
