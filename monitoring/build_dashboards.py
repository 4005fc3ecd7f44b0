"""Write the Grafana dashboards in helm/monitoring/dashboards/ from one description.

  python -m monitoring.build_dashboards            write them
  python -m monitoring.build_dashboards --check    exit 1 and list what is stale

The JSON files are what Grafana imports (the chart's ConfigMaps, or by hand
for `make monitor`) and what the tests read; this script keeps the shared
pieces (datasource variable, the pool join, units) identical across three
dashboards. They live in the chart, their only home, because Helm reads only
inside the chart. Edit here, run `make generate`, commit both; `make check`
fails when they disagree.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from monitoring.grafana import (
    ALL_POOLS_MAP, APP, by_pool, dashboard, or_idle_zero, panel, pool_variable, quantile, quantile_targets, row, target,
)

DASHBOARDS = Path(__file__).resolve().parents[1] / "helm" / "monitoring" / "dashboards"


def overview() -> dict:
    healthy = f'ray_serve_deployment_replica_healthy{{{APP}}}'
    requests = "ray_longctx_requests_total"
    panels = [
        panel("Pools", "Engine pools (length bands) deployed in Serve.",
              [target(f'count(sum by (deployment) (ray_serve_deployment_replica_healthy{{{APP}, deployment=~"pool-.+"}}))')],
              kind="stat", colorMode="value", graphMode="none"),
        panel("Healthy replicas", "Healthy replicas of all deployments (pools and ingress).",
              [target(f"sum({healthy})")], kind="stat", colorMode="value", graphMode="none"),
        panel("Requests/s", "Requests answered by the ingress, all models and statuses.",
              [target(f"sum(rate({requests}[$__rate_interval]))")], unit="reqps", kind="stat", graphMode="area"),
        panel("5xx ratio", "Share of answers that are server errors (shown as 0 while there are none).",
              [target(f'(sum(rate({requests}{{status=~"5.."}}[$__rate_interval])) or vector(0))'
                      f" / sum(rate({requests}[$__rate_interval]))")],
              unit="percentunit", kind="stat", graphMode="area"),
        panel("Replicas up by deployment", "Healthy replicas per Serve deployment; a pool at 0 cannot serve its band.",
              [target(f"sum by (deployment) ({healthy})", "{{deployment}}")]),
        panel("Request rate by model and status", "Requests answered by the ingress per second.",
              [target(f"sum by (model, status) (rate({requests}[$__rate_interval]))", "{{model}} {{status}}")],
              unit="reqps"),
        panel("Errors by status", "Client (4xx) and server (5xx) errors per second, by HTTP status.",
              [target(f'sum by (status) (rate({requests}{{status=~"[45].."}}[$__rate_interval]))', "{{status}}")],
              unit="reqps"),
        panel("Rejections by reason", "Requests the ingress refused: over_length (413), overload (429), "
              "unknown_model (404), bad_request (4xx), unavailable (503/504).",
              [target("sum by (reason) (rate(ray_longctx_rejections_total[$__rate_interval]))", "{{reason}}")],
              unit="reqps"),
        panel("Routing mix by band", "Share of routed requests sent to each pool (length band).",
              [target("sum by (pool) (rate(ray_longctx_routed_requests_total[$__rate_interval]))"
                      " / ignoring (pool) group_left () sum(rate(ray_longctx_routed_requests_total[$__rate_interval]))",
                      "{{pool}}")],
              unit="percentunit", custom={"stacking": {"mode": "normal"}}),
        panel("Routed requests by band", "Requests per second sent to each pool.",
              [target("sum by (model, pool) (rate(ray_longctx_routed_requests_total[$__rate_interval]))",
                      "{{model}} → {{pool}}")], unit="reqps"),
        panel("In-flight requests by pool", "Requests the ingress holds for each pool right now.",
              # The ingress sets this gauge only when a request starts or ends, and
              # Ray drops unrefreshed gauges: fall back to 0 for every known pool.
              [target("sum by (pool) (ray_longctx_in_flight_requests)"
                      " or on (pool) (0 * sum by (pool) (ray_longctx_routed_requests_total))", "{{pool}}")]),
        panel("Serve queue by deployment", "Requests waiting in Serve's router for a free replica slot "
              "(every replica at max_ongoing_requests).",
              [target(f"sum by (deployment) (ray_serve_deployment_queued_queries{{{APP}}})", "{{deployment}}")]),
        panel("Ingress overhead p95", "Time the ingress spends per request before the engine: tokenizing and choosing a pool.",
              [target(quantile(0.95, "ray_longctx_ingress_stage_seconds_bucket", "stage", None), "{{stage}} p95")],
              unit="s"),
        panel("Documents stored", "Documents in the document-QA store (last count an ingress reported: "
              "the ingress reports it on upload, and Ray drops gauges that are not refreshed).",
              [target("max(last_over_time(ray_longctx_documents[1d]))")], kind="stat", colorMode="value",
              graphMode="none"),
        panel("Affinity hit ratio by pool", "Keyed requests (document questions, long shared prefixes) that reached "
              "the replica owning the key, i.e. the one whose prefix cache holds the document.",
              [target('sum by (pool) (rate(ray_longctx_affinity_routing_total{result="hit"}[$__rate_interval]))'
                      " / sum by (pool) (rate(ray_longctx_affinity_routing_total[$__rate_interval]))", "{{pool}}")],
              unit="percentunit"),
        panel("TTFT p95 by band", "Time to first token per pool (p95); compare with the band's objective.",
              [target(quantile(0.95, "ray_vllm_time_to_first_token_seconds_bucket", "pool", ALL_POOLS_MAP),
                      "{{pool}}")], unit="s"),
    ]
    return dashboard("longctx-overview", "longctx / Cluster overview",
                     "Pools, replicas, traffic, errors, rejections and routing of the long-context cluster.",
                     panels, [])


def pool() -> dict:
    def engine(series: str) -> str:
        return by_pool(series)

    panels = [
        panel("Healthy replicas", "Healthy Serve replicas of the selected pool(s).",
              [target(f'sum by (deployment) (ray_serve_deployment_replica_healthy{{{APP}, deployment=~"pool-($pool)"}})',
                      "{{deployment}}")]),
        panel("Time to first token", "TTFT percentiles: queueing plus prefill of the whole prompt.",
              quantile_targets("ray_vllm_time_to_first_token_seconds_bucket", "pool", "{{pool}}"), unit="s"),
        panel("Inter-token latency", "Time between consecutive output tokens (decode speed seen by a streaming client).",
              quantile_targets("ray_vllm_inter_token_latency_seconds_bucket", "pool", "{{pool}}"), unit="s"),
        panel("End-to-end request latency", "Engine time from arrival to the last token.",
              quantile_targets("ray_vllm_e2e_request_latency_seconds_bucket", "pool", "{{pool}}"), unit="s"),
        panel("Queue time p95", "Time requests wait in vLLM's scheduler before their prefill starts.",
              [target(quantile(0.95, "ray_vllm_request_queue_time_seconds_bucket", "pool"), "{{pool}}")], unit="s"),
        panel("Prompt tokens/s", "Prefill throughput: prompt tokens processed per second.",
              [target(f"sum by (pool) ({engine('rate(ray_vllm_prompt_tokens_total[$__rate_interval])')})", "{{pool}}")]),
        panel("Generation tokens/s", "Decode throughput: tokens generated per second.",
              [target(f"sum by (pool) ({engine('rate(ray_vllm_generation_tokens_total[$__rate_interval])')})", "{{pool}}")]),
        panel("Running and waiting requests", "Requests in vLLM's running batch and waiting for a slot or KV blocks.",
              [target(or_idle_zero(f"sum by (pool) ({engine('ray_vllm_num_requests_running')})"), "{{pool}} running", "A"),
               target(or_idle_zero(f"sum by (pool) ({engine('ray_vllm_num_requests_waiting')})"), "{{pool}} waiting", "B")]),
        panel("Serve queue", "Requests waiting in Serve's router for a replica slot of this pool.",
              [target(f'sum by (deployment) (ray_serve_deployment_queued_queries{{{APP}, deployment=~"pool-($pool)"}})',
                      "{{deployment}}")]),
        panel("KV cache usage", "Fraction of KV cache blocks in use (max over the pool's replicas).",
              [target(or_idle_zero(f"max by (pool) ({engine('ray_vllm_kv_cache_usage_perc')})"), "{{pool}}")],
              unit="percentunit", defaults={"min": 0, "max": 1}),
        panel("Prefix cache hit rate", "Share of prompt tokens found in the prefix cache: high when documents repeat "
              "on the same replica.",
              [target(f"sum by (pool) ({engine('rate(ray_vllm_prefix_cache_hits_total[$__rate_interval])')})"
                      f" / sum by (pool) ({engine('rate(ray_vllm_prefix_cache_queries_total[$__rate_interval])')})",
                      "{{pool}}")], unit="percentunit"),
        panel("Preemptions/s", "Running requests evicted for lack of KV cache and recomputed later.",
              [target(f"sum by (pool) ({engine('rate(ray_vllm_num_preemptions_total[$__rate_interval])')})", "{{pool}}")]),
        panel("Finished requests by reason", "Engine requests finished per second: stop, length, abort.",
              [target(f"sum by (pool, finished_reason) ({engine('rate(ray_vllm_request_success_total[$__rate_interval])')})",
                      "{{pool}} {{finished_reason}}")], unit="reqps"),
        *kv_tier_panels(),
    ]
    return dashboard("longctx-pool", "longctx / Pool", "Engine metrics of one pool (vLLM through Ray Serve LLM).",
                     panels, [pool_variable()])


def kv_tier_panels() -> list[dict]:
    """The host-RAM KV tier of the selected pools (issue 11), from vLLM's own counters.

    Same figures as the longctx-kv-tier recording rules, inlined like the rest.
    Pools without a tier have none of these series: "No data" there is right.
    """
    def per_pool(counter: str) -> str:
        return f"sum by (pool) ({by_pool(f'rate({counter}[$__rate_interval])')})"

    queries = per_pool("ray_vllm_external_prefix_cache_queries_total")
    # vLLM creates the hits counter at the first hit: until then, 0 hits.
    hits = f'({per_pool("ray_vllm_external_prefix_cache_hits_total")} or on (pool) 0 * {queries})'
    load, store = per_pool("ray_vllm_kv_offload_load_bytes_total"), per_pool("ray_vllm_kv_offload_store_bytes_total")
    return [
        row("KV tier", "Host-RAM KV tier (kv_tier in the profile): documents evicted from GPU memory come back "
            "from host RAM instead of being prefilled again. Empty for pools without a tier."),
        panel("KV tier hits and misses", "Prompt tokens per second looked up in the tier (those not in the GPU "
              "prefix cache): found there (hit, reloaded) or not (miss, prefilled again).",
              [target(hits, "{{pool}} hit", "A"), target(f"{queries} - on (pool) {hits}", "{{pool}} miss", "B")]),
        panel("KV tier hit ratio", "Share of the tokens looked up in the tier that it held. Near 0 while misses "
              "flow: LongctxKVTierNoHits.",
              [target(f"{hits} / on (pool) {queries}", "{{pool}}")], unit="percentunit", defaults={"min": 0, "max": 1}),
        panel("KV tier bytes loaded and stored", "KV bytes per second copied tier → GPU (load: documents coming "
              "back) and GPU → tier (store: KV saved as it is computed). Native backend only.",
              [target(load, "{{pool}} loaded", "A"), target(store, "{{pool}} stored", "B")], unit="binBps"),
        panel("KV tier copy speed", "Bytes per second while copying (bytes over the seconds the copies took); "
              "1 GiB divided by the load speed is what reloading 1 GiB of a document costs.",
              [target(f"{load} / on (pool) {per_pool('ray_vllm_kv_offload_load_time_total')}", "{{pool}} load", "A"),
               target(f"{store} / on (pool) {per_pool('ray_vllm_kv_offload_store_time_total')}", "{{pool}} store", "B")],
              unit="binBps"),
    ]


def long_context() -> dict:
    panels = [
        panel("Prompt length distribution", "Routed requests per prompt-length bucket over the dashboard's time range "
              "(ingress count, buckets double from 16 to 1M tokens).",
              [target("sum by (le) (increase(ray_longctx_prompt_tokens_bucket[$__range]))", "{{le}}",
                      format="heatmap", instant=True)], kind="bargauge", displayMode="basic",
              orientation="vertical"),
        panel("Prompt length by band", "Prompt length percentiles per pool.",
              quantile_targets("ray_longctx_prompt_tokens_bucket", "pool", "{{pool}}", None)),
        panel("Completion length by band", "Completion tokens per finished non-streaming request.",
              [target(quantile(0.95, "ray_longctx_completion_tokens_bucket", "pool", None), "{{pool}} p95")]),
        panel("TTFT p50 by band", "Median time to first token per length band.",
              [target(quantile(0.5, "ray_vllm_time_to_first_token_seconds_bucket", "pool", ALL_POOLS_MAP), "{{pool}}")],
              unit="s"),
        panel("TTFT p95 by band", "p95 time to first token per length band; LongctxTTFTHigh compares it with the band's "
              "objective.",
              [target(quantile(0.95, "ray_vllm_time_to_first_token_seconds_bucket", "pool", ALL_POOLS_MAP), "{{pool}}")],
              unit="s"),
        panel("Prefill time p95 by band", "Engine prefill time alone (no queueing): grows with prompt length.",
              [target(quantile(0.95, "ray_vllm_request_prefill_time_seconds_bucket", "pool", ALL_POOLS_MAP), "{{pool}}")],
              unit="s"),
        panel("Mean prompt tokens by band", "Average routed prompt length per pool.",
              [target("sum by (pool) (rate(ray_longctx_prompt_tokens_sum[$__rate_interval]))"
                      " / sum by (pool) (rate(ray_longctx_prompt_tokens_count[$__rate_interval]))", "{{pool}}")]),
        panel("Over-length rejections (413)", "Requests longer than the model's longest band, per second.",
              [target('sum by (model) (rate(ray_longctx_rejections_total{reason="over_length"}[$__rate_interval]))',
                      "{{model}}")], unit="reqps"),
    ]
    return dashboard("longctx-long-context", "longctx / Long context",
                     "Request lengths and latency by length band.", panels, [])


BUILDERS = {"longctx-overview.json": overview, "longctx-pool.json": pool, "longctx-long-context.json": long_context}


def render() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n" for name, build in BUILDERS.items()}


def drift(directory: Path = DASHBOARDS) -> list[str]:
    """Dashboards whose file differs from what this script renders; empty when in step."""
    rendered = render()
    stale = [name for name, text in rendered.items()
             if not (directory / name).is_file() or (directory / name).read_text() != text]
    stale += [f"{path.name} (not built here)" for path in sorted(directory.glob("*.json")) if path.name not in rendered]
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report drift, write nothing")
    if parser.parse_args(argv).check:
        stale = drift()
        print("".join(f"stale: helm/monitoring/dashboards/{name}\n" for name in stale)
              + ("run: make generate\n" if stale else ""), end="", file=sys.stderr)
        return 1 if stale else 0
    DASHBOARDS.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (DASHBOARDS / name).write_text(text)
        print(DASHBOARDS / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
