#!/bin/sh
# Runs the whole benchmark in one go on one filesystem: fio's 4 KiB append+fdatasync rate, the
# `cairn bench` suite and the SQLite baseline, then prints one table with the targets of
# docs/performance.md and the ratios (cairn / fio for one writer, one event, durable; cairn /
# SQLite elsewhere). A benchmark, not a test: it never fails on a slow figure.
#
# usage: bench/run.sh [--size quick|full] [--dir DIR] [--build DIR]
#                     [--events N] [--write-events N] [--max-seconds S]
#   --size          quick (seconds; 200k events read, 100k per append workload) or full (10M
#                   events read, 1M per append workload). Default quick.
#   --dir           scratch directory (created; must not hold earlier results). Default: a new
#                   mktemp directory under /tmp. Everything runs on its filesystem.
#   --build         build directory holding cairn and cairn_sqlite_bench. Default: build/release
#   --events, --write-events, --max-seconds
#                   override the suite's sizes (passed to both benchmarks)
# Writes fio.txt, cairn.tsv and sqlite.tsv into DIR and prints the combined table.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
size=quick
dir=
build="$here/../build/release"
extra=
while [ $# -gt 0 ]; do
  case $1 in
    --size) size=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --events|--write-events|--max-seconds) extra="$extra $1 $2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $size in
  quick) fio_size=64m; fio_seconds=10 ;;
  full) fio_size=256m; fio_seconds=30 ;;
  *) echo "run.sh: --size must be quick or full" >&2; exit 2 ;;
esac
[ -x "$build/cairn" ] && [ -x "$build/cairn_sqlite_bench" ] ||
  { echo "run.sh: build cairn_cli and cairn_sqlite_bench in $build first (--build DIR)" >&2; exit 1; }
if [ -z "$dir" ]; then dir=$(mktemp -d /tmp/cairn-bench.XXXXXX); fi
mkdir -p "$dir"
for f in fio.txt cairn.tsv sqlite.tsv cairn sqlite; do
  [ ! -e "$dir/$f" ] || { echo "run.sh: $dir/$f exists: give an empty directory" >&2; exit 1; }
done

echo "== machine"
echo "cpus: $(nproc) x $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
echo "memory: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "kernel: $(uname -r)"
echo "filesystem of $dir: $(df -T "$dir" | awk 'NR==2 { print $2 " on " $1 " (" $3 / 1048576 " GiB)" }')"
echo "size: $size$extra"
echo

# fio runs before and after the benchmarks: on a shared or virtual disk the fdatasync rate drifts,
# and the ratio uses the mean of the two.
echo "== fio (before)" >&2
"$here/fio-fdatasync.sh" "$dir/fio" "$fio_size" "$fio_seconds" | tee "$dir/fio.txt" >&2

echo "== cairn bench" >&2
# shellcheck disable=SC2086
"$build/cairn" bench --suite "$size" --db "file:$dir/cairn" --tsv $extra > "$dir/cairn.tsv"
echo "== SQLite baseline" >&2
# shellcheck disable=SC2086
"$build/cairn_sqlite_bench" --suite "$size" --dir "$dir/sqlite" --tsv $extra > "$dir/sqlite.tsv"

echo "== fio (after)" >&2
"$here/fio-fdatasync.sh" "$dir/fio" "$fio_size" "$fio_seconds" | tee -a "$dir/fio.txt" >&2
rmdir "$dir/fio" 2>/dev/null || true
fio_iops=$(awk '/IOPS/ { sum += $(NF-1); n++ } END { printf "%.0f", sum / n }' "$dir/fio.txt")

echo "== results (events/s unless noted; fio: $fio_iops IOPS of 4 KiB append+fdatasync, mean of" \
  "$(awk '/IOPS/ { printf "%s%s", sep, $(NF-1); sep = " and " }' "$dir/fio.txt"))"
echo "   ev/cpu-s: events per CPU-second of the whole process (all its threads): the rate on an idle core"
awk -F'\t' -v fio="$fio_iops" '
  FNR == 1 { next }
  FILENAME ~ /sqlite.tsv$/ { sqlite[$1] = $4; next }
  { name[++n] = $1; eps[$1] = $4; secs[$1] = $3; cpu[$1] = $8; rss[$1] = $9; hwm[$1] = $11; p50[$1] = $6; p99[$1] = $7; events[$1] = $2 }
  function fmt(x) { return x == "" || x == "-" ? "-" : sprintf("%.0f", x) }
  function ratio(a, b) { return (a == "" || b == "" || a == "-" || b == "-" || b + 0 == 0) ? "-" : sprintf("%.2f", a / b) }
  END {
    target["append-1x1-durable"] = 0.9 * fio;  base["append-1x1-durable"] = fio;  basename["append-1x1-durable"] = "fio"
    target["append-64x1-durable"] = 300000;    base["append-64x1-durable"] = sqlite["append-1x1-durable"]; basename["append-64x1-durable"] = "SQLite 1 writer"
    target["append-1x100-durable"] = 500000;   base["append-1x100-durable"] = sqlite["append-1x100-durable"]; basename["append-1x100-durable"] = "SQLite"
    target["append-64x1-durable-async"] = 300000; base["append-64x1-durable-async"] = sqlite["append-1x1-durable"]; basename["append-64x1-durable-async"] = "SQLite 1 writer"
    target["append-1x100-nosync"] = 6000000
    target["append-4x100-nosync-async"] = 6000000
    target["read-all"] = 20000000;             base["read-all"] = sqlite["read-all"]; basename["read-all"] = "SQLite"
    target["read-stream"] = 10000000;          base["read-stream"] = sqlite["read-stream"]; basename["read-stream"] = "SQLite"
    printf "%-22s %12s %12s %5s %12s %8s %-16s %9s %9s %11s\n", "workload", "cairn", "target", "met", "baseline", "ratio", "baseline is", "p50_us", "p99_us", "ev/cpu-s"
    for (i = 1; i <= n; i++) {
      k = name[i]
      if (k == "fill") continue
      if (k == "open") {
        met = (secs[k] < 1 && rss[k] < 256) ? "yes" : "NO"
        printf "%-22s %10.3f s %12s %5s   rss %.1f MiB (target < 256), hwm %.1f MiB, %d events, cpu %.3f s\n", k, secs[k], "< 1 s", met, rss[k], hwm[k], events[k], cpu[k]
        continue
      }
      met = (k in target) ? (eps[k] >= target[k] ? "yes" : "NO") : "-"
      printf "%-22s %12s %12s %5s %12s %8s %-16s %9s %9s %11s\n", k, fmt(eps[k]), fmt(target[k]), met, fmt(base[k]),
             ratio(eps[k], base[k]), (k in basename) ? basename[k] : "-", p50[k], p99[k], fmt(cpu[k] > 0 ? events[k] / cpu[k] : "-")
    }
  }' "$dir/sqlite.tsv" "$dir/cairn.tsv"
echo
echo "== cairn bench rows (name, events, seconds, events/s, MB/s, p50_us, p99_us, cpu_s, rss, anon, hwm MiB; note; command)"
tail -n +2 "$dir/cairn.tsv"
echo
echo "== SQLite rows"
tail -n +2 "$dir/sqlite.tsv"
echo
echo "results kept in $dir (fio.txt, cairn.tsv, sqlite.tsv)"
