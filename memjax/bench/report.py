"""Merging runs, the issue's targets and the markdown tables of docs/benchmarks.md."""
from __future__ import annotations


def _row_key(r: dict) -> tuple:
    """What a row measures (a "chunks" row's k is each run's own best, so not part of it)."""
    return tuple(r.get(k) for k in ("section", "model", "impl", "strategy", "M", "P", "runs"))


def merge_results(results: list[dict]) -> dict:
    """The best of several `run_bench` results of the same sizes, row by row (highest GFLOP/s;
    on a shared machine the best run is the one least disturbed). Targets are recomputed."""
    best: dict[tuple, dict] = {}
    for res in results:
        for r in res["rows"]:
            key = _row_key(r)
            old = best.get(key)
            if old is None or r.get("gflops", -1) > old.get("gflops", -1):
                best[key] = {**r, "run": results.index(res)}
    fullest = max(results, key=lambda res: len(res["rows"]))["rows"]
    order = {_row_key(r): i for i, r in enumerate(fullest)}
    rows = sorted(best.values(), key=lambda r: order.get(_row_key(r), len(order)))
    roof = max(r["gflops"] for r in rows if r["section"] == "roofline")
    for r in rows:  # against the best roofline of all runs (a busy run measures a low one)
        if r["section"] != "roofline" and "gflops" in r:
            r["frac_roofline"] = round(r["gflops"] / roof, 4)
    info = dict(results[-1]["machine"])
    info.update(runs_merged=len(results),
                load_start=min(x["machine"]["load_start"] for x in results),
                load_end=max(x["machine"].get("load_end", 0) for x in results),
                seconds=sum(x["machine"].get("seconds", 0) for x in results))
    return {"machine": info, "config": results[-1]["config"], "rows": rows,
            "targets": targets(rows)}


def data_source(data_dir) -> str:
    return f"local MNIST files ({data_dir})" if data_dir else "embedded MNIST subset"


def _best(rows: list[dict], **match) -> dict | None:
    cands = [r for r in rows if "skipped" not in r and "gflops" in r
             and all(r.get(k) == v for k, v in match.items())]
    return max(cands, key=lambda r: r["gflops"], default=None)


def targets(rows: list[dict]) -> list[dict]:
    """The issue's targets: the measured value (wall clock), the same from CPU seconds
    ("value_cpu", see `rates`), the goal and whether the wall-clock value meets it."""
    out = []
    roof = next((r for r in rows if r.get("section") == "roofline"), None)

    def add(name: str, pair: tuple[float, float | None] | None, goal: float, unit: str) -> None:
        value, value_cpu = pair if pair else (None, None)
        out.append({"target": name, "value": None if value is None else round(value, 3),
                    "value_cpu": None if value_cpu is None else round(value_cpu, 3),
                    "goal": goal, "unit": unit,
                    "met": None if value is None else bool(value >= goal)})

    def frac(r: dict | None) -> tuple[float, float | None] | None:
        if r is None or roof is None:
            return None
        shares = roof.get("cpu_share") or {}
        roof_cpu = max([roof["gflops"]] + [g / max(shares.get(n, 1.0), 1e-9)
                                           for n, g in roof["by_size"].items()])
        return r["frac_roofline"], r.get("gflops_cpu") and r["gflops_cpu"] / roof_cpu

    def ratio(fast: dict | None, slow: dict | None) -> tuple[float, float | None] | None:
        if fast is None or slow is None:
            return None
        cpu = fast.get("gflops_cpu") and slow.get("gflops_cpu") and \
            fast["gflops_cpu"] / slow["gflops_cpu"]
        return slow["s_per_model_epoch"] / fast["s_per_model_epoch"], cpu

    memjax = [r for r in rows if r.get("section") == "train" and r.get("impl") == "memjax"]
    best_mlp = _best([r for r in memjax if r.get("M", 0) >= 64], model="mlp")
    add("MLP population (M>=64, best strategy): fraction of roofline", frac(best_mlp), 0.70,
        "x roofline")
    for impl, goal in (("keras", 2.0), ("torch", 1.5)):
        add(f"MLP population (M>=64) vs {impl} one at a time",
            ratio(best_mlp, _best(rows, model="mlp", impl=impl)), goal, "x faster")
    add("CNN2 population vs torch one at a time",
        ratio(_best(memjax, model="cnn2"), _best(rows, model="cnn2", impl="torch")), 1.0,
        "x faster")
    toy = [r for r in rows if r.get("section") == "toy" and "skipped" not in r]
    best_toy = max((r for r in toy if r["impl"].startswith("memjax")),
                   key=lambda r: r["gflops"], default=None)
    for impl in ("jax loop", "torch loop"):
        base = next((r for r in toy if r["impl"] == impl), None)
        add(f"toy population vs {impl}", best_toy and base and (
            base["s_per_run"] / best_toy["s_per_run"],
            best_toy["gflops_cpu"] / base["gflops_cpu"]), 1.0, "x faster")
    add("scoring: fraction of roofline", frac(_best(rows, section="scoring")), 0.60,
        "x roofline")
    return out


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join("" if v is None else str(v) for v in r) + " |" for r in rows]
    return out + [""]


def _cell(r: dict, key: str, fmt: str = "{}") -> str:
    return fmt.format(r[key]) if r.get(key) is not None else ""


def format_report(result: dict) -> str:
    """Markdown tables of a `run_bench` result."""
    rows = result["rows"]
    info = result["machine"]
    roof = next(r for r in rows if r["section"] == "roofline")
    lines = [
        f"Machine: {info.get('cpu', '?')}, {info['cores']} cores ({info.get('simd', '')}), "
        f"{info['mem_gb']} GB; JAX {info['jax']} ({info['platform']}), flax {info['flax']}, "
        f"optax {info['optax']}, torch {info['torch']}, tensorflow {info['tensorflow']}. "
        f"Load average {info['load_start']} at start, {info.get('load_end')} at end; "
        f"{info.get('seconds')} s in all. Data: {info.get('data_source')}."
        + (f" Each row is the best of {info['runs_merged']} runs of the same command."
           if info.get("runs_merged") else ""),
        "",
        f"fp32 matmul roofline (best jnp.dot, n x n): **{roof['gflops']} GFLOP/s** "
        f"{roof['by_size']} (share of the 2 cores used: {roof.get('cpu_share')}, load "
        f"{roof['load']}).",
        "",
        "`x roofline` divides by the roofline measured in the same run (by the best one when "
        "runs are merged). `cpu` is the share of "
        "the machine's cores the run got (CPU seconds / wall / cores); `GFLOP/s if idle` = "
        "GFLOP/s / cpu, an estimate of the rate with the machine to itself.",
        "",
    ]
    train = [r for r in rows if r.get("section") == "train"]
    if train:
        body = []
        for r in train:
            m = r["M"] if r.get("timed_models", r["M"]) == r["M"] else \
                f"{r['M']} ({r['timed_models']} timed)"
            head = [r["model"], r["impl"], r["strategy"], m, r.get("chunk")]
            if "skipped" in r or "same_as" in r:
                body.append(head + [r.get("skipped") or f"picks k={r['chunk']}: {r['same_as']}"]
                            + [""] * 10)
                continue
            body.append(head + [
                f"{r['s_per_model_epoch']:.3f}", f"{r['model_epochs_per_s']:.3g}", r["gflops"],
                f"{r['frac_roofline']:.2f}", _cell(r, "cpu_share"), _cell(r, "gflops_cpu"),
                _cell(r, "e2e_s_per_model_epoch"), _cell(r, "compile_s"),
                _cell(r, "peak_rss_mb"), _cell(r, "retraces"), r["load"]])
        lines += _table(["model", "impl", "strategy", "M", "k", "s / model-epoch",
                         "model-epochs/s", "GFLOP/s", "x roofline", "cpu", "GFLOP/s if idle",
                         "end-to-end s / model-epoch", "compile s", "peak RSS MB", "retraces",
                         "load"], body)
    toy = [r for r in rows if r.get("section") == "toy"]
    if toy:
        body = [[r["impl"], r["skipped"]] + [""] * 8 if "skipped" in r else
                [r["impl"], f"{r['runs']} ({r['timed_runs']})", r["s_per_run"], r["s_for_runs"],
                 r["gflops"], f"{r['frac_roofline']:.3f}", r["cpu_share"], r["gflops_cpu"],
                 _cell(r, "compile_s"), r["load"]] for r in toy]
        lines += _table(["toy", "runs (timed)", "s / run", "s for all runs", "GFLOP/s",
                         "x roofline", "cpu", "GFLOP/s if idle", "compile s", "load"], body)
    sc = [r for r in rows if r.get("section") == "scoring"]
    if sc:
        body = [[r["strategy"], r["M"], r["P"], r["seconds"], r["probe_models_per_s"],
                 r["gflops"], f"{r['frac_roofline']:.2f}", r["cpu_share"], r["gflops_cpu"],
                 r["compile_s"], r["peak_rss_mb"], r["load"]] for r in sc]
        lines += _table(["scoring", "M", "probes (x 3 variants)", "s", "probe-models/s",
                         "GFLOP/s", "x roofline", "cpu", "GFLOP/s if idle", "compile s",
                         "peak RSS MB", "load"], body)
    if result["targets"]:
        body = [[t["target"], t["value"], t.get("value_cpu"), f">= {t['goal']} {t['unit']}",
                 {True: "yes", False: "**no**", None: "n/a"}[t["met"]]]
                for t in result["targets"]]
        lines += _table(["target", "measured", "from CPU seconds", "goal", "met (measured)"],
                        body)
    return "\n".join(lines)
