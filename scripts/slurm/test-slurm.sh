#!/usr/bin/env bash
# The README's scale-out recipe under a real Slurm: installs Debian's slurm-wlm and munge if
# needed, starts a one-node cluster on this machine (munged, slurmctld and slurmd, all
# configuration and state in a temp directory, loopback only, ports 16817/16818), submits
# `tda-lab grads --shard i/4` as an array job and `tda-lab merge` as a job depending on it
# (afterok), waits, and checks that the merged file equals a single-process run bit for bit.
# Run as root or with sudo. Usage: npm run test:slurm
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
SHARDS=4
started=$(date +%s)

if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends slurm-wlm munge
fi

WORK=$(mktemp -d /tmp/tda-slurm-XXXXXX)
chmod 755 "$WORK"
pids=()
cleanup() {
  # Stop only the daemons this script started, by their pid files.
  for f in "$WORK"/slurmd.pid "$WORK"/slurmctld.pid "$WORK"/munged.pid; do
    [ -f "$f" ] && $SUDO kill "$(cat "$f")" 2>/dev/null || true
  done
  sleep 1
  $SUDO rm -rf "$WORK"
}
trap cleanup EXIT

echo "== one-node cluster in $WORK"
mkdir -p "$WORK"/{state,spool,munge,out}
$SUDO dd if=/dev/urandom of="$WORK/munge/munge.key" bs=1024 count=1 status=none
$SUDO chmod 700 "$WORK/munge"
$SUDO chmod 400 "$WORK/munge/munge.key"
SOCKET="$WORK/munge/munge.socket"
$SUDO munged --force --socket="$SOCKET" --key-file="$WORK/munge/munge.key" --pid-file="$WORK/munged.pid" \
  --log-file="$WORK/munged.log" --seed-file="$WORK/munge/seed"

CPUS=$(nproc)
cat > "$WORK/slurm.conf" <<CONF
ClusterName=tdalab
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$SOCKET
CredType=cred/munge
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MinJobAge=600
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$WORK/slurm.conf"
$SUDO slurmctld -f "$SLURM_CONF"
$SUDO slurmd -f "$SLURM_CONF" -N localhost
for i in $(seq 1 60); do
  state=$(sinfo -h -n localhost -o %t 2>/dev/null || true)
  [ "$state" = idle ] && break
  sleep 1
done
[ "$state" = idle ] || { echo "the node did not come up (state '$state'); logs:"; tail -20 "$WORK"/slurm*.log; exit 1; }
sinfo

echo "== inputs"
npm run --silent build
DATA="$WORK/train.jsonl"
node --require tsx/cjs -e "require('./test/reliability/workload.ts').writeExamples(process.argv[1], 96, 3)" "$DATA"
MODEL=test/fixtures/llama-tiny
ADAPTER=test/fixtures/llama-tiny/adapter

# The README's array job: one task per shard.
cat > "$WORK/grads.sbatch" <<JOB
#!/usr/bin/env bash
#SBATCH --array=0-$((SHARDS - 1))
#SBATCH --cpus-per-task=1
#SBATCH --output=$WORK/out/grads-%a.log
cd "$REPO"
npx tda-lab grads --model $MODEL --adapter $ADAPTER --data $DATA --batch-size 4 \\
  --out $WORK/out/grads-\$SLURM_ARRAY_TASK_ID.safetensors --shard \$SLURM_ARRAY_TASK_ID/$SHARDS
JOB
cat > "$WORK/merge.sbatch" <<JOB
#!/usr/bin/env bash
#SBATCH --output=$WORK/out/merge.log
cd "$REPO"
npx tda-lab merge --out $WORK/out/train-grads.safetensors $WORK/out/grads-*.safetensors
JOB

echo "== submit"
ARRAY=$(sbatch --parsable "$WORK/grads.sbatch")
MERGE=$(sbatch --parsable --dependency=afterok:$ARRAY "$WORK/merge.sbatch")
echo "array job $ARRAY, merge job $MERGE (afterok:$ARRAY)"
for i in $(seq 1 600); do
  [ -z "$(squeue -h -j "$ARRAY,$MERGE" 2>/dev/null)" ] && break
  sleep 1
done
for j in "$ARRAY" "$MERGE"; do scontrol show job "$j" | grep -E "JobId=|JobState=" | paste - - ; done
state=$(scontrol show job "$MERGE" | grep -o 'JobState=[A-Z_]*')
if [ "$state" != JobState=COMPLETED ]; then
  echo "merge job ended in $state"; cat "$WORK"/out/*.log; exit 1
fi
cat "$WORK/out/merge.log"

echo "== single-process run"
npx tda-lab grads --model $MODEL --adapter $ADAPTER --data "$DATA" --batch-size 4 --out "$WORK/single.safetensors"
node --require tsx/cjs scripts/slurm/compare.ts "$WORK/out/train-grads.safetensors" "$WORK/single.safetensors"
echo "test:slurm passed in $(( $(date +%s) - started )) s"
