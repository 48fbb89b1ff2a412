#!/usr/bin/env bash
# The index contract suites against real engines (Qdrant, OpenSearch, Neo4j),
# which cannot run on the CI machine. Set the URL of each engine to test:
#   LOCI_TEST_QDRANT_URL      gRPC, e.g. http://127.0.0.1:6334 (LOCI_TEST_QDRANT_API_KEY)
#   LOCI_TEST_OPENSEARCH_URL  e.g. http://127.0.0.1:9200 (LOCI_TEST_OPENSEARCH_USERNAME/_PASSWORD)
#   LOCI_TEST_NEO4J_URL       e.g. bolt://127.0.0.1:7687 (LOCI_TEST_NEO4J_USERNAME/_PASSWORD)
# Engines without a URL are not run (and this script says so); one that is
# set but unreachable fails.
set -euo pipefail
cd "$(dirname "$0")/.."
filters=()
for pair in QDRANT:vector_contract_qdrant OPENSEARCH:lexical_contract_opensearch \
    OPENSEARCH:code_and_memory_indexes_share_a_cluster_apart_opensearch \
    NEO4J:graph_contract_neo4j NEO4J:graph_api_contract_neo4j NEO4J:code_graph_contract_neo4j; do
    engine="${pair%%:*}" test="${pair#*:}" var="LOCI_TEST_${pair%%:*}_URL"
    if [ -n "${!var:-}" ]; then
        filters+=("$test")
    else
        echo "[engines] $var not set: $engine not tested" >&2
    fi
done
if [ "${#filters[@]}" -eq 0 ]; then
    echo "[engines] no engine URL set; nothing to run" >&2
    exit 1
fi
exec cargo test -p loci-index-engines --all-features --test contract -- --ignored --exact "${filters[@]}"
