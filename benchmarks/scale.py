"""Cost of the pipeline as rows grow: time and peak memory of each stage at several sizes.

The first N rows of the Stanford Alpaca 52K file go through ingest, validate,
score, aggregate and select, each stage in its own process as DVC runs it
(`python -m flows.<stage> --params ... --data ...`), so each stage's peak RSS
is its own (`ru_maxrss` of that child). The rater is a tiny random Llama (2
layers, hidden 32) with SmolLM2's tokenizer and one rating prompt per example
(--num-prompts), so that the model's cost does not hide the pipeline's. All
other settings are those of params.yaml.

Everything is written under --workdir (a temporary folder by default): the
source subsets, the tiny model, each size's params.yaml, data folder and MLflow
store, and one Prefect server shared by every stage (a stage run on its own
would start a temporary one, whose start-up is not the pipeline's cost). The
project's own data/ and mlflow.db are never touched.

    python benchmarks/scale.py --sizes 5000 20000 51941 --out scale.json

The goals: time grows linearly (the largest size costs at most 1.2 x its share
of rows of the smallest size's time) and the largest size's peak memory is at
most 1.2 x the smallest's.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "data" / "instructions" / "alpaca_52k_cleaned.jsonl.gz"
STAGES = ("ingest", "validate", "score", "aggregate", "select")
TINY_RATER = "tiny"  # the model's folder name, so the rater is called `tiny` in the data folder
GOAL = 1.2  # allowed excess over linear time, and over the smallest size's memory


def build_tiny_model(folder: Path) -> None:
    """A 2-layer, hidden-32 random Llama with SmolLM2's tokenizer, saved as a model folder."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from selectit.rating.models import resolve

    tokenizer = AutoTokenizer.from_pretrained(resolve("smollm2-135m-instruct").location)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=8192,  # SmolLM2's context: no Alpaca row is cut
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def tiny_model(folder: Path, env: dict) -> Path:
    """The tiny rater, built in a child process: Linux starts a child's peak RSS at its
    parent's, so this process must never load torch, or every stage would seem to need it."""
    if not (folder / "config.json").is_file():
        subprocess.run([sys.executable, __file__, "--build-tiny-model", str(folder)], env=env, check=True)
    return folder


def write_subset(rows: int, path: Path) -> int:
    """The first `rows` lines of the 52K file as gzipped JSON lines; returns how many there were."""
    written = 0
    with gzip.open(SOURCE, "rt", encoding="utf-8") as src, gzip.open(path, "wt", encoding="utf-8") as out:
        for line in src:
            if written == rows:
                break
            out.write(line)
            written += 1
    return written


def write_params(folder: Path, source: Path, rater: Path, num_prompts: int) -> Path:
    """params.yaml as the project's, with this size's source, the tiny rater and a local MLflow store."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["ingest"].update({"source": str(source), "limit": None})
    params["score"].update({"raters": [str(rater)], "num_prompts": num_prompts, "dtype": "float32", "device": "cpu"})
    params["tracking"]["tracking_uri"] = f"sqlite:///{folder / 'mlflow.db'}"
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def start_prefect_server(home: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """A Prefect server on 127.0.0.1 with its own database under `home`."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    prefect = Path(sys.executable).parent / "prefect"
    server = subprocess.Popen(
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 180  # the first start migrates a new database
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return server, url
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise SystemExit(f"the Prefect server did not start; see {log}") from None
            time.sleep(1)


def run_measured(cmd: list[str], env: dict, log: Path) -> dict:
    """Run one command; its wall time, CPU time and peak RSS (its own, and its children's)."""
    start = time.perf_counter()
    with log.open("w") as out:
        child = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"{' '.join(cmd)} failed with status {child.returncode}:\n{tail}")
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
    }


def stage_command(stage: str, params: Path, data: Path, rater: Path) -> list[str]:
    cmd = [sys.executable, "-m", f"flows.{stage}", "--params", str(params), "--data", str(data)]
    return cmd + ["--rater", str(rater)] if stage == "score" else cmd


def import_baseline(env: dict, logs: Path) -> dict:
    """Peak RSS of each stage's process when it only imports its flow: the part no row adds."""
    return {
        stage: run_measured([sys.executable, "-c", f"import flows.{stage}"], env, logs / f"import-{stage}.log")[
            "peak_rss_mb"
        ]
        for stage in STAGES
    }


def counts(data: Path) -> dict:
    def summary(folder: str) -> dict:
        return json.loads((data / folder / "summary.json").read_text())

    return {
        "ingested": summary("ingested")["examples"],
        "valid": summary("validated")["valid"],
        "scored": summary("aggregated")["examples"],
        "selected": summary("selected")["selected"],
    }


def goals(results: dict) -> dict:
    """Largest size against the smallest: time against linear growth, peak memory against equal."""
    sizes = sorted(results, key=int)
    small, large = results[sizes[0]], results[sizes[-1]]
    rows_ratio = large["rows"] / small["rows"]
    out = {"from": int(sizes[0]), "to": int(sizes[-1]), "rows_ratio": round(rows_ratio, 3)}
    for stage in (*STAGES, "total"):
        time_ratio = large["stages"][stage]["seconds"] / small["stages"][stage]["seconds"]
        cpu_ratio = large["stages"][stage]["cpu_seconds"] / small["stages"][stage]["cpu_seconds"]
        rss_ratio = large["stages"][stage]["peak_rss_mb"] / small["stages"][stage]["peak_rss_mb"]
        out[stage] = {
            "time_ratio": round(time_ratio, 3),
            "cpu_ratio": round(cpu_ratio, 3),  # less sensitive than wall time to other work on the machine
            "time_goal": round(GOAL * rows_ratio, 3),
            "time_ok": time_ratio <= GOAL * rows_ratio,
            "rss_ratio": round(rss_ratio, 3),
            "rss_goal": GOAL,
            "rss_ok": rss_ratio <= GOAL,
        }
    return out


def print_table(results: dict, baseline: dict, verdict: dict | None) -> None:
    sizes = sorted(results, key=int)
    print(f"{'stage':>9} | " + " | ".join(f"{results[n]['rows']:>6} rows: wall s, CPU s, peak MB" for n in sizes))
    for stage in (*STAGES, "total"):
        cells = [results[n]["stages"][stage] for n in sizes]
        row = " | ".join(f"{c['seconds']:>14.1f} {c['cpu_seconds']:>7.1f} {c['peak_rss_mb']:>9.0f}" for c in cells)
        print(f"{stage:>9} | {row}")
    print(
        "peak RSS of each stage's process when it only imports its flow: "
        + ", ".join(f"{stage} {mb:.0f} MB" for stage, mb in baseline.items())
    )
    if verdict:
        print(f"\n{verdict['to']} rows against {verdict['from']} ({verdict['rows_ratio']}x the rows):")
        for stage in (*STAGES, "total"):
            v = verdict[stage]
            print(
                f"  {stage:>9}: wall time {v['time_ratio']:6.2f}x, CPU time {v['cpu_ratio']:6.2f}x "
                f"(goal <= {v['time_goal']:.2f}x: {'met' if v['time_ok'] else 'MISSED'}) | peak RSS "
                f"{v['rss_ratio']:5.2f}x (goal <= {v['rss_goal']}x: {'met' if v['rss_ok'] else 'MISSED'})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 51941], help="rows (first N of the file)")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--workdir", help="working folder (default: a temporary one, removed at the end)")
    parser.add_argument("--num-prompts", type=int, default=1, help="rating prompts per example (default: 1)")
    parser.add_argument("--build-tiny-model", help=argparse.SUPPRESS)  # the child process of tiny_model
    args = parser.parse_args()
    if args.build_tiny_model:
        build_tiny_model(Path(args.build_tiny_model))
        return
    if not SOURCE.is_file():
        raise SystemExit(f"{SOURCE}: not found (the Stanford Alpaca 52K file of ../shared/data)")

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="selectit-scale-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "PREFECT_HOME": str(workdir / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "GX_ANALYTICS_ENABLED": "False",
    }
    env.pop("MLFLOW_TRACKING_URI", None)  # it would win over each size's own store
    rater = tiny_model(workdir / "models" / TINY_RATER, env)
    server, api_url = start_prefect_server(workdir / "prefect", logs / "prefect-server.log")
    env["PREFECT_API_URL"] = api_url
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed run still stops its server
    results: dict[str, dict] = {}
    try:
        baseline = import_baseline(env, logs)
        for size in args.sizes:
            folder = workdir / f"rows-{size}"
            if folder.exists():
                shutil.rmtree(folder)  # every size starts cold: no shard cache from an earlier run
            folder.mkdir()
            rows = write_subset(size, folder / "source.jsonl.gz")
            params = write_params(folder, folder / "source.jsonl.gz", rater, args.num_prompts)
            stages = {}
            for stage in STAGES:
                cmd = stage_command(stage, params, folder / "data", rater)
                stages[stage] = run_measured(cmd, env, logs / f"{size}-{stage}.log")
                print(f"{rows} rows, {stage}: {stages[stage]}", flush=True)
            stages["total"] = {
                "seconds": round(sum(s["seconds"] for s in stages.values()), 2),
                "cpu_seconds": round(sum(s["cpu_seconds"] for s in stages.values()), 2),
                "peak_rss_mb": max(s["peak_rss_mb"] for s in stages.values()),
            }
            results[str(size)] = {"rows": rows, "counts": counts(folder / "data"), "stages": stages}
    finally:
        server.terminate()
        server.wait(timeout=30)
    verdict = goals(results) if len(results) > 1 else None
    print()
    print_table(results, baseline, verdict)
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
        },
        "source": str(SOURCE),
        "rater": "random Llama, 2 layers, hidden 32, SmolLM2 tokenizer",
        "num_prompts": args.num_prompts,
        "import_peak_rss_mb": baseline,
        "sizes": results,
        "goals": verdict,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
