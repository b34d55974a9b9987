"""Big artifacts through the MLflow proxy against straight to S3, and what the server holds meanwhile.

    python bench/artifacts.py            # 64 MiB, 256 MiB and 1 GiB; targets enforced
    python bench/artifacts.py --short    # CI: 64 MiB only; figures shown, targets not enforced

The server is the pod spec the charm renders with serve_artifacts=true, run
by tests/e2e's pod runner with the image's MLflow (or --mlflow VERSION)
against MariaDB and SeaweedFS (a real S3 server in Go, as MinIO is) on
loopback, as the e2e tests run it, but without their request-listing proxy.
Each size goes up and comes back twice, through MLflow's client each time:
proxied (the PodDefault's env only: the tracking URI and the multipart
settings) and direct (an experiment whose artifact location is s3://, the
notebook holding MinIO's keys). Throughput is MiB/s of the MLflow call alone;
the server's RSS is the sum over its process tree, sampled every 50 ms.

Targets: proxied at least 0.7x direct from 256 MiB up, both ways, and the
server's RSS not growing with the artifact's size: the rise of its RSS
during the 1 GiB proxied transfer (peak over the RSS just before it) may be
at most 64 MiB more than the rise during the 64 MiB one. Round trips of a
small artifact, through the server both ways, go first until the server's
RSS settles: MLflow 3.x workers import much of MLflow on their first
requests (+1.3 GiB over four workers), which would otherwise land on
whichever size comes first.

    python bench/artifacts.py --sizes 1024 --chunk-mib 32   # one size, another part size
    python bench/artifacts.py --config workers=2 --client-env MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD=false
        # another charm config (any option), or one more variable in the proxied notebook's env
"""

import argparse
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import yaml
from stack import Stack  # first: it puts src/ and tests/ on the path

# isort: split

import harness  # noqa: E402 - on the path stack.py sets
from mlflow_venvs import CACHE, image_mlflow_version  # noqa: E402
from pod_runner import Pod  # noqa: E402
from servers import S3_ACCESS_KEY, S3_SECRET_KEY  # noqa: E402

MIB = 1024 * 1024
FULL_SIZES = (64, 256, 1024)
SHORT_SIZES = (64,)
RATIO_TARGET = 0.7
RSS_GROWTH_LIMIT_MIB = 64


# Warm-up round trips (proxied, then direct) of WARM_UP_MIB until one raises the
# server's RSS by less than WARM_RISE_MIB, at most WARM_UP_ROUNDS.
WARM_UP_MIB = 8
WARM_UP_ROUNDS = 5
WARM_RISE_MIB = 32


class RssSampler:
    """Peak summed RSS of a process and its descendants, sampled in a thread.

    The process tree is walked once a second (a walk reads every /proc/<pid>/stat);
    in between only the tree's own status files are read, so the sampler does
    not take a core from the transfer it measures on a small machine.
    """

    def __init__(self, pid: int, interval: float = 0.05, rewalk: float = 1.0):
        self.pid, self.interval, self.rewalk = pid, interval, rewalk
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def tree(root: int) -> List[int]:
        parents: Dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        tree, frontier = {root}, [root]
        while frontier:
            children = [pid for pid, ppid in parents.items() if ppid in frontier and pid not in tree]
            tree.update(children)
            frontier = children
        return sorted(tree)

    @staticmethod
    def rss(pids: List[int]) -> int:
        total = 0
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                pass
        return total

    @classmethod
    def tree_rss(cls, root: int) -> int:
        return cls.rss(cls.tree(root))

    def _run(self) -> None:
        walked, pids = 0.0, []
        while not self._stop.is_set():
            if time.monotonic() - walked >= self.rewalk:
                walked, pids = time.monotonic(), self.tree(self.pid)
            self.peak = max(self.peak, self.rss(pids))
            time.sleep(self.interval)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def make_file(path: Path, size_mib: int) -> Path:
    # Random bytes (nothing on the way can compress them), one MiB reused: fast to write.
    block = os.urandom(MIB)
    with open(path, "wb") as out:
        for _ in range(size_mib):
            out.write(block)
    return path


def transfer(env: Dict[str, str], path: Path, experiment: str, location: str, workdir: Path, image_bin: Path) -> Dict:
    try:
        report = harness.run_artifact_client(env, path, experiment, location, workdir, image_bin)
    except AssertionError as failed:
        raise SystemExit(f"bench: the artifact client failed: {failed}") from None
    if not report["intact"]:
        raise SystemExit(f"bench: {path.name} came back altered ({experiment})")
    return report


def run(
    sizes: List[int],
    version: str,
    workroot: Path,
    chunk_mib: Optional[int] = None,
    charm_config: Optional[Dict[str, object]] = None,
    client_env: Optional[Dict[str, str]] = None,
) -> List[Dict]:
    pod: Optional[Pod] = None
    rows = []
    with Stack(workroot, version) as stack:
        try:
            image_bin, s3 = stack.image_bin, stack.s3
            config = {"serve_artifacts": True, **(charm_config or {})}
            if chunk_mib is not None:
                config["multipart_upload_chunk_size"] = chunk_mib
            outcome, _ = stack.render(config)
            pod = Pod(outcome.spec, image_bin, workroot / "pod").run(ready_timeout=300)
            chunk = int(outcome.pod_defaults["minio"]["env"]["MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE"])
            proxied_env = {
                **stack.notebook_env(outcome),
                **(client_env or {}),
            }
            direct_env = {
                **proxied_env,
                "MLFLOW_S3_ENDPOINT_URL": s3.endpoint,
                "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
            }
            modes = (("proxied", proxied_env, ""), ("direct", direct_env, f"s3://{harness.BUCKET}/direct"))
            idle = RssSampler.tree_rss(pod.process.pid)
            warm_up = make_file(workroot / "warm-up.bin", WARM_UP_MIB)
            warm, rounds = idle, 0
            while rounds < WARM_UP_ROUNDS:
                rounds += 1
                for mode, env, location in modes:
                    transfer(env, warm_up, f"bench-{mode}", location, workroot, image_bin)
                last, warm = warm, RssSampler.tree_rss(pod.process.pid)
                if warm - last < WARM_RISE_MIB * MIB:
                    break
            print(
                f"bench: MLflow {version} serving proxied artifacts in parts of {chunk // MIB} MiB;"
                f" server RSS {idle / MIB:.0f} MiB idle, {warm / MIB:.0f} MiB after {rounds} warm-up round trips",
                flush=True,
            )
            for size in sizes:
                path = make_file(workroot / f"artifact-{size}MiB.bin", size)
                row = {"size_mib": size, "multipart": size * MIB >= chunk, "chunk_mib": chunk // MIB}
                for mode, env, location in modes:
                    before = RssSampler.tree_rss(pod.process.pid)
                    with RssSampler(pod.process.pid) as sampler:
                        report = transfer(env, path, f"bench-{mode}", location, workroot, image_bin)
                    row[mode] = {
                        "up_mib_s": size / report["upload_s"],
                        "down_mib_s": size / report["download_s"],
                        "server_peak_rss_mib": sampler.peak / MIB,
                        "server_rss_before_mib": before / MIB,
                        "server_rss_rise_mib": max(0, sampler.peak - before) / MIB,
                    }
                    print(
                        f"bench: {size:>5} MiB {mode:<8} up {row[mode]['up_mib_s']:7.1f} MiB/s"
                        f"  down {row[mode]['down_mib_s']:7.1f} MiB/s"
                        f"  server RSS peak {row[mode]['server_peak_rss_mib']:6.0f} MiB"
                        f" ({row[mode]['server_rss_rise_mib']:+.0f})",
                        flush=True,
                    )
                rows.append(row)
                path.unlink()
                s3.empty(harness.BUCKET)  # the next size starts from the same disk
            if pod.process.poll() is not None:
                raise SystemExit(f"bench: the MLflow server died:\n{pod.tail(pod.main[0])}")
            for row in rows:
                row["server_idle_rss_mib"] = idle / MIB
                row["server_warm_rss_mib"] = warm / MIB
        finally:
            if pod is not None:
                pod.stop()
    return rows


def targets(rows: List[Dict]) -> bool:
    ok = True

    def check(passed: bool, text: str) -> None:
        nonlocal ok
        ok = ok and passed
        print(f"{'PASS' if passed else 'FAIL'}  {text}")

    for row in rows:
        if row["size_mib"] >= 256:
            for way in ("up", "down"):
                ratio = row["proxied"][f"{way}_mib_s"] / row["direct"][f"{way}_mib_s"]
                check(ratio >= RATIO_TARGET, f"{row['size_mib']} MiB {way}: proxied {ratio:.2f}x direct (>= 0.7)")
    rises = {row["size_mib"]: row["proxied"]["server_rss_rise_mib"] for row in rows}
    if len(rises) > 1:
        small, big = min(rises), max(rises)
        check(
            rises[big] - rises[small] <= RSS_GROWTH_LIMIT_MIB,
            f"server RSS rise {big} MiB proxied {rises[big]:+.0f} MiB vs {small} MiB {rises[small]:+.0f} MiB"
            f" (at most {RSS_GROWTH_LIMIT_MIB} MiB more)",
        )
    return ok


def report(rows: List[Dict], version: str, seconds: float, setting: str) -> None:
    print(f"\nMLflow {version}, {os.cpu_count()} CPUs; MiB/s of the MLflow call; server RSS summed over its processes")
    if setting:
        print(f"  with {setting}")
    print("    size  upload path               proxied up/down MiB/s   direct up/down MiB/s", end="")
    print("   ratio up/down  server RSS peak (rise)")
    if rows:
        print(
            f"  server RSS {rows[0]['server_idle_rss_mib']:.0f} MiB idle, {rows[0]['server_warm_rss_mib']:.0f} MiB warm"
        )
    for row in rows:
        p, d = row["proxied"], row["direct"]
        path = f"{row['chunk_mib']} MiB presigned parts" if row["multipart"] else "through the server"
        print(
            f"{row['size_mib']:>5} MiB  {path:<22}  {p['up_mib_s']:9.1f} / {p['down_mib_s']:<9.1f}"
            f"   {d['up_mib_s']:8.1f} / {d['down_mib_s']:<9.1f}"
            f"  {p['up_mib_s'] / d['up_mib_s']:5.2f} / {p['down_mib_s'] / d['down_mib_s']:<5.2f}"
            f"   {p['server_peak_rss_mib']:5.0f} MiB ({p['server_rss_rise_mib']:+.0f})"
        )
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"bench: artifacts took {seconds:.0f} s in all; load average at the end {load} (1, 5, 15 min)")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="CI mode: 64 MiB only; targets reported, not enforced")
    parser.add_argument("--mlflow", default=image_mlflow_version(), help="MLflow version of the server and client")
    parser.add_argument("--sizes", type=int, nargs="+", help="artifact sizes in MiB (default 64 256 1024)")
    parser.add_argument("--chunk-mib", type=int, help="multipart_upload_chunk_size (default: the charm's)")
    parser.add_argument("--config", action="append", default=[], metavar="OPTION=VALUE", help="a charm config option")
    parser.add_argument(
        "--client-env", action="append", default=[], metavar="NAME=VALUE", help="added to the proxied client's env"
    )
    # `make bench` hands every bench the same BENCH_ARGS; the hook bench's own are not ours.
    args, _ = parser.parse_known_args(argv)
    sizes = args.sizes or list(SHORT_SIZES if args.short else FULL_SIZES)
    charm_config = {name: yaml.safe_load(value) for name, _, value in (o.partition("=") for o in args.config)}
    client_env = dict(v.partition("=")[::2] for v in args.client_env)
    workroot = CACHE / "bench-artifacts" / f"run-{os.getpid()}"
    started = time.monotonic()
    try:
        rows = run(sizes, args.mlflow, workroot, args.chunk_mib, charm_config, client_env)
    finally:
        shutil.rmtree(workroot, ignore_errors=True)
    report(rows, args.mlflow, time.monotonic() - started, " ".join(args.config + args.client_env))
    (CACHE / "bench-artifacts" / "results.json").write_text(json.dumps(rows, indent=1))
    ok = targets(rows)
    return 0 if ok or args.short else 1


if __name__ == "__main__":
    sys.exit(main())
