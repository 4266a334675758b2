#!/bin/sh
# Waits for the smtp-source Job of source-job.yaml to end, takes each pod's
# JSON report (the last line of its log that starts with "{"), keeps them
# in $OUT/segment-I.json and merges them with smtp-source --merge-reports:
# the merged summary on stderr, the merged report as one JSON line on
# stdout (and in $OUT/merged.json).
#
#   deploy/kubernetes/collect.sh                  # job smtp-source in the current namespace
#   NAMESPACE=load JOB=smtp-source-2 deploy/kubernetes/collect.sh
#   SMTP_SOURCE='podman run --rm -i smtp-suite:latest /smtp-source' deploy/kubernetes/collect.sh
#
# Environment:
#   NAMESPACE    the Job's namespace (default: kubectl's current one)
#   JOB          the Job's name (default: smtp-source)
#   TIMEOUT      seconds to wait for the Job to end (default: 3600)
#   OUT          where the reports go (default: ./JOB-reports)
#   KUBECTL      the kubectl command (default: kubectl)
#   SMTP_SOURCE  the smtp-source command that merges (default: smtp-source);
#                split on spaces, so it may be a container command
#
# Exit status: smtp-source's (that of the merge) if the Job completed;
# 1 if the Job failed or did not end in time (what reports there are are
# still merged, with --partial where segments are missing); 2 on a usage
# or kubectl error.
set -eu

JOB="${JOB:-smtp-source}"
TIMEOUT="${TIMEOUT:-3600}"
OUT="${OUT:-./$JOB-reports}"
KUBECTL="${KUBECTL:-kubectl}"
SMTP_SOURCE="${SMTP_SOURCE:-smtp-source}"

say() { printf '%s\n' "collect.sh: $*" >&2; }

# kubectl with the namespace, if one is given. $KUBECTL is split on
# purpose (KUBECTL='kubectl --context lab').
kc() {
  if [ -n "${NAMESPACE:-}" ]; then
    # shellcheck disable=SC2086
    $KUBECTL --namespace "$NAMESPACE" "$@"
  else
    # shellcheck disable=SC2086
    $KUBECTL "$@"
  fi
}

case "$TIMEOUT" in
  '' | *[!0-9]*) say "TIMEOUT must be a number of seconds, not '$TIMEOUT'"; exit 2 ;;
esac

if ! segments="$(kc get "job/$JOB" -o 'jsonpath={.spec.completions}')"; then
  say "no job $JOB"
  exit 2
fi
[ -n "$segments" ] || segments=1

# Until the Job is Complete or Failed: kubectl wait on one condition at a
# time, so a failed Job is seen at once rather than after the timeout.
say "waiting up to ${TIMEOUT}s for job/$JOB ($segments segments)"
job_ok=no
waited=0
while :; do
  if kc wait --for=condition=complete "job/$JOB" --timeout=10s >/dev/null 2>&1; then
    job_ok=yes
    break
  fi
  if kc wait --for=condition=failed "job/$JOB" --timeout=0s >/dev/null 2>&1; then
    say "job/$JOB failed; merging the reports there are"
    break
  fi
  waited=$((waited + 10))
  if [ "$waited" -ge "$TIMEOUT" ]; then
    say "job/$JOB did not end within ${TIMEOUT}s; merging the reports there are"
    break
  fi
done

mkdir -p "$OUT"
rm -f "$OUT"/segment-*.json "$OUT/merged.json"

# One line per pod: its name and completion index, oldest first, so a
# replaced pod's report is overwritten by its replacement's.
pods="$(kc get pods --selector "job-name=$JOB" \
  --sort-by=.metadata.creationTimestamp \
  -o 'jsonpath={range .items[*]}{.metadata.name} {.metadata.annotations.batch\.kubernetes\.io/job-completion-index}{"\n"}{end}')"

found=0
while read -r pod index; do
  [ -n "$pod" ] || continue
  [ -n "$index" ] || index="$pod"
  report="$(kc logs "pod/$pod" --container smtp-source | grep '^{' | tail -n 1 || true)"
  if [ -z "$report" ]; then
    say "pod $pod (segment $index): no JSON report in its log"
    continue
  fi
  printf '%s\n' "$report" >"$OUT/segment-$index.json"
done <<PODS
$pods
PODS

for f in "$OUT"/segment-*.json; do
  [ -f "$f" ] && found=$((found + 1))
done
say "$found of $segments segment reports in $OUT"
if [ "$found" -eq 0 ]; then
  exit 1
fi

partial=
if [ "$found" -lt "$segments" ]; then
  partial=--partial
fi

status=0
# shellcheck disable=SC2086
cat "$OUT"/segment-*.json | $SMTP_SOURCE --merge-reports - $partial --summary --json - >"$OUT/merged.json" || status=$?
cat "$OUT/merged.json"

if [ "$job_ok" = no ]; then
  exit 1
fi
exit "$status"
