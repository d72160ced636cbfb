# shellcheck shell=bash
# Sourced by the scripts that run the t/ suite (scripts/test, scripts/test-package).

# prove_suite [PROVE_OPTION ...] -- FILE_OR_DIR ...: prove -I t/lib -r, run from the
# repository root. Under CI, the files that failed run once more, alone: a pass then is
# a flaky test on this shared machine, not a green run that hides it. It is printed as
# FLAKY with what failed the first time, and appended to build/test-logs/flaky.txt, which
# scripts/test prints after its summary. A failure in the second run fails the suite.
prove_suite() {
  local opts=() files=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  files=("$@")
  local repo log rc
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  log=$(mktemp)
  (cd "$repo" && prove -I t/lib -r "${opts[@]}" "${files[@]}") 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  if [ "$rc" = 0 ] || [ "${CI:-}" != true ]; then
    rm -f "$log"
    return "$rc"
  fi
  local failed=()
  mapfile -t failed < <(sed -n 's/^\(\S*\.t\) *(Wstat: .*/\1/p' "$log")
  if [ ${#failed[@]} = 0 ]; then
    rm -f "$log"
    return "$rc"
  fi
  printf '\n==> prove_suite: %s failed; once more, alone\n' "${failed[*]}"
  (cd "$repo" && prove -I t/lib "${opts[@]}" "${failed[@]}") || { rm -f "$log"; return 1; }
  mkdir -p "$repo/build/test-logs"
  {
    printf 'FLAKY (%s, passed when run again): %s\n' "${TEST_NGINX_BINARY:-nginx}" "${failed[*]}"
    grep -E '^#   Failed test|^#   at |^#  +(got|expected):' "$log" | head -n 40
  } | tee -a "$repo/build/test-logs/flaky.txt"
  rm -f "$log"
}
