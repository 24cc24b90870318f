#!/usr/bin/env bash
# What writing into the page cache costs on this machine, cold and warm (issue 21, BENCHMARKS.md "Scale").
#
# On a virtual machine whose free memory goes back to the hypervisor (virtio-balloon free page reporting,
# as on the standard CI machine), the first write to a page that has been free for a while faults on the
# host: the kernel's copy into the page cache (`copy_folio_from_iter_atomic` in `perf`) then costs several
# times more per byte. An ingest writes its case (and SQLite's sort runs) through the page cache, ~1.1 GB
# at 1M events and ~12 GB at 10M: the 1M run fits in memory the kernel has just recycled, the 10M run
# does not — a cost that grows with the machine's idle free memory, not with nbtrail's work.
#
# Usage: bash scripts/probe-page-cache.sh [GB] [DIR]   (default 4 GB in bench-data/; needs that much disk)
# Prints system time per GB for: a small write (1 GB), a cold write of GB after 20 s idle, and the same
# write again right after deleting the first file (pages just freed, reused before they are reported).
set -euo pipefail
cd "$(dirname "$0")/.."
GB=${1:-4}
DIR=${2:-bench-data}
mkdir -p "$DIR"
F="$DIR/probe-page-cache.tmp"
trap 'rm -f "$F"' EXIT
write() { # label, GB
  local out
  out=$( { /usr/bin/time -f "%e %S" dd if=/dev/zero of="$F" bs=1M count=$(($2 * 1024)) status=none; } 2>&1 | tail -1)
  read -r wall sys <<<"$out"
  python3 -c "print(f'$1: {$2} GB in {$wall} s wall, {$sys} s system = {$sys / $2:.2f} s/GB')"
}
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $(date -u +%Y-%m-%dT%H:%MZ)"
grep -q . /sys/bus/virtio/drivers/virtio_balloon/virtio*/features 2>/dev/null \
  && echo "virtio-balloon present (features $(cat /sys/bus/virtio/drivers/virtio_balloon/virtio*/features | cut -c1-8); bit 5 = free page reporting)"
rm -f "$F"; sleep 20
write "cold, after 20 s idle" "$GB"
rm -f "$F"
write "warm, right after deleting it" "$GB"
rm -f "$F"; sleep 20
write "small (1 GB), after 20 s idle" 1
