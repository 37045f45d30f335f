#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for the `slurm` tests (tests/slurm) and for trying
# `hydra/launcher=submitit_slurm` without a cluster: munged, slurmctld and slurmd from Debian's packages
# (slurmctld, slurmd, slurm-client, munge; apt-get installs them when missing), one partition `debug` holding
# this host with 2 CPUs (jobs take 1 each), no accounting.
#
#   scripts/slurm_cluster.sh start    # install if needed, write the config, start the daemons, wait for the node
#   scripts/slurm_cluster.sh status   # exit 0 when the daemons run and the node is up
#   scripts/slurm_cluster.sh env      # the exports that point SLURM's commands (and submitit) at it
#   scripts/slurm_cluster.sh stop     # stop the daemons (the state directory stays, for its logs)
#
# Everything lives in $IWAE_SLURM_DIR (default /tmp/iwae-slurm): the config, munge's key and socket, the
# daemons' state, spool and logs. The packages' own services are not started and /etc/slurm is not written, so
# a machine's own SLURM or munge, if any, is left alone (the ports differ too). Use it with `eval
# "$(scripts/slurm_cluster.sh env)"`, which sets SLURM_CONF and puts $IWAE_SLURM_DIR/bin first on PATH.
#
# Why that bin/sacct: with accounting off, the real sacct only says "accounting storage is disabled", and
# submitit, which asks sacct for its jobs' states, then logs a warning per call and never sees a job that ended
# without a result (a cancelled one: the sweep would wait forever). The wrapper answers sacct's question from
# the controller's own records (squeue --states=all), kept for a day (MinJobAge) so finished jobs stay visible.
#
# Settings chosen for short test jobs: cred_expire=5 (a requeued job may start again after 5 s, not SLURM's
# default 120), the scheduler every 2 s, KillWait=30 (SIGTERM to SIGKILL: time to finish a step and checkpoint).
# Needs root (slurmd launches jobs as their users); CI runs it as root.
set -euo pipefail

DIR=${IWAE_SLURM_DIR:-/tmp/iwae-slurm}
CTLD_PORT=${IWAE_SLURM_CTLD_PORT:-16817}
SLURMD_PORT=${IWAE_SLURM_SLURMD_PORT:-16818}
PARTITION=debug
HOST=$(hostname -s)
CPUS=${IWAE_SLURM_CPUS:-2}
PACKAGES=(slurmctld slurmd slurm-client munge)

die() { echo "error: $*" >&2; exit 1; }

install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return
    command -v apt-get >/dev/null || die "SLURM is not installed and there is no apt-get: install ${missing[*]}"
    echo "installing ${missing[*]} (Debian packages)"
    # The packages' postinst scripts start their services, which fail without /etc/slurm/slurm.conf and fail
    # the install with them; Debian's policy-rc.d (exit 101: do not start) stops that, for this install only.
    local policy=/usr/sbin/policy-rc.d own_policy=
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
    fi
    local status=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
        { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; } || status=1
    [ -n "$own_policy" ] && rm -f "$policy"
    [ $status -eq 0 ] || die "apt-get could not install ${missing[*]}"
}

write_config() {
    mkdir -p "$DIR"/{bin,munge,state,spool,log}
    chmod 711 "$DIR/munge"  # munged: the socket's directory must be traversable by all
    if [ ! -s "$DIR/munge/munge.key" ]; then
        dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
        chmod 400 "$DIR/munge/munge.key"
    fi
    cat >"$DIR/slurm.conf.tmp" <<EOF
# Written by scripts/slurm_cluster.sh: a single-node test cluster, no accounting.
ClusterName=iwae
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket,cred_expire=5
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=2
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
KillWait=30
MinJobAge=86400
InactiveLimit=0
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$DIR/slurm.conf.tmp" "$DIR/slurm.conf"
    cat >"$DIR/bin/sacct.tmp" <<'EOF'
#!/usr/bin/env bash
# sacct for a cluster without accounting (see scripts/slurm_cluster.sh): answers `sacct -j ID ...` with each
# job's JobID|State|NodeList from the controller's records, which is all submitit asks.
ids=()
while [ $# -gt 0 ]; do
    case "$1" in
        -j|--jobs) ids+=("$2"); shift 2 ;;
        --jobs=*) ids+=("${1#--jobs=}"); shift ;;
        *) shift ;;
    esac
done
echo "JobID|State|NodeList"
[ ${#ids[@]} -eq 0 ] && exit 0
IFS=, exec squeue --noheader --states=all --jobs="${ids[*]}" --format='%i|%T|%N' 2>/dev/null
EOF
    chmod 755 "$DIR/bin/sacct.tmp"
    mv "$DIR/bin/sacct.tmp" "$DIR/bin/sacct"
}

print_env() {
    echo "export SLURM_CONF=$DIR/slurm.conf"
    echo "export PATH=$DIR/bin:\$PATH"
}

node_up() {
    SLURM_CONF="$DIR/slurm.conf" sinfo --noheader --nodes="$HOST" --format=%t 2>/dev/null | grep -Eq '^(idle|mix|alloc)'
}

pid_of() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null && cat "$1"; }

start() {
    [ "$(id -u)" -eq 0 ] || die "starting SLURM needs root (slurmd runs jobs as their users); run it with sudo"
    install_packages
    if pid_of "$DIR/slurmctld.pid" >/dev/null && node_up; then
        echo "already running: $DIR"; print_env; return
    fi
    stop >/dev/null 2>&1 || true
    write_config
    export SLURM_CONF="$DIR/slurm.conf"
    munged --socket="$DIR/munge/munge.socket" --key-file="$DIR/munge/munge.key" \
        --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/log/munged.log" \
        --seed-file="$DIR/munge/munged.seed" ||
        die "munged did not start; see $DIR/log/munged.log"
    # -c: a clean start (no jobs from an earlier cluster in $DIR/state)
    slurmctld -c -f "$SLURM_CONF" || die "slurmctld did not start; see $DIR/log/slurmctld.log"
    slurmd -f "$SLURM_CONF" || die "slurmd did not start; see $DIR/log/slurmd.log"
    for _ in $(seq 60); do
        node_up && break
        sleep 0.5
    done
    node_up || die "the node $HOST did not come up within 30 s; see $DIR/log/slurmctld.log and slurmd.log"
    # a job end to end: the proof that munge, the controller, slurmd and srun all work
    srun --partition="$PARTITION" --time=1 --ntasks=1 true ||
        die "a test job failed on $HOST; see $DIR/log/slurmd.log"
    echo "SLURM is up: partition $PARTITION on $HOST ($CPUS CPUs), state in $DIR"
    print_env
}

stop() {
    local name pid
    # jobs still there get SLURM's SIGTERM (a training run checkpoints), then the daemons go
    pid_of "$DIR/slurmctld.pid" >/dev/null &&
        SLURM_CONF="$DIR/slurm.conf" scancel --partition="$PARTITION" 2>/dev/null
    for name in slurmd slurmctld munge/munged; do
        if pid=$(pid_of "$DIR/$name.pid"); then
            kill "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        fi
        rm -f "$DIR/$name.pid"
    done
    echo "SLURM stopped ($DIR)"
}

status() {
    [ -f "$DIR/slurm.conf" ] || die "no cluster in $DIR (run: scripts/slurm_cluster.sh start)"
    pid_of "$DIR/slurmctld.pid" >/dev/null || die "slurmctld is not running (run: scripts/slurm_cluster.sh start)"
    pid_of "$DIR/slurmd.pid" >/dev/null || die "slurmd is not running (run: scripts/slurm_cluster.sh start)"
    node_up || die "the node $HOST is not up (see $DIR/log/slurmctld.log)"
    SLURM_CONF="$DIR/slurm.conf" sinfo
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    env) print_env ;;
    *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
