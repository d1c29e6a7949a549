#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS seconds each (default 60) on the stable toolchain.
#
#   bash fuzz/run.sh [SECONDS]
#
# Works from any directory. Installs cargo-fuzz when missing. Seeds the parse_batch corpus from
# tests/fixtures/, the http_gate and http_head corpora from a few hand-written heads, the
# http_chunked corpus from a few hand-written chunked bodies and the journal_open corpus
# from fuzz/seeds/journal_open/ when a corpus is missing or empty. fuzz/TARGET.dict, when present, is passed as TARGET's dictionary. Exits non-zero when
# any target fails (crash, panic, oracle disagreement, leak, timeout, OOM) or does not build.
#
# Sanitizer: AddressSanitizer (cargo-fuzz's default). It needs nightly-only rustc flags, which
# RUSTC_BOOTSTRAP=1 unlocks on the stable toolchain;
# it was verified to build and run on the development machine. If the ASan build fails anyway,
# the script falls back to `-s none` (no sanitizer, plain stable) and says so. Force a choice
# with FUZZ_SANITIZER=address|none (any `cargo fuzz -s` value).
# Input size: -max_len=$FUZZ_MAX_LEN (default 32768). Without it libFuzzer takes the largest seed
# (tests/fixtures/batches/batch-1000.json, 440 KB) as the limit and runs ~5x slower (measured:
# ~2,300 vs ~11,400 exec/s with ASan); 32 KiB still holds every fixture but the two big batches,
# which are loaded truncated (the unit tests cover them whole). FUZZ_MAX_LEN=0 lets libFuzzer guess.
# Other knobs: FUZZ_JOBS (parallel libFuzzer jobs per target, default 1).
set -euo pipefail

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: $0 [SECONDS]   (SECONDS: a positive integer, default 60)" >&2
    exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

export RUSTC_BOOTSTRAP=1

# --- cargo-fuzz ------------------------------------------------------------------------------
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> cargo-fuzz not found: cargo install cargo-fuzz --locked"
    t0=$SECONDS
    cargo install cargo-fuzz --locked
    echo "==> cargo-fuzz installed in $((SECONDS - t0)) s"
fi
echo "==> $(cargo fuzz --version)"

# libFuzzer itself is C++ (built by libfuzzer-sys with the cc crate).
if ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1 && ! command -v clang++ >/dev/null 2>&1; then
    echo "error: no C++ compiler (c++/g++/clang++): libfuzzer-sys needs one (Debian: apt-get install g++)" >&2
    exit 1
fi

# --- seed corpus ---------------------------------------------------------------------------
# Every .json file under tests/fixtures/ (all folders). Names get their folder as a prefix, so
# files with the same name in two folders do not overwrite each other.
# kept DIR: true (and says so) when DIR already holds a corpus, which is then left alone.
kept() {
    if [ -d "$1" ] && [ -n "$(ls -A "$1" 2>/dev/null)" ]; then
        echo "==> corpus $1: $(find "$1" -type f | wc -l) inputs (kept)"
        return 0
    fi
    return 1
}

seed_corpus() {
    local dir="$1"
    kept "$dir" && return
    mkdir -p "$dir"
    local count=0 file rel
    while IFS= read -r -d '' file; do
        rel="${file#tests/fixtures/}"
        cp "$file" "$dir/${rel//\//__}"
        count=$((count + 1))
    done < <(find tests/fixtures -type f -name '*.json' -print0 | sort -z)
    echo "==> corpus $dir: seeded with $count fixtures from tests/fixtures/"
}
seed_corpus fuzz/corpus/parse_batch

# http_gate: a few hand-written heads in the target's input layout (see the top of
# fuzz_targets/http_gate.rs): flags byte (bits 0-1 token mode, 2-3 version and Host: \x00 is
# HTTP/1.1 with Host, \x04 HTTP/1.0 without), max_body byte (\x08 is 1000), then \n-separated
# lines: method selector (\x00 POST, \x01 GET, \x02 HEAD), target selector (\x00 the webhook
# path, \x01 /healthz, \x02 /metrics), token, and one line per header (selector byte + value;
# \x00 is Content-Length, \x03 Transfer-Encoding, \x05 Authorization, \x06 Authentication,
# \x07 Connection, \x08 Expect, \x09 X-Egnyte-Auth, \x1f a raw "name:value" line). The first
# five are let through (Ingest or Read), the rest refused by the gate; none fails.
seed_http_gate() {
    local dir="fuzz/corpus/http_gate"
    kept "$dir" && return
    mkdir -p "$dir"
    # POST /egnyte/webhook, Content-Length: 5
    printf '\x00\x08\x00\n\x00\n\n\x005' >"$dir/seed-post"
    # ... with a token in Authorization, and Expect: 100-continue
    printf '\x01\x08\x00\n\x00\nToken XYZ\n\x05$T\n\x005\n\x08100-continue' >"$dir/seed-post-token"
    # ... with the token in the custom header X-Egnyte-Auth, chunked, a query string
    printf '\x02\x08\x00\n\x00?x=1\nToken XYZ\n\x09$T\n\x03chunked' >"$dir/seed-post-custom-chunked"
    # GET /healthz, Connection: close
    printf '\x00\x00\x01\n\x01\n\n\x07close' >"$dir/seed-get-healthz"
    # HTTP/1.0 HEAD /metrics, Connection: keep-alive, Content-Length: 0
    printf '\x04\x00\x02\n\x02\n\n\x07keep-alive\n\x0000' >"$dir/seed-head-metrics"
    # POST /egnyte/webhook, the token twice in Authorization, then in a raw lowercase line
    printf '\x01\x08\x00\n\x00\nToken XYZ\n\x05$T\n\x1fauthorization:Token XYZ' >"$dir/seed-token-twice"
    # ... a near miss in Authentication, the token in the wrong header
    printf '\x01\x08\x00\n\x00\nToken XYZ\n\x06$T_\n\x09$T' >"$dir/seed-token-wrong"
    # GET /metrics with a body; PUT /egnyte/webhook; GET /nope
    printf '\x00\x08\x01\n\x02\n\n\x003' >"$dir/seed-get-body"
    printf '\x00\x08\x03\n\x00\n\n\x000' >"$dir/seed-put-webhook"
    printf '\x00\x08\x01\n\x05nope\n' >"$dir/seed-not-found"
    echo "==> corpus $dir: seeded with $(find "$dir" -type f | wc -l) hand-written heads"
}
seed_http_gate

# http_head: a few hand-written heads in the target's input layout (see the top of
# fuzz_targets/http_head.rs): a limits byte (low nibble max_headers, high nibble max_head_bytes:
# \xed is 100 and 4096, \x92 is 2 and 100), another (low nibble max_target_bytes, high nibble
# max_body: \x8b is 1024 and 1000, \x35 is 8 and 5), a split seed byte, then the bytes a client
# sends. The first seven are valid (and the last of those unfinished), the rest each refused
# for one reason.
seed_http_head() {
    local dir="fuzz/corpus/http_head"
    kept "$dir" && return
    mkdir -p "$dir"
    printf '\xed\x8b\x00GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n' >"$dir/seed-get"
    printf '\xed\x8b\x01\r\n\nPOST /egnyte/webhook?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello' \
        >"$dir/seed-post-leading-lines-body"
    printf '\xed\x8b\x02POST * HTTP/1.1\nHost: a\nTransfer-Encoding:\tCHUNKED\nConnection: Upgrade, close\n\n' \
        >"$dir/seed-bare-lf-chunked"
    printf '\xed\x8b\x03HEAD /metrics HTTP/1.0\r\nConnection:  Keep-Alive \r\nX: \xff v \t\r\nExpect: 100-continue\r\n\r\n' \
        >"$dir/seed-http10-keep-alive"
    printf '\xed\x8b\x18GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n' >"$dir/seed-http10-close"
    printf '\xed\x8b\x04POST /\xc3\xa9 HTTP/1.1\r\nhost: a\r\nContent-Length: 7\r\ncontent-length: 007\r\n\r\n' \
        >"$dir/seed-utf8-repeated-length"
    printf '\xed\x8b\x05POST /egnyte/webhook HTTP/1.1\r\nHost: a\r\nAuthorization: Tok' >"$dir/seed-unfinished"
    printf '\xed\x8b\x06GE T / HTTP/1.1\r\nHost: a\r\n\r\n' >"$dir/seed-space-in-method"
    printf '\xed\x8b\x07GET / HTTP/2.0\r\n\r\n' >"$dir/seed-version"
    printf '\xed\x8b\x08PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' >"$dir/seed-h2-preface"
    printf '\xed\x8b\x09\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03' >"$dir/seed-tls"
    printf '\xed\x8b\x0aGET / HTTP/1.1\r\nContent-Length : 5\r\n\r\n' >"$dir/seed-space-before-colon"
    printf '\xed\x8b\x0bGET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n' >"$dir/seed-obs-fold"
    printf '\xed\x8b\x0cGET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n' >"$dir/seed-bare-cr"
    printf '\xed\x8b\x0dGET / HTTP/1.1\r\nConnection: close\r\n\r\n' >"$dir/seed-no-host"
    printf '\xed\x8b\x0ePOST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n' \
        >"$dir/seed-te-and-cl"
    printf '\xed\x8b\x0fPOST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n' >"$dir/seed-te-gzip"
    printf '\xed\x8b\x10POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n' >"$dir/seed-te-http10"
    printf '\xed\x8b\x17POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n' >"$dir/seed-te-stray-comma"
    printf '\xed\x8b\x11POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n' >"$dir/seed-cl-differ"
    printf '\xed\x8b\x12POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n' >"$dir/seed-cl-plus"
    printf '\xed\x8b\x13POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n' >"$dir/seed-cl-over-max-body"
    printf '\x92\x35\x14GET /abcdefgh HTTP/1.1\r\nHost: a\r\n\r\n' >"$dir/seed-target-too-long"
    printf '\x92\x35\x15GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n' >"$dir/seed-too-many-headers"
    printf '\x92\x35\x16GET / HTTP/1.1\r\nX: %0200d' 0 >"$dir/seed-endless-header"
    echo "==> corpus $dir: seeded with $(find "$dir" -type f | wc -l) hand-written heads"
}
seed_http_head

# http_chunked: a few hand-written chunked bodies in the target's input layout (see the top of
# fuzz_targets/http_chunked.rs): a limits byte (low nibble max_body, high nibble extension
# bytes: \xcb is 1 MiB and 16 KiB, \xc3 is 5 and 16 KiB), a trailer limits byte (\xab: 32 KiB
# and 100 fields), a split seed byte, then the body. The first five are valid (the first one
# empty: incomplete), the rest are each refused for one reason.
seed_http_chunked() {
    local dir="fuzz/corpus/http_chunked"
    kept "$dir" && return
    mkdir -p "$dir"
    printf '\xcb\xab\x00' >"$dir/seed-empty-input"
    printf '\xcb\xab\x01\x30\r\n\r\nPOST / HTTP/1.1\r\n' >"$dir/seed-empty-body-pipelined"
    printf '\xcb\xab\x02\x35\r\nhello\r\n0\r\n\r\n' >"$dir/seed-one-chunk"
    # three chunks, an extension with a quoted value, a trailer
    printf '\xcb\xab\x03\x34;x=y\r\nWiki\r\n5 ; q="a\\"b"\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\n' \
        >"$dir/seed-three-chunks"
    printf '\xcb\xab\x07\x30005\r\nhello\r\n000;last\r\nA:\r\nB: \xff v\r\n\r\n' >"$dir/seed-zeros-trailers"
    printf '\xcb\xab\x04\x35\nhello\r\n0\r\n\r\n' >"$dir/seed-bare-lf"
    printf '\xcb\xab\x05\x35\r\nhello!!\r\n0\r\n\r\n' >"$dir/seed-spill"
    printf '\xcb\xab\x06\x30x5\r\nhello\r\n0\r\n\r\n' >"$dir/seed-0x"
    printf '\xcb\xab\x08\r\n;a=b\r\n0\r\n\r\n' >"$dir/seed-empty-size"
    printf '\xcb\xab\x09\x30000000000000000F\r\n' >"$dir/seed-17-digits"
    printf '\xcb\xab\x0a\x35;a="b\r\n"\r\nhello\r\n0\r\n\r\n' >"$dir/seed-cr-in-quoted"
    printf '\xcb\xab\x0b\x30\r\nA: 1\r\n folded\r\n\r\n' >"$dir/seed-obs-fold"
    printf '\xc3\xab\x0c\x33\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n' >"$dir/seed-too-large"
    echo "==> corpus $dir: seeded with $(find "$dir" -type f | wc -l) hand-written chunked bodies"
}
seed_http_chunked

# journal_open: committed binary seeds in the target's input layout (see the top of
# fuzz_targets/journal_open.rs: a flags byte, then segment bytes). They are segment files that the
# journal itself wrote (Journal::append on a MemStorage, then MemStorage::bytes; format::seal for
# the segment named after a gap): one segment of events, a quarantined record and an empty
# payload, a torn tail, a header alone, two segments (adjacent, after a gap, the first one empty),
# the small-segment flag that makes the target's append rotate, and copies of some with the
# fix-checksums flag (so that mutations reach the checks behind the CRC). Binary rather than printf
# lines because every record carries a CRC-32. After a format change, make them again the same
# way (a few lines of Rust against egnyte_receiver::journal) and check each one with
# `cargo fuzz run journal_open SEED`.
seed_journal_open() {
    local dir="fuzz/corpus/journal_open"
    kept "$dir" && return
    mkdir -p "$dir"
    cp fuzz/seeds/journal_open/* "$dir/"
    echo "==> corpus $dir: seeded with $(find "$dir" -type f | wc -l) segment files from fuzz/seeds/journal_open/"
}
seed_journal_open

# --- sanitizer -----------------------------------------------------------------------------
mapfile -t targets < <(cargo fuzz list)
if [ "${#targets[@]}" -eq 0 ]; then
    echo "error: cargo fuzz list found no targets" >&2
    exit 1
fi

sanitizer="${FUZZ_SANITIZER:-address}"
echo "==> building ${targets[*]} (sanitizer: $sanitizer)"
t0=$SECONDS
if ! cargo fuzz build -s "$sanitizer"; then
    if [ -n "${FUZZ_SANITIZER:-}" ] || [ "$sanitizer" = none ]; then
        echo "error: cargo fuzz build -s $sanitizer failed" >&2
        exit 1
    fi
    echo "WARNING: the AddressSanitizer build failed on this machine; falling back to -s none" \
         "(no sanitizer: memory errors in unsafe code below the library may go unnoticed)" >&2
    sanitizer=none
    cargo fuzz build -s "$sanitizer"
fi
echo "==> built in $((SECONDS - t0)) s"

# --- run -----------------------------------------------------------------------------------
logs="$(mktemp -d "${TMPDIR:-/tmp}/fuzz-logs.XXXXXX")"
failed=0
summary=()
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    artifacts="fuzz/artifacts/$target"
    mkdir -p "$corpus" "$artifacts"
    dict_args=()
    if [ -f "fuzz/$target.dict" ]; then
        dict_args=("-dict=$root/fuzz/$target.dict")
    fi
    marker="$logs/$target.start"
    touch "$marker"
    sleep 1 # artifacts are found by mtime: keep them strictly newer than the marker
    log="$logs/$target.log"

    echo "==> fuzzing $target for $seconds s (log: $log)"
    t0=$SECONDS
    set +e
    cargo fuzz run -s "$sanitizer" "$target" -- \
        -max_total_time="$seconds" "${dict_args[@]}" \
        -rss_limit_mb=2048 -timeout=10 -max_len="${FUZZ_MAX_LEN:-32768}" -print_final_stats=1 \
        ${FUZZ_JOBS:+-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS"} \
        2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    set -e
    elapsed=$((SECONDS - t0))

    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
    peak="$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)"
    corpus_size="$(find "$corpus" -type f | wc -l)"
    line="$target: exit $status after ${elapsed} s; ${runs:-?} runs, ${rate:-?} exec/s, peak RSS ${peak:-?} MB, corpus $corpus_size, sanitizer $sanitizer"

    mapfile -t found < <(find "$artifacts" -type f -newer "$marker" | sort)
    notes=()
    if [ "$status" -ne 0 ] || [ "${#found[@]}" -gt 0 ]; then
        failed=1
        line="FAIL $line"
        for artifact in "${found[@]}"; do
            echo "!!! $target: artifact $root/$artifact"
            echo "!!!   reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run -s $sanitizer $target $artifact"
            echo "!!!   minimize:  RUSTC_BOOTSTRAP=1 cargo fuzz tmin -s $sanitizer $target $artifact"
            notes+=("     artifact: $artifact  (reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run -s $sanitizer $target $artifact)")
        done
    else
        line="ok   $line"
    fi
    echo "==> $line"
    summary+=("$line" "${notes[@]}")
done

echo
echo "==> fuzz summary ($seconds s per target)"
printf '    %s\n' "${summary[@]}"
exit "$failed"
