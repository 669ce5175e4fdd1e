#!/usr/bin/env bash
# A private one-node SLURM 22.05 cluster for metalab's SlurmExecutor tests.
#
#   bash scripts/slurm.sh start    # start one (installs Debian's slurmctld, slurmd,
#                                  # slurm-client and munge if missing), wait until its
#                                  # node is idle, print its slurm.conf path
#   bash scripts/slurm.sh env      # print `export SLURM_CONF=...` for it
#   bash scripts/slurm.sh status   # print its `sinfo`
#   bash scripts/slurm.sh stop     # cancel its jobs, stop exactly its daemons, delete its folder
#
# The cluster lives in $METALAB_SLURM_DIR (default /tmp/metalab-slurm): slurm.conf, state,
# spool, pid and log files, and a munged of its own on a socket in that folder. Nothing
# under /etc/slurm is written: SLURM_CONF points daemons and clients (sbatch, squeue,
# scontrol, sinfo, scancel, submitit) at the private slurm.conf. Daemons listen on
# 127.0.0.1 only, on free ports, so several clusters (one per test session) can run side
# by side. The node has this machine's CPUs, partition `debug`, and
# MaxArraySize=$METALAB_SLURM_MAX_ARRAY_SIZE (default 1001). There is no accounting
# database, so `sacct` fails: read job states from squeue or `scontrol show job`, which
# keep finished jobs for MinJobAge=300 s (forgotten 300-360 s after they end). Run as root.
set -euo pipefail

DIR="${METALAB_SLURM_DIR:-/tmp/metalab-slurm}"
MAX_ARRAY_SIZE="${METALAB_SLURM_MAX_ARRAY_SIZE:-1001}"
CONF="$DIR/slurm.conf"
MUNGE_SOCKET="$DIR/munge/munge.socket"
export SLURM_CONF="$CONF"

installed() {
  local command
  for command in slurmctld slurmd sbatch munged; do
    command -v "$command" >/dev/null || return 1
  done
}

install_packages() {
  if ! installed; then
    echo "slurm.sh: installing Debian's slurmctld slurmd slurm-client munge" >&2
    local packages=(slurmctld slurmd slurm-client munge)
    # Without recommends: 8 packages in all, not 41 (extra plugins and their -dev files).
    local apt=(apt-get install -y -q --no-install-recommends "${packages[@]}")
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" >&2 ||
      { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive "${apt[@]}" >&2; }
  fi
  if ! installed; then
    echo "slurm.sh: no slurmctld, slurmd, sbatch or munged on PATH after installing" >&2
    exit 1
  fi
  if [ ! -r /etc/munge/munge.key ]; then
    echo "slurm.sh: no /etc/munge/munge.key (the munge package creates it); run: mungekey" >&2
    exit 1
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

daemon_pid() { # daemon_pid NAME: the pid in $DIR/NAME.pid, if NAME still runs there
  local pid stat name state
  pid=$(cat "$DIR/$1.pid" 2>/dev/null) && stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  name=${stat#*(} && name=${name%)*}
  state=${stat##*) } && state=${state%% *}
  # The name keeps a stale pid file from pointing at a reused pid; a killed daemon stays a
  # zombie (state Z) until its new parent reaps it, which can take seconds here.
  [ "$name" = "$1" ] && [ "$state" != Z ] && echo "$pid"
}

alive() { daemon_pid "$1" >/dev/null; }

started() { # started NAME: wait up to 5 s until the process started for NAME runs NAME
  # Until it execs, the background process is still the forked shell (or setpriv), which
  # alive would take for a daemon that died: on a busy machine the first check came first.
  local pid comm
  pid=$(cat "$DIR/$1.pid")
  for _ in $(seq 1 50); do
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 0 # ended: alive will say so
    [ "$comm" = "$1" ] && return 0
    sleep 0.1
  done
}

running() {
  alive slurmctld && alive slurmd && alive munged && sinfo -h >/dev/null 2>&1
}

node_idle() {
  [ "$(sinfo -h -N -o %t 2>/dev/null)" = idle ]
}

start_munged() {
  # munged refuses to run as root, and wants its socket folder owned by its user. setpriv
  # execs (runuser would fork), so $! is munged's own pid.
  mkdir -p "$DIR/munge"
  chown munge: "$DIR/munge"
  chmod 755 "$DIR/munge"
  setpriv --reuid=munge --regid=munge --init-groups -- munged --foreground --socket="$MUNGE_SOCKET" \
    --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" \
    --seed-file="$DIR/munge/munged.seed" </dev/null >"$DIR/log/munged.out" 2>&1 &
  echo $! >"$DIR/munged.pid"
  started munged
  for _ in $(seq 1 150); do # returns as soon as the socket is there; a busy machine is slow
    [ -S "$MUNGE_SOCKET" ] && return
    alive munged || break
    sleep 0.1
  done
  echo "slurm.sh: munged did not open $MUNGE_SOCKET:" >&2
  tail -n 20 "$DIR/log/munged.out" "$DIR/munge/munged.log" >&2 2>/dev/null || true
  exit 1
}

write_conf() {
  local host cpus mem_mb
  host=$(hostname -s)
  # --all: plain nproc honours OMP_NUM_THREADS, which a caller (a test) may have set to 1.
  cpus=$(nproc --all)
  # 90% of the machine's memory: slurmd drains a node whose RealMemory exceeds what it finds.
  mem_mb=$(awk '/^MemTotal:/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)
  cat >"$CONF" <<EOF
# Written by metalab's scripts/slurm.sh; deleted by \`slurm.sh stop\`.
ClusterName=metalab
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
# Start queued tasks as soon as CPUs free up instead of in 3-second waves.
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
MaxArraySize=$MAX_ARRAY_SIZE
MinJobAge=300
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start_daemon() { # start_daemon NAME: run NAME -D in the background, stdio to its log
  # Closed stdio: a caller reading this script's output (CI, subprocess pipes) would
  # otherwise wait for the daemons to exit.
  "$1" -D </dev/null >"$DIR/log/$1.out" 2>&1 &
  echo $! >"$DIR/$1.pid"
  started "$1"
}

start() {
  if running; then
    echo "$CONF"
    return
  fi
  if ! [[ "$MAX_ARRAY_SIZE" =~ ^[1-9][0-9]*$ ]]; then
    echo "slurm.sh: METALAB_SLURM_MAX_ARRAY_SIZE must be a positive whole number" \
      "(got '$MAX_ARRAY_SIZE')" >&2
    exit 2
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "slurm.sh: run as root: slurmctld and slurmd run as root, munged as the munge user" >&2
    exit 1
  fi
  install_packages
  stop
  mkdir -p "$DIR/state" "$DIR/spool" "$DIR/run" "$DIR/log"
  start_munged
  write_conf
  start_daemon slurmctld
  start_daemon slurmd
  local deadline=$((SECONDS + 60))
  until node_idle; do
    if [ "$SECONDS" -ge "$deadline" ] || ! alive slurmctld || ! alive slurmd; then
      echo "slurm.sh: the node did not become idle (a daemon exited, or 60 s passed);" \
        "sinfo: $(sinfo -h -N 2>&1)" >&2
      tail -n 20 "$DIR"/log/*.log "$DIR"/log/*.out >&2 2>/dev/null || true
      exit 1
    fi
    sleep 0.1
  done
  echo "$CONF"
}

stop_daemons() { # stop_daemons NAME...: SIGTERM the daemons we started, SIGKILL after 10 s
  local name pid running
  for name in "$@"; do
    pid=$(daemon_pid "$name") && kill "$pid" 2>/dev/null || true
  done
  for _ in $(seq 1 100); do
    running=
    for name in "$@"; do
      alive "$name" && running=1
    done
    [ -z "$running" ] && return 0
    sleep 0.1
  done
  for name in "$@"; do
    pid=$(daemon_pid "$name") && kill -9 "$pid" 2>/dev/null || true
  done
}

kill_tree() { # kill_tree PID: SIGKILL PID and its descendants, children first
  local child
  for child in $(pgrep -P "$1"); do
    kill_tree "$child"
  done
  kill -9 "$1" 2>/dev/null || true
}

kill_stray_steps() {
  # A slurmstepd whose job missed its cancel outlives slurmd, and so would its job's
  # processes; each one of this cluster holds its slurmd's log open.
  local fd
  for fd in /proc/[0-9]*/fd/*; do
    if [ "$fd" -ef "$DIR/log/slurmd.log" ]; then
      fd=${fd#/proc/}
      kill_tree "${fd%%/*}"
    fi
  done
}

stop() {
  # Cancel jobs first: their slurmstepd processes would outlive slurmd.
  local jobs=()
  alive slurmctld && mapfile -t jobs < <(squeue -h -o %A 2>/dev/null)
  if [ "${#jobs[@]}" -gt 0 ]; then
    scancel "${jobs[@]}" 2>/dev/null || true
    for _ in $(seq 1 100); do
      [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break
      sleep 0.1
    done
  fi
  # Together: each takes 1.5-2 s to exit on SIGTERM.
  stop_daemons slurmd slurmctld munged
  kill_stray_steps
  rm -rf "$DIR"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env)
    running || { echo "slurm.sh: no cluster running in $DIR; run: $0 start" >&2; exit 1; }
    echo "export SLURM_CONF=$CONF"
    ;;
  status)
    running || { echo "slurm.sh: no cluster running in $DIR; run: $0 start" >&2; exit 1; }
    sinfo
    ;;
  *)
    echo "usage: METALAB_SLURM_DIR=/tmp/slurm $0 start|stop|env|status" >&2
    exit 2
    ;;
esac
