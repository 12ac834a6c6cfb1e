#!/bin/sh
# The machine's rate of 4 KiB sequential appends with an fdatasync after each: the ceiling of any
# store that acknowledges one durable append at a time (docs/performance.md compares cairn's
# one-writer, one-event, sync=always figure with it).
#
# usage: bench/fio-fdatasync.sh [-q] DIR [SIZE] [MAX_SECONDS]
#   DIR          a directory on the filesystem under test (the benchmarks' own); fio writes a
#                file there and removes it afterwards
#   SIZE         bytes to write (fio syntax), default 64m
#   MAX_SECONDS  stop earlier after this long, default 10
#   -q           print only the IOPS figure
# Prints the IOPS (writes per second, each followed by fdatasync) and the command it ran.
set -eu

quiet=0
if [ "${1:-}" = "-q" ]; then quiet=1; shift; fi
if [ $# -lt 1 ]; then
  sed -n '6,13p' "$0" >&2
  exit 2
fi
dir=$1
size=${2:-64m}
seconds=${3:-10}
command -v fio >/dev/null || { echo "fio-fdatasync.sh: fio not found (scripts/install-deps installs it)" >&2; exit 1; }
mkdir -p "$dir"

# sync engine: plain write(2) then fdatasync(2) per 4 KiB block, appended sequentially to one file
# that fio lays out first (like a preallocated log segment). Terse format v3: field 49 is the
# write IOPS.
set -- fio --name=fdatasync-4k --directory="$dir" --filename=fio-fdatasync.dat --rw=write --bs=4k \
  --fdatasync=1 --ioengine=sync --size="$size" --runtime="$seconds" --minimal --terse-version=3
out=$("$@")
rm -f "$dir/fio-fdatasync.dat"
iops=$(printf '%s\n' "$out" | awk -F';' 'NR==1 { print $49 }')
if [ "$quiet" = 1 ]; then
  echo "$iops"
else
  echo "fio 4 KiB append + fdatasync: $iops IOPS"
  echo "command: $*"
fi
