#!/usr/bin/env bash
# Fuzz every target for SECONDS each (and at most RUNS executions each, when given), one after
# the other, one libFuzzer process at a time, under `nice -n 19`; print executions and crashes
# per target; merge what the run found back into fuzz/corpus (minimised, capped); exit 1 if
# any target crashed. Reproducers of crashes are copied to fuzz/regressions/<target>/.
#
#   fuzz/run.sh SECONDS [RUNS]
#
# SECONDS = 0 fuzzes nothing: it only merges fuzz/scratch (e.g. corpora from another machine)
# into fuzz/corpus as below.
#
# Environment:
#   FUZZ_TARGETS    space-separated subset of targets (default: all, in the order below)
#   FUZZ_TOOLCHAIN  toolchain to build with (default: nightly when installed, otherwise the
#                   one rust-toolchain.toml pins, with RUSTC_BOOTSTRAP=1 for the -Z flags)
#   FUZZ_CORPUS_CAP   most files kept per target corpus (default 300; seeds always kept)
#   FUZZ_CORPUS_BYTES most bytes of non-seed files kept per target (default 524288)
#   FUZZ_SEED         libFuzzer -seed (default: random; each log records the one used)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a C++ compiler (libfuzzer-sys builds
# libFuzzer). Builds into fuzz/target; the full working corpora stay in fuzz/scratch (reused
# by the next run), crash artifacts and logs go to fuzz/artifacts (all ignored by git).
set -euo pipefail

usage() {
  echo "usage: fuzz/run.sh SECONDS [RUNS]" >&2
  exit 2
}
[[ $# -ge 1 && $# -le 2 ]] || usage
[[ $1 =~ ^[0-9]+$ ]] || usage
secs=$1
runs=${2:--1}
[[ $runs =~ ^-?[0-9]+$ ]] || usage

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
fuzz=fuzz
all_targets=(contract_toml workload_toml cose_bytes cose_base64 snp_report snp_chain tdx_quote
  azure_hcl evidence_json evidence_parts sealed_stream output_envelope key_file file_identity
  kbs_json jwe audit_log pme_key_material arrow_ipc parquet_encrypted room_api)
read -r -a targets <<<"${FUZZ_TARGETS:-${all_targets[*]}}"
cap=${FUZZ_CORPUS_CAP:-300}
budget=${FUZZ_CORPUS_BYTES:-524288}
max_bytes=65535 # every committed corpus file is under 64 kB

# Toolchain: nightly when present; otherwise the pinned one, whose rustc accepts the -Z flags
# cargo-fuzz passes (sanitizer, coverage) with RUSTC_BOOTSTRAP=1.
pinned=$(sed -n 's/^channel *= *"\(.*\)".*/\1/p' rust-toolchain.toml)
if [[ -n ${FUZZ_TOOLCHAIN:-} ]]; then
  toolchain=$FUZZ_TOOLCHAIN
elif rustup run nightly rustc --version >/dev/null 2>&1; then
  toolchain=nightly
else
  toolchain=$pinned
fi
if ! rustup run "$toolchain" rustc --version | grep -q nightly; then
  export RUSTC_BOOTSTRAP=1
fi
if ! cargo "+$toolchain" fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
  exit 2
fi
echo "toolchain: $(rustup run "$toolchain" rustc --version)${RUSTC_BOOTSTRAP:+ (RUSTC_BOOTSTRAP=1)}"

# Build every target (release, debug assertions, AddressSanitizer: cargo-fuzz's defaults).
nice -n 19 cargo "+$toolchain" fuzz build --fuzz-dir "$fuzz" >&2
bindir=$fuzz/target/x86_64-unknown-linux-gnu/release

dict_for() {
  case $1 in
    contract_toml | workload_toml) echo "$fuzz/dict/toml.dict" ;;
    evidence_json) echo "$fuzz/dict/json.dict" ;;
    snp_chain | tdx_quote | evidence_parts) echo "$fuzz/dict/parts.dict" ;;
    sealed_stream | output_envelope | key_file | file_identity | kbs_json | jwe | audit_log | pme_key_material)
      echo "$fuzz/dict/formats.dict" ;;
    parquet_encrypted) echo "$fuzz/dict/parquet.dict" ;;
    room_api) echo "$fuzz/dict/room.dict" ;;
    *) echo "" ;;
  esac
}

# Largest single allocation (MB) a target may make before libFuzzer reports it as an OOM
# crash (libFuzzer's default is the RSS limit). The formats parsers read length fields from
# their input; the largest they may allocate by design is two sealed-stream segment buffers
# of MAX_SEGMENT_SIZE (16 MiB) + 16 bytes each, so anything above 64 MB is a finding. The
# room's targets read files and bodies of a few kB under a 64 MiB engine memory pool: the
# same limit.
malloc_limit_for() {
  case $1 in
    sealed_stream | output_envelope | key_file | file_identity | kbs_json | jwe | audit_log | \
      pme_key_material | arrow_ipc | parquet_encrypted | room_api)
      echo 64 ;;
    *) echo 2048 ;;
  esac
}

# After a run: (1) merge corpus/<t> and scratch/<t> (what this and earlier runs found) into a
# new scratch/<t>, the full minimised working corpus (libFuzzer -merge=1; local, ignored by
# git, the starting point of the next run); (2) replace the non-seed files of corpus/<t>, the
# committed corpus, with a greedy set cover of it (-set_cover_merge=1), files under 64 kB, at
# most $cap files and $budget bytes besides the seeds (the smallest first when over).
merge_corpus() {
  local t=$1 bin=$2 full=$fuzz/scratch/$t.full cover=$fuzz/scratch/$t.cover
  local mlog=$fuzz/artifacts/logs/$t.merge.log
  rm -rf "$full" "$cover"
  mkdir -p "$full" "$cover"
  if ! nice -n 19 "$bin" -merge=1 -rss_limit_mb=2048 -timeout=30 "$full" "$fuzz/corpus/$t" \
    "$fuzz/scratch/$t" >"$mlog" 2>&1; then
    echo "merge failed for $t (see $mlog); corpus left as it was" >&2
    rm -rf "$full" "$cover"
    return 0
  fi
  rm -rf "$fuzz/scratch/$t"
  mv "$full" "$fuzz/scratch/$t"
  if ! nice -n 19 "$bin" -set_cover_merge=1 -rss_limit_mb=2048 -timeout=30 "$cover" \
    "$fuzz/scratch/$t" >>"$mlog" 2>&1; then
    echo "set-cover merge failed for $t (see $mlog); corpus left as it was" >&2
    rm -rf "$cover"
    return 0
  fi
  local seeds_sha nseeds
  seeds_sha=$(find "$fuzz/corpus/$t" -maxdepth 1 -type f -name 'seed-*' -exec sha1sum {} + |
    cut -d' ' -f1 | sort -u)
  nseeds=$(find "$fuzz/corpus/$t" -maxdepth 1 -type f -name 'seed-*' | wc -l)
  local room=$((cap - nseeds))
  ((room < 0)) && room=0
  local keep=() used=0
  while IFS= read -r line; do
    local size=${line%% *} f=${line#* }
    ((${#keep[@]} >= room || used + size > budget)) && break
    local sha
    sha=$(sha1sum "$f" | cut -d' ' -f1)
    grep -qx "$sha" <<<"$seeds_sha" && continue
    keep+=("$f")
    used=$((used + size))
  done < <(find "$cover" -maxdepth 1 -type f -size -$((max_bytes + 1))c -printf '%s %p\n' | sort -n)
  find "$fuzz/corpus/$t" -maxdepth 1 -type f ! -name 'seed-*' -delete
  if ((${#keep[@]} > 0)); then
    cp "${keep[@]}" "$fuzz/corpus/$t/"
  fi
  rm -rf "$cover"
}

mkdir -p "$fuzz/artifacts/logs" "$fuzz/scratch"
summary=$fuzz/artifacts/summary.tsv
printf 'target\texecs\tseconds\texecs_per_s\tcorpus_files\tcorpus_bytes\tcrashes\n' >"$summary"
failed=0
for t in "${targets[@]}"; do
  bin=$bindir/$t
  [[ -x $bin ]] || {
    echo "no binary for target $t" >&2
    exit 2
  }
  mkdir -p "$fuzz/scratch/$t" "$fuzz/artifacts/$t" "$fuzz/corpus/$t"
  log=$fuzz/artifacts/logs/$t.log
  before=$(find "$fuzz/artifacts/$t" -maxdepth 1 -type f | sort)
  dict=$(dict_for "$t")
  args=(-max_total_time="$secs" -runs="$runs" -rss_limit_mb=2048 -timeout=30
    -malloc_limit_mb="$(malloc_limit_for "$t")" -print_final_stats=1
    -artifact_prefix="$fuzz/artifacts/$t/")
  [[ -n $dict ]] && args+=(-dict="$dict")
  [[ -n ${FUZZ_SEED:-} ]] && args+=(-seed="$FUZZ_SEED")
  echo "== $t: ${secs}s$( ((runs >= 0)) && echo ", at most $runs runs")" >&2
  start=$(date +%s)
  status=0
  if ((secs > 0)); then
    nice -n 19 "$bin" "${args[@]}" "$fuzz/scratch/$t" "$fuzz/corpus/$t" >"$log" 2>&1 || status=$?
  else
    : >"$log"
  fi
  elapsed=$(($(date +%s) - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  [[ -n $execs ]] || execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log" | tail -1)
  [[ -n $execs ]] || execs=0
  new=$(comm -13 <(echo "$before") <(find "$fuzz/artifacts/$t" -maxdepth 1 -type f | sort) |
    grep -E '/(crash|oom|timeout|leak)-' || true)
  crashes=0
  if [[ $status -ne 0 || -n $new ]]; then
    crashes=$(grep -c . <<<"$new" || true)
    ((crashes == 0)) && crashes=1 # a non-zero exit without an artifact still fails the run
    failed=1
    mkdir -p "$fuzz/regressions/$t"
    [[ -n $new ]] && cp $new "$fuzz/regressions/$t/"
    echo "!! $t: exit $status, $crashes crash(es); log $log; reproducers in $fuzz/regressions/$t/" >&2
    grep -E '^(==[0-9]+==ERROR|thread .* panicked|SUMMARY)' "$log" | head -5 >&2 || true
  fi
  merge_corpus "$t" "$bin"
  files=$(find "$fuzz/corpus/$t" -maxdepth 1 -type f | wc -l)
  bytes=$(find "$fuzz/corpus/$t" -maxdepth 1 -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
  rate=$((elapsed > 0 ? execs / elapsed : execs))
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$execs" "$elapsed" "$rate" "$files" "$bytes" \
    "$crashes" >>"$summary"
done

echo
column -t -s $'\t' "$summary"
if ((failed)); then
  echo "crashes found: reproducers in $fuzz/regressions/, logs in $fuzz/artifacts/logs/" >&2
  exit 1
fi
