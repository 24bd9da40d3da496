#!/usr/bin/env bash
# Ask the governance portal whether a model version may deploy to a target.
#
#   PORTAL_URL=https://governance.example.com PORTAL_TOKEN=... \
#     deploy/ci/gate-check.sh demand-forecasting 1.4.0 production
#
# The token needs the `gates:read` scope. While the review is pending the script asks
# again every GATE_POLL_SECONDS (default 30) until GATE_WAIT_SECONDS (default 1800)
# have passed. When the gate opens it prints the approvals and writes the signed
# attestation to ATTESTATION_FILE (default ./attestation.jwt), for a later step to
# verify with verify-attestation.py against the portal's /.well-known/jwks.json.
#
# A portal that is briefly unavailable (503, e.g. its database failing over) or asks
# the script to slow down (429) is asked again after its Retry-After, within the same
# GATE_WAIT_SECONDS.
#
# Exit status: 0 allowed; 1 refused (rejected, expired, no review, discarded, or still pending
# when the wait ran out); 2 any other failure (bad arguments, network, server error,
# or the portal still unavailable when the wait ran out).
#
# Needs bash, curl and python3 (for JSON); no jq.
set -euo pipefail

readonly EXIT_REFUSED=1
readonly EXIT_ERROR=2

fail() {
    echo "gate-check: $*" >&2
    exit "$EXIT_ERROR"
}

indent() {
    local line
    for line in "$@"; do
        printf '  %s\n' "$line"
    done
}

[[ $# -eq 3 ]] || fail "usage: gate-check.sh MODEL VERSION TARGET"
[[ -n "${PORTAL_URL:-}" ]] || fail "PORTAL_URL is not set"
[[ -n "${PORTAL_TOKEN:-}" ]] || fail "PORTAL_TOKEN is not set"

model=$1
version=$2
target=$3
wait_seconds=${GATE_WAIT_SECONDS:-1800}
poll_seconds=${GATE_POLL_SECONDS:-30}
attestation_file=${ATTESTATION_FILE:-attestation.jwt}
request_timeout=${GATE_REQUEST_TIMEOUT_SECONDS:-30}
[[ "$wait_seconds" =~ ^[0-9]+$ ]] || fail "GATE_WAIT_SECONDS must be a whole number of seconds"
[[ "$poll_seconds" =~ ^[0-9]+$ ]] || fail "GATE_POLL_SECONDS must be a whole number of seconds"

command -v curl >/dev/null || fail "curl is not installed"
command -v python3 >/dev/null || fail "python3 is not installed"

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
# The token goes to curl through a file, so it never shows in the process list.
(
    umask 077
    printf 'Authorization: Bearer %s\n' "$PORTAL_TOKEN" >"$workdir/auth-header"
)

path=$(python3 -c 'import sys, urllib.parse as u; print("/".join(u.quote(a, safe="") for a in sys.argv[1:]))' \
    "$model" "$version" "$target")
url="${PORTAL_URL%/}/api/v1/gates/$path"

# Reads the gate's JSON answer; prints `state<TAB>summary` lines for the shell.
read_answer() {
    python3 - "$1" "$2" <<'PY'
import json
import sys

body_path, mode = sys.argv[1], sys.argv[2]
try:
    with open(body_path, encoding="utf-8") as handle:
        answer = json.load(handle)
except (OSError, ValueError):
    print("unreadable")
    sys.exit(0)
if not isinstance(answer, dict):
    print("unreadable")
    sys.exit(0)

if mode == "allowed":
    if answer.get("allowed") is not True or not isinstance(answer.get("attestation"), str):
        print("unreadable")
        sys.exit(0)
    print("allowed")
    review = answer.get("review")
    if isinstance(review, dict):
        review = review.get("id", review)
    print(f"review: {review}")
    for approval in answer.get("approvals") or []:
        if isinstance(approval, dict):
            who = next(
                (approval[k] for k in ("reviewer", "user", "username", "name", "id") if k in approval),
                "?",
            )
            when = approval.get("decided_at") or approval.get("at") or ""
            print(f"approved by {who} as {approval.get('role', '?')} {when}".rstrip())
        else:
            print(f"approved by {approval}")
    print(f"approval valid until: {answer.get('expires_at')}")
    sys.exit(0)

state = answer.get("state")
print(state if isinstance(state, str) and state else "unknown")
missing = answer.get("missing_roles") or []
failed = answer.get("failed_checks") or []
if missing:
    print("missing approvals: " + ", ".join(map(str, missing)))
for check in failed:
    if isinstance(check, dict):
        name = check.get("name") or check.get("check") or "?"
        detail = check.get("detail") or check.get("reason") or check.get("message") or ""
        print(f"failed check: {name}" + (f" ({detail})" if detail else ""))
    else:
        print(f"failed check: {check}")
if answer.get("error"):
    print(f"error: {answer['error']}")
PY
}

# Seconds the last answer asked us to wait (Retry-After in seconds), else the poll
# interval; at least one, so an answer without the header is not asked again at once.
retry_after_seconds() {
    local value
    value=$(tr -d '\r' <"$workdir/headers" |
        awk -F': *' 'tolower($1) == "retry-after" { value = $2 } END { print value }')
    if [[ ! "$value" =~ ^[0-9]+$ ]]; then
        value=$poll_seconds
    fi
    echo $((value > 0 ? value : 1))
}

deadline=$(($(date +%s) + wait_seconds))
attempt=0
while true; do
    attempt=$((attempt + 1))
    status=$(curl --silent --show-error --max-time "$request_timeout" \
        --header "@$workdir/auth-header" --header "Accept: application/json" \
        --dump-header "$workdir/headers" --output "$workdir/body" \
        --write-out '%{http_code}' "$url") ||
        fail "could not reach $url"

    case "$status" in
    200)
        mapfile -t lines < <(read_answer "$workdir/body" allowed)
        [[ "${lines[0]:-}" == "allowed" ]] || fail "200 from the gate without an attestation"
        python3 - "$workdir/body" "$attestation_file" <<'PY'
import json
import sys

with open(sys.argv[1], encoding="utf-8") as source:
    token = json.load(source)["attestation"]
with open(sys.argv[2], "w", encoding="utf-8") as target:
    target.write(token + "\n")
PY
        echo "gate-check: $model $version may deploy to $target"
        indent "${lines[@]:1}"
        echo "  attestation written to $attestation_file"
        exit 0
        ;;
    403)
        mapfile -t lines < <(read_answer "$workdir/body" refused)
        state=${lines[0]:-unknown}
        case "$state" in
        pending)
            now=$(date +%s)
            if ((now + poll_seconds > deadline)); then
                echo "gate-check: review of $model $version for $target still pending" \
                    "after ${wait_seconds}s ($attempt checks)" >&2
                indent "${lines[@]:1}" >&2
                exit "$EXIT_REFUSED"
            fi
            echo "gate-check: review pending (check $attempt); asking again in ${poll_seconds}s"
            indent "${lines[@]:1}"
            sleep "$poll_seconds"
            ;;
        rejected | expired | no_review | discarded)
            echo "gate-check: $model $version may NOT deploy to $target: $state" >&2
            indent "${lines[@]:1}" >&2
            exit "$EXIT_REFUSED"
            ;;
        *)
            indent "${lines[@]:1}" >&2
            fail "403 from the gate (state: $state): check the token's gates:read scope"
            ;;
        esac
        ;;
    429 | 503)
        mapfile -t lines < <(read_answer "$workdir/body" refused)
        pause=$(retry_after_seconds)
        now=$(date +%s)
        if ((now + pause > deadline)); then
            indent "${lines[@]:1}" >&2
            fail "the gate answered HTTP $status and asked to wait ${pause}s, past the" \
                "${wait_seconds}s wait ($attempt checks)"
        fi
        echo "gate-check: the portal is briefly unavailable (HTTP $status, check $attempt);" \
            "asking again in ${pause}s"
        sleep "$pause"
        ;;
    *)
        mapfile -t lines < <(read_answer "$workdir/body" refused)
        indent "${lines[@]:1}" >&2
        fail "the gate answered HTTP $status"
        ;;
    esac
done
