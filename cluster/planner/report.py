"""Plans as a table (text or markdown), with notes, problems and the failures that stop CI."""

from __future__ import annotations

from cluster.planner.memory import KIB, PoolPlan


def _tokens(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.2f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    return f"{n:,}"


def _status(plan: PoolPlan) -> str:
    if not plan.fits:
        return "DOES NOT FIT"
    if plan.tight:
        return "fits (tight)"
    return "fits" if plan.fits_all_seqs else f"fits ({plan.full_length_seqs} full-length)"


COLUMNS = (
    "pool", "TP", "GPU", "weights/GPU", "KV/token GPU (group)", "KV budget/GPU",
    "max KV tokens", "max_model_len x seqs", "cold TTFT", "status",
)


def _seconds(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s / 60:.1f} min" if s >= 600 else f"{s:.1f} s"


def plan_rows(plans: list[PoolPlan]) -> list[tuple[str, ...]]:
    rows = []
    for p in plans:
        gpu = (
            f"{p.accelerator or '?'} {p.device_memory_gib:.1f} GiB" if p.device == "gpu"
            else "CPU worker"
        )
        kv = f"{p.kv_bytes_per_token_device / KIB:g} KiB ({p.kv_bytes_per_token_total / KIB:g} KiB)"
        if p.kv_heads_replicated:
            kv += " repl."
        rows.append((
            p.pool, str(p.tensor_parallel_size), gpu, f"{p.weights_gib_per_device:.2f} GiB",
            kv, f"{p.kv_budget_gib_per_device:.1f} GiB", _tokens(p.max_tokens),
            f"{_tokens(p.max_model_len)} x {p.max_num_seqs}", _seconds(p.cold_ttft_s), _status(p),
        ))
    return rows


def format_table(plans: list[PoolPlan], markdown: bool = False) -> str:
    rows = [COLUMNS, *plan_rows(plans)]
    if markdown:
        lines = ["| " + " | ".join(r) + " |" for r in rows]
        lines.insert(1, "|" + "|".join("---" for _ in COLUMNS) + "|")
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def _docs(gpu: int, tier: int) -> str:
    return f"{gpu} GPU + {tier} tier"


def _reload(s: float) -> str:
    # Reloads are sub-second where the tier pays off; the table's _seconds
    # would print them as 0.0 s.
    return f"{s * 1000:.0f} ms" if s < 1 else _seconds(s)


def tier_lines(plans: list[PoolPlan]) -> list[str]:
    """The KV tier of each pool that has one: RAM, documents held, reload vs prefill."""
    lines = []
    for p in plans:
        t = p.kv_tier
        if t is None:
            continue
        ram = f"{t.size_gib:g} GiB host RAM per replica"
        if p.tensor_parallel_size > 1:
            ram += f" ({t.size_gib_per_rank:g} GiB per rank)"
        ram += f", pod +{t.pod_memory_gib} GiB" if t.pod_memory_gib else ", in the LMCache server"
        lines.append(f"kv tier {p.pool} ({t.backend}): {ram}; {_tokens(t.tier_tokens)} tokens "
                     f"(GPU KV {_tokens(t.gpu_kv_tokens)})")
        for label, tokens, gpu, tier, reload_s, prefill in (
            ("typical", t.typical_doc_tokens, t.gpu_docs_typical, t.tier_docs_typical,
             t.reload_s_typical, t.prefill_s_typical),
            ("max", t.max_doc_tokens, t.gpu_docs_max, t.tier_docs_max, t.reload_s_max, t.prefill_s_max),
        ):
            ratio = f" ({reload_s / prefill:.0%})" if prefill else ""
            lines.append(
                f"  {label} doc {_tokens(tokens)}: {_docs(gpu, tier)} docs; reload "
                f"{_reload(reload_s)} at {t.host_to_gpu_gb_s:g} GB/s vs prefill {_seconds(prefill)}{ratio}"
            )
        lines.extend(f"  warn: {w}" for w in t.warnings)
    return lines


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", KIB)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} B"


def rotary_lines(plans: list[PoolPlan]) -> list[str]:
    """Each long pool's rotary tables (per worker, every mode) against a cos/sin cache per base."""
    lines = []
    for p in plans:
        r = p.rotary
        if r is None:
            continue
        caches = {None: "one per prompt length", 1: "one"}.get(r.bases, f"{r.bases}, one per bucket")
        lines.append(
            f"rope {p.pool} ({r.mode} mode): rotary tables {_bytes(r.table_bytes)} per worker, "
            f"{_bytes(r.step_bytes)} per forward; a cos/sin cache per base would take "
            f"{_bytes(r.cache_bytes_per_base)} each ({caches})"
        )
    return lines


def format_report(plans: list[PoolPlan], markdown: bool = False) -> str:
    out = [format_table(plans, markdown)]
    for p in plans:
        for note in p.notes:
            out.append(f"note  {p.pool}: {note}")
        for problem in p.problems:
            out.append(f"ERROR {p.pool}: {problem}")
    tiers = tier_lines(plans)
    if tiers:
        out.extend(["", *tiers])
    rotary = rotary_lines(plans)
    if rotary:
        out.extend(["", *rotary])
    return "\n".join(out)


def failures(plans: list[PoolPlan], strict: bool = False) -> list[str]:
    """Messages of pools that cannot run (or, with ``strict``, cannot hold all seqs)."""
    bad = []
    for p in plans:
        if not p.fits:
            bad.append(f"pool {p.pool} cannot fit: " + "; ".join(p.problems))
        elif strict and not p.fits_all_seqs:
            bad.append(
                f"pool {p.pool}: max_model_len x max_num_seqs = "
                f"{p.max_model_len * p.max_num_seqs:,} tokens > {p.max_tokens:,} in KV"
            )
    return bad
