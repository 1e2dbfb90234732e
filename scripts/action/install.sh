#!/usr/bin/env bash
# The GitHub Action's download step: installs the prebuilt hookfwd for this runner and puts it on PATH.
#
# Picks the release asset for RUNNER_OS and RUNNER_ARCH, downloads it and the release's sha256.sum,
# refuses it unless the checksum matches, unpacks it into the tool cache and appends that directory
# to GITHUB_PATH. Every failure is one sentence on stderr and a non-zero exit.
#
# Environment (action.yml sets these from its inputs):
#   HOOKFWD_VERSION      a release tag (v0.1.0 or 0.1.0) or "latest"
#   HOOKFWD_REPOSITORY   owner/name of the repository whose releases to use
#   HOOKFWD_RELEASES_URL the releases root, instead of https://github.com/$HOOKFWD_REPOSITORY/releases;
#                        laid out like GitHub's: download/<tag>/<asset> and latest/download/<asset>
#                        (file:// works, which is how the tests use it)
#   RUNNER_OS, RUNNER_ARCH, RUNNER_TOOL_CACHE, RUNNER_TEMP, GITHUB_PATH, GITHUB_OUTPUT (set by the runner)
set -euo pipefail

die() {
  echo "hookfwd install: $*" >&2
  exit 1
}

# The Rust target that release.yml builds for this runner, and the archive it is packed in.
case "${RUNNER_OS:-}/${RUNNER_ARCH:-}" in
  Linux/X64) target=x86_64-unknown-linux-musl ext=tar.gz ;;
  Linux/ARM64) target=aarch64-unknown-linux-musl ext=tar.gz ;;
  macOS/X64) target=x86_64-apple-darwin ext=tar.gz ;;
  macOS/ARM64) target=aarch64-apple-darwin ext=tar.gz ;;
  Windows/X64) target=x86_64-pc-windows-msvc ext=zip ;;
  *) die "no prebuilt hookfwd for runner OS '${RUNNER_OS:-unset}' on '${RUNNER_ARCH:-unset}' (there are Linux X64/ARM64, macOS X64/ARM64 and Windows X64); build it with 'cargo install hookfwd' instead." ;;
esac
asset="hookfwd-$target.$ext"

version="${HOOKFWD_VERSION:-latest}"
case "$version" in
  */* | *..*) die "version '$version' is not a release tag like v0.1.0, nor 'latest'." ;;
  latest) ;;
  v[0-9]*) ;;
  [0-9]*) version="v$version" ;;
  *) die "version '$version' is not a release tag like v0.1.0, nor 'latest'." ;;
esac

releases="${HOOKFWD_RELEASES_URL:-}"
if [ -z "$releases" ]; then
  [ -n "${HOOKFWD_REPOSITORY:-}" ] || die "no repository to download from: set the action's 'repository' input."
  releases="https://github.com/$HOOKFWD_REPOSITORY/releases"
fi
releases="${releases%/}"
if [ "$version" = latest ]; then
  base="$releases/latest/download"
else
  base="$releases/download/$version"
fi

exe=hookfwd
[ "$ext" = zip ] && exe=hookfwd.exe
# Git Bash on Windows: the runner's paths are C:\… ones; work with their /c/… form, and hand the
# runner (GITHUB_PATH, outputs) the Windows form back.
native() { printf '%s\n' "$1"; }
if command -v cygpath >/dev/null; then
  [ -z "${RUNNER_TOOL_CACHE:-}" ] || RUNNER_TOOL_CACHE=$(cygpath -u "$RUNNER_TOOL_CACHE")
  [ -z "${RUNNER_TEMP:-}" ] || RUNNER_TEMP=$(cygpath -u "$RUNNER_TEMP")
  native() { cygpath -w "$1"; }
fi
cache="${RUNNER_TOOL_CACHE:-${TMPDIR:-/tmp}}/hookfwd/$version/$target"

# A pinned version unpacked before (on this runner, or restored by actions/cache) is used as it is;
# "latest" moves, so it is always downloaded.
if [ "$version" = latest ] || [ ! -x "$cache/$exe" ]; then
  work=$(mktemp -d "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/hookfwd-install.XXXXXX")
  trap 'rm -rf "$work"' EXIT

  # curl exits 22 for an HTTP error (404) and 37 for a file:// path that is not there.
  fetch() {
    local name=$1 code=0
    curl --fail --silent --show-error --location --retry 3 --output "$work/$name" "$base/$name" 2>"$work/curl.err" || code=$?
    case "$code" in
      0) ;;
      22 | 37) die "release $version has no asset $name ($base/$name)." ;;
      *) die "could not download $base/$name: $(tail -n 1 "$work/curl.err")" ;;
    esac
  }
  fetch "$asset"
  fetch sha256.sum

  # sha256.sum lines are "<hex>  <file>" (or "<hex> *<file>"), as sha256sum writes them.
  want=$(awk -v name="$asset" '{ file = $2; sub(/^\*/, "", file) } file == name { print tolower($1); exit }' "$work/sha256.sum")
  [ -n "$want" ] || die "release $version's sha256.sum lists no $asset."
  if command -v sha256sum >/dev/null; then
    got=$(sha256sum "$work/$asset" | awk '{ print $1 }')
  else
    got=$(shasum -a 256 "$work/$asset" | awk '{ print $1 }')
  fi
  [ "$got" = "$want" ] || die "checksum mismatch for $asset: sha256.sum says $want, the download is $got."

  mkdir -p "$work/unpacked"
  if [ "$ext" = zip ]; then
    if command -v unzip >/dev/null; then
      unzip -q "$work/$asset" -d "$work/unpacked"
    else
      7z x -y -bd -o"$work/unpacked" "$work/$asset" >/dev/null
    fi
  else
    tar -xzf "$work/$asset" -C "$work/unpacked"
  fi
  # release.yml packs hookfwd-<target>/hookfwd; a flat archive works too.
  found=$(find "$work/unpacked" -type f -name "$exe" | head -n 1)
  [ -n "$found" ] || die "$asset holds no $exe."
  rm -rf "$cache"
  mkdir -p "$cache"
  mv "$found" "$cache/$exe"
  chmod +x "$cache/$exe"
fi

if [ -n "${GITHUB_PATH:-}" ]; then
  native "$cache" >>"$GITHUB_PATH"
fi
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  {
    echo "path=$(native "$cache/$exe")"
    echo "target=$target"
  } >>"$GITHUB_OUTPUT"
fi
echo "hookfwd install: $asset ($version) in $cache" >&2
