#!/usr/bin/env bash
# A real one-node SLURM cluster on 127.0.0.1 for the tests: `start` installs slurm-wlm and munge
# from Debian if needed (root), writes /etc/slurm/slurm.conf, starts munged, slurmctld and slurmd
# and waits for the node; `stop` ends them. Settings that made it work here (../shared/DESIGN.md):
# the config at /etc/slurm/slurm.conf, DefMemPerCPU, proctrack/linuxproc, task/none, no
# accounting (so Snakemake polls squeue), munge's socket folder 0755.
set -euo pipefail
STATE=/var/spool/spectropol-slurm
CONF=/etc/slurm/slurm.conf

start() {
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
        [ "$(id -u)" = 0 ] || { echo "slurm-wlm and munge are not installed and this is not root" >&2; exit 2; }
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
    fi
    stop >/dev/null 2>&1 || true
    rm -f "$STATE"/*.log
    mkdir -p /etc/slurm /etc/munge /run/munge /var/log/munge /var/lib/munge "$STATE/ctld" "$STATE/d"
    chmod 0755 /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
    fi
    chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
    chmod 0400 /etc/munge/munge.key
    local cpus mem
    cpus=$(nproc --all)  # not nproc: it follows OMP_NUM_THREADS, which tests set to 1
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 2048 ))
    cat > "$CONF" <<CONF
ClusterName=spectropol
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
DefMemPerCPU=1000
SlurmctldDebug=info
SlurmdDebug=info
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
    if id munge >/dev/null 2>&1; then
        runuser -u munge -- munged
    else
        munged --force
    fi
    slurmctld
    slurmd
    for _ in $(seq 1 60); do
        if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
            echo "slurm cluster up: $(sinfo -h -o '%P %D %t %c CPUs %m MB')"
            return 0
        fi
        sleep 0.5
    done
    echo "slurm did not come up; see $STATE/slurmctld.log and $STATE/slurmd.log" >&2
    exit 1
}

stop() {
    pkill -x slurmd 2>/dev/null || true
    pkill -x slurmctld 2>/dev/null || true
    pkill -x munged 2>/dev/null || true
    rm -rf "$STATE/ctld"/* 2>/dev/null || true
    # Without its controller, a slurm.conf left behind costs every later `snakemake` about 9 s:
    # the SLURM executor plugin, imported at start, waits for sacct/scontrol to time out.
    rm -f "$CONF"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    log) cat "$STATE/slurmctld.log" ;;
    *) echo "usage: $0 start|stop|log" >&2; exit 2 ;;
esac
