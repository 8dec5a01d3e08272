"""The benchmark's outputs: results.json, a markdown table (results.md) and a chart (results.png),
with each of the project's targets marked met or missed."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from verinfer.bench.harness import write_json


@dataclass(frozen=True)
class Target:
    name: str
    goal: str
    measured: float | None
    met: bool | None
    unit: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "goal": self.goal,
            "measured": self.measured,
            "unit": self.unit,
            "met": self.met,
        }


def _at_most(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def _at_least(value: float | None, limit: float) -> bool | None:
    return None if value is None else value >= limit


def _get(results: dict[str, Any], *path: str) -> Any:
    node: Any = results
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def targets(results: dict[str, Any]) -> list[Target]:
    batches = _get(results, "gas", "batched") or {}
    largest = max(batches, key=int) if batches else None
    batch_total = batches[largest]["total_per_request"] if largest else None
    ratio = _get(results, "gas", "draw_growth", "step_ratio")
    attested_digest = _get(results, "gas", "attested", "3 digest-only", "total")
    attested_stored = _get(results, "gas", "attested", "3 stored", "total")
    many = _get(results, "gas", "attested_batched") or {}
    many_largest = max(many, key=int) if many else None
    many_settle = many[many_largest]["settle_per_request"] if many_largest else None
    many_request = many[many_largest]["request"] if many_largest else None
    return [
        Target(
            "gas per settled request, k=3",
            "<= 300000",
            _get(results, "gas", "per_operation", "3", "total"),
            _at_most(_get(results, "gas", "per_operation", "3", "total"), 300_000),
            "gas",
        ),
        Target(
            f"gas per settled request, k=3, batches of {largest}",
            "<= 60000 (batches of 50)",
            batch_total,
            _at_most(batch_total, 60_000) if largest == "50" else None,
            "gas",
        ),
        Target(
            "attested: request + settlement, k=3, digest only, callback",
            "<= 250000",
            attested_digest,
            _at_most(attested_digest, 250_000),
            "gas",
        ),
        Target(
            "attested: request + settlement, k=3, output stored, callback",
            "<= 300000",
            attested_stored,
            _at_most(attested_stored, 300_000),
            "gas",
        ),
        Target(
            f"attested: settleMany of {many_largest}, settlement per request",
            "<= 30000 (50 requests)",
            many_settle,
            _at_most(many_settle, 30_000) if many_largest == "50" else None,
            "gas",
        ),
        Target(
            f"attested: request transaction (batches of {many_largest})",
            "<= 150000",
            many_request,
            _at_most(many_request, 150_000),
            "gas",
        ),
        Target(
            "optimistic: request + post + finalize, k=1, unchallenged, callback",
            "<= 200000",
            _get(results, "gas", "optimistic", "unchallenged", "total"),
            _at_most(_get(results, "gas", "optimistic", "unchallenged", "total"), 200_000),
            "gas",
        ),
        Target(
            "committee draw growth (gas added per tenfold pool, last / first)",
            "<= 2 (log n: ~1, linear: 10)",
            ratio,
            _at_most(ratio, 2.0),
            "ratio",
        ),
        Target(
            "p50 latency, automine, k=3",
            "<= 300 ms",
            _get(results, "latency", "automine", "p50_ms"),
            _at_most(_get(results, "latency", "automine", "p50_ms"), 300),
            "ms",
        ),
        Target(
            "attested: p50 latency, automine, k=3",
            "<= 150 ms",
            _get(results, "latency", "automine_attested", "p50_ms"),
            _at_most(_get(results, "latency", "automine_attested", "p50_ms"), 150),
            "ms",
        ),
        Target(
            "attested: settled requests per second, sustained",
            ">= 150",
            _get(results, "throughput_attested", "sustained_per_s"),
            _at_least(_get(results, "throughput_attested", "sustained_per_s"), 150),
            "req/s",
        ),
        Target(
            "settled requests per second, sustained",
            ">= 100",
            _get(results, "throughput", "sustained_per_s"),
            _at_least(_get(results, "throughput", "sustained_per_s"), 100),
            "req/s",
        ),
        Target(
            "relayer / bare ONNX Runtime throughput (worst sample model)",
            ">= 0.9",
            _get(results, "overhead", "worst_ratio"),
            _at_least(_get(results, "overhead", "worst_ratio"), 0.9),
            "ratio",
        ),
    ]


def _mark(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "n/a"}[met]


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    out = [
        "# verinfer benchmark",
        "",
        f"{meta['date']} · commit {meta['commit']} · {meta['cpus']} CPUs · "
        f"{'quick' if meta['quick'] else 'full'} run in {meta['seconds']} s",
        "",
        "## Targets",
        "",
    ]
    out += _table(
        ["target", "goal", "measured", ""],
        [
            [
                t["name"],
                t["goal"],
                "-" if t["measured"] is None else f"{t['measured']} {t['unit']}",
                _mark(t["met"]),
            ]
            for t in results["targets"]
        ],
    )
    gas = results.get("gas")
    if gas:
        out += [
            "## Gas per operation (consensus mode; the callback stores one digest per request)",
            "",
            "The consumer contract requests (results reach only the requester), so `request` includes its",
            "fee approval. The first commit draws the committee from the seed block's hash; `draw` is the",
            "staking contract's part of that commit.",
            "",
        ]
        out += _table(
            [
                "k",
                "request",
                "first commit (draws)",
                "draw",
                "other commits",
                "first reveal (stores the output)",
                "other reveals",
                "settling reveal (incl. callback)",
                "callback",
                "total",
            ],
            [
                [
                    k,
                    g["request"],
                    g["first_commit"],
                    g["draw"],
                    g.get("commit", "-"),
                    g.get("first_reveal", "-"),
                    g.get("reveal", "-"),
                    g["settle"],
                    g["callback"],
                    g["total"],
                ]
                for k, g in gas["per_operation"].items()
            ],
        )
        f = gas["finalize_after_silence"]
        out += [
            f"`finalize` after a member withheld its reveal (k=3, slash and callback included): "
            f"{f['finalize']} gas (of which the slash call {f['slash']}).",
            "",
        ]
        if "attested" in gas:
            out += [
                "## Attested mode (the request, then one `settle` with every member's signature)",
                "",
                "The settlement draws and stores the committee, checks the signatures, stores the output",
                "unless the request is digest-only, pays and calls the consumer back.",
                "",
            ]
            out += _table(
                ["k, output", "request", "settle", "draw", "callback", "total"],
                [
                    [label, g["request"], g["settle"], g["draw"], g["callback"], g["total"]]
                    for label, g in gas["attested"].items()
                ],
            )
            out += ["## Attested `settleMany` (k=3, digest only, every signature included)", ""]
            out += _table(
                ["batch", "request", "settlement / req", "total / req"],
                [
                    [n, b["request"], b["settle_per_request"], b["total_per_request"]]
                    for n, b in gas["attested_batched"].items()
                ],
            )
        if "inputs" in gas:
            sizes = {k: v for k, v in gas["inputs"].items() if k != "inline_cap_bytes"}
            out += [
                f"## Request gas by input size (k=3; inline cap {gas['inputs']['inline_cap_bytes']} bytes;"
                " a reference is the input's SHA-256, size and one URL)",
                "",
            ]
            out += _table(
                ["input", "inline", "by reference", "reference bytes"],
                [
                    [size, "-" if g["inline"] is None else g["inline"], g["reference"], g["reference_bytes"]]
                    for size, g in sizes.items()
                ],
            )
        if "payment" in gas:
            pay = gas["payment"]
            out += [
                f"How a request is paid (a consumer's attested k=3 request): from its credit at the hub "
                f"{pay['credit']} gas, by approval and transfer {pay['transfer']} gas ({pay['saved']} more).",
                "",
            ]
        out += ["## Batched commit/reveal (k=3, each operator one commitMany and one revealMany)", ""]
        out += _table(
            [
                "batch",
                "request",
                "commit / req",
                "reveal / req",
                "settling reveal / req",
                "operator / req",
                "total / req",
            ],
            [
                [
                    n,
                    b["request"],
                    b["commit_per_request"],
                    b["reveal_per_request"],
                    b["settle_per_request"],
                    b["operator_per_request"],
                    b["total_per_request"],
                ]
                for n, b in gas["batched"].items()
            ],
        )
        if "tolerance" in gas:
            summary = ("marginal_per_element", "samples")
            sizes = {k: v for k, v in gas["tolerance"].items() if k not in summary}
            out += [
                "## Tolerance agreement (k=3, consensus; the settling reveal when all outputs are equal, and"
                " when one member's output differs by one unit in every element, within the tolerance)",
                "",
            ]
            out += _table(
                ["output elements", "settle, equal", "settle, compared", "extra", "extra / element"],
                [
                    [n, t["settle_equal"], t["settle_compared"], t["extra"], t["per_element"]]
                    for n, t in sizes.items()
                ],
            )
            out += [
                f"Marginal cost of the comparison: {gas['tolerance']['marginal_per_element']} gas per output"
                " element (loading both outputs, decoding them in a call of their own, comparing).",
                "",
            ]
            samples = gas["tolerance"].get("samples", {})
            if samples:
                out += [
                    "The same on each sample model's real output (one member one unit up in every element):",
                    "",
                ]
                out += _table(
                    ["sample", "elements", "output bytes", "settle, equal", "settle, compared", "extra"],
                    [
                        [name, t["elements"], t["bytes"], t["settle_equal"], t["settle_compared"], t["extra"]]
                        for name, t in samples.items()
                    ],
                )
        if "optimistic" in gas:
            o = gas["optimistic"]
            plain, fought = o["unchallenged"], o["challenged"]
            out += [
                "## Optimistic mode (k=1, callback; a challenge escalates to a k=3 consensus request)",
                "",
            ]
            out += _table(
                ["path", "request", "post", "challenge", "escalation round", "finalize / resolve", "total"],
                [
                    [
                        "unchallenged",
                        plain["request"],
                        plain["post"],
                        "",
                        "",
                        plain["finalize"],
                        plain["total"],
                    ],
                    [
                        "challenged (wrong post)",
                        fought["request"],
                        fought["post"],
                        fought["challenge"],
                        fought["escalation_round"],
                        fought["resolve"],
                        fought["total"],
                    ],
                ],
            )
            out += [
                f"A challenged request resolved {fought['blocks_to_resolution']} blocks after it was made,"
                " one transaction a block (each step waits for the one before): at most that many"
                " seconds on 1 s blocks when the watcher challenges at once.",
                "",
            ]
        out += ["## Committee draw (k=3, a `draw(requestId)` transaction after the seed block)", ""]
        out += _table(
            ["operators", "draw gas (staking)", "draw transaction", "request gas"],
            [[n, d["draw"], d["draw_tx"], d["request"]] for n, d in gas["draw"].items()],
        )
    latency = results.get("latency")
    if latency:
        out += ["## End-to-end latency (request block seen to settling block seen, k=3, three relayers)", ""]
        out += _table(
            ["chain", "n", "p50 ms", "p95 ms", "p99 ms", "mean ms"],
            [
                [name, v["n"], v["p50_ms"], v["p95_ms"], v["p99_ms"], v["mean_ms"]]
                for name, v in latency.items()
            ],
        )
    for key, mode in (("throughput", "consensus"), ("throughput_attested", "attested")):
        out += _throughput(results.get(key), mode)
    det = results.get("determinism")
    if det:
        out += ["## Determinism (encoded outputs at each model's decimals against the pinned run)", ""]
        names = [v["name"] for v in det["models"][0]["variations"]] if det["models"] else []
        out += _table(
            ["model", "decimals", "inputs", *names, "recommendation"],
            [
                [
                    m["model"],
                    m["decimals"],
                    m["inputs"],
                    *[
                        "skipped" if v["skipped"] else f"{v['differing_share']:.0%} / {v['worst_units']}"
                        for v in m["variations"]
                    ],
                    m["recommendation"],
                ]
                for m in det["models"]
            ],
        )
        classes = det["models"][0]["cpu_classes"] if det["models"] else ""
        out += [
            "",
            f"Cells: share of inputs whose output differs / worst difference in last-digit units. {classes}",
            "",
        ]
    over = results.get("overhead")
    if over:
        out += ["## Relayer execution overhead (single thread)", ""]
        out += _table(
            ["model", "bare ORT / s", "relayer / s", "ratio", "bare µs", "relayer µs", "input check µs"],
            [
                [
                    m["model"],
                    m["bare_per_s"],
                    m["relayer_per_s"],
                    m["ratio"],
                    m["us_per_inference"]["bare_onnxruntime"],
                    m["us_per_inference"]["relayer_total"],
                    m["us_per_inference"]["input_decode_and_check"],
                ]
                for m in over["models"]
            ],
        )
    return "\n".join(out)


def _throughput(tput: dict[str, Any] | None, mode: str) -> list[str]:
    out: list[str] = []
    if tput:
        out += [f"## Throughput, {mode} mode (1 s blocks, open-loop offered load)", ""]
        out += _table(
            ["offered / s", "sent", "settled", "settled / s", "p50 ms", "p99 ms", "sustained"],
            [
                [
                    s["offered_per_s"],
                    s["sent"],
                    s["settled"],
                    s["settled_per_s"],
                    s["latency"].get("p50_ms", "-"),
                    s["latency"].get("p99_ms", "-"),
                    "yes" if s["sustained"] else "no",
                ]
                for s in tput["steps"]
            ],
        )
        profile = tput.get("profile")
        if profile:
            out += [
                f"Profile of the last step ({profile['offered_per_s']} offered/s, {profile['wall_s']} s): "
                f"{profile['transactions']} transactions in {profile['blocks']} blocks, "
                f"{profile['transactions_per_settled_request']} per settled request; blocks "
                f"{100 * profile['block_gas_used']:.0f}% full; per settled request "
                f"{profile['gas_per_settled_request']} gas used and "
                f"{profile['gas_reserved_per_settled_request']} reserved (transaction gas limits); the "
                f"chain's gas per second fits {profile['chain_cap_per_s']} settled requests per second.",
                "",
            ]
            out += _table(
                ["process", "cores busy", "CPU ms per settled request"],
                [
                    [p, c, profile["cpu_s_per_settled_request_ms"][p]]
                    for p, c in profile["cores_busy"].items()
                ],
            )
            out += _table(
                ["relayer stage", "mean ms"], [[s, v] for s, v in profile["relayer_stage_mean_ms"].items()]
            )
    return out


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    gas = results.get("gas") or {}
    ax = axes[0][0]
    if gas:
        per = gas["per_operation"]
        ks = list(per)
        bottom = [0.0] * len(ks)
        for part, label in (
            ("request", "request"),
            ("first_commit", "first commit (draws)"),
            ("commit", "other commits"),
            ("first_reveal", "first reveal"),
            ("reveal", "other reveals"),
            ("settle", "settling reveal"),
        ):
            mult = {"commit": [int(k) - 1 for k in ks], "reveal": [max(int(k) - 2, 0) for k in ks]}.get(
                part, [1] * len(ks)
            )
            values = [per[k].get(part, 0) * m / 1000 for k, m in zip(ks, mult, strict=True)]
            ax.bar([f"k={k}" for k in ks], values, bottom=bottom, label=label)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.axhline(300, color="red", linestyle="--", label="k=3 target")
        ax.legend(fontsize=7)
    ax.set_title("gas per settled request (k gas)")
    ax = axes[0][1]
    if gas:
        batches = gas["batched"]
        sizes = [int(n) for n in batches]
        ax.plot(
            sizes, [b["total_per_request"] / 1000 for b in batches.values()], "o-", label="total / request"
        )
        ax.plot(
            sizes,
            [b["operator_per_request"] / 1000 for b in batches.values()],
            "s-",
            label="one operator / request",
        )
        ax.axhline(60, color="red", linestyle="--", label="target (50)")
        ax.set_xscale("log")
        ax.legend(fontsize=7)
    ax.set_title("batched, k=3 (k gas)")
    ax = axes[0][2]
    if gas:
        draw = gas["draw"]
        ax.plot([int(n) for n in draw], [d["draw"] / 1000 for d in draw.values()], "o-")
        ax.set_xscale("log")
    ax.set_title("committee draw gas (k gas) vs operators")
    ax = axes[1][0]
    latency = results.get("latency") or {}
    for i, (name, v) in enumerate(latency.items()):
        if v.get("n"):
            ax.bar([i * 4 + j for j in range(3)], [v["p50_ms"], v["p95_ms"], v["p99_ms"]], label=name)
    ax.axhline(300, color="red", linestyle="--")
    ax.set_xticks([])
    ax.legend(fontsize=7)
    ax.set_title("latency p50 / p95 / p99 (ms)")
    ax = axes[1][1]
    tput = results.get("throughput") or {}
    if tput:
        steps = tput["steps"]
        ax.plot(
            [s["offered_per_s"] for s in steps], [s["settled_per_s"] for s in steps], "o-", label="settled"
        )
        top = max(s["offered_per_s"] for s in steps)
        ax.plot([0, top], [0, top], ":", color="grey", label="offered")
        ax.axhline(100, color="red", linestyle="--", label="target")
        ax.legend(fontsize=7)
    ax.set_title("settled / s vs offered / s")
    ax = axes[1][2]
    over = results.get("overhead") or {}
    if over:
        ax.bar([m["model"] for m in over["models"]], [m["ratio"] for m in over["models"]])
        ax.axhline(0.9, color="red", linestyle="--")
        ax.tick_params(axis="x", labelsize=7)
    ax.set_title("relayer / bare ONNX Runtime")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write(results: dict[str, Any], out: Path) -> None:
    results["targets"] = [t.to_json() for t in targets(results)]
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", results)
    (out / "results.md").write_text(markdown(results) + "\n")
    chart(results, out / "results.png")
