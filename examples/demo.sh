#!/usr/bin/env bash
# Offline demo: the simulated web (LLM, image search, image hosts with faults) on loopback,
# then names → collect → promote → recognise → verify → stats → export, in a throw-away home.
#   bash examples/demo.sh            (from the repository root; the shared photos must exist)
# Env: FACEATLAS_TESTDATA (default ../shared/testdata), FACEATLAS (default .venv/bin/faceatlas),
#      DEMO_HOME (default: a new temporary folder), DEMO_PORT (default 8765).
set -euo pipefail
cd "$(dirname "$0")/.."

FACES="${FACEATLAS_TESTDATA:-$(cd .. && pwd)/shared/testdata}/faces"
FACEATLAS="${FACEATLAS:-.venv/bin/faceatlas}"
PORT="${DEMO_PORT:-8765}"
export FACEATLAS_HOME="${DEMO_HOME:-$(mktemp -d)/home}"
[ -f "$FACES/manifest.csv" ] || { echo "test photos not found at $FACES" >&2; exit 1; }

$FACEATLAS simweb --people examples/simweb-people.json --photos "$FACES" --port "$PORT" &
SIMWEB=$!
trap 'kill "$SIMWEB" 2>/dev/null || true' EXIT
for _ in $(seq 50); do  # wait until simweb answers
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/healthz')" \
    2>/dev/null && break || sleep 0.2
done

export OPENAI_API_KEY=demo OPENAI_BASE_URL="http://127.0.0.1:$PORT/v1" RAPIDAPI_KEY=demo \
       FACEATLAS_IMAGE_SEARCH_URL="http://127.0.0.1:$PORT/search" \
       FACEATLAS_ALLOW_PRIVATE_NETWORKS=1 FACEATLAS_WIKIDATA_CHECK_LLM=0 \
       FACEATLAS_MIN_FACES_TO_PROMOTE=3

echo "== home: $FACEATLAS_HOME"
$FACEATLAS run --country Serbia --occupation Actor --occupation Athlete
$FACEATLAS promote --collection serbia
$FACEATLAS show "Novak Djokovic"
$FACEATLAS recognize "$FACES/people/person_01" --collection serbia --top 2
$FACEATLAS verify "$FACES/people/person_01/img1.jpg" "$FACES/people/person_01/img2.jpg"
$FACEATLAS stats --collection serbia
$FACEATLAS export-gallery "$FACEATLAS_HOME/serbia.tar" --collection serbia
