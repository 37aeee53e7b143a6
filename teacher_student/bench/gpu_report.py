"""`bench train` as a whole: each (model, precision) measured in its own subprocess (so its peak
memory is its own), then the tables: ratios between precisions, feeding, FLOP/s and the share of
the GPU's peak. Runs split to fit a time limit are merged by `bench show`.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time

from teacher_student import atomic
from teacher_student.bench import FULL_FLOAT32, MODELS, PRECISIONS, common
from teacher_student.bench.gpu import MARKER, TrainBench
from teacher_student.hardware import cpu_name
from teacher_student.models.precision import FLOAT32
from teacher_student.tables import markdown_table

# Dense peak TFLOP/s of the H100 SXM by NVIDIA's datasheet (the H200 has the same rates, see the
# device notes' H200.md): TF32 for default float32, plain FP32, and FP16/BF16 tensor cores.
PEAK_TFLOPS = {FLOAT32: 495.0, FULL_FLOAT32: 67.0, "mixed_float16": 989.0,
               "mixed_bfloat16": 989.0}


# ---------------------------------------------------------------------------------------------
# Every (model, precision), each in its own process, and the tables.

def run(spec: TrainBench, models=MODELS, precisions=PRECISIONS, json_path: str | None = None,
        budget_s: float = 3600.0) -> dict:
    """Measures each (model, precision) in a fresh subprocess; stops starting new ones after
    `budget_s` seconds. Writes the JSON after each, so an interrupted run keeps what it has."""
    environment = common.environment(detect_device=False)  # the parent leaves the GPU alone
    report = {"environment": environment, "spec": dataclasses.asdict(spec), "results": []}
    deadline = time.monotonic() + budget_s
    for model_name in models:
        for precision in precisions:
            left = deadline - time.monotonic()
            result = (_run_child(spec, model_name, precision, left) if left > 0 else
                      {"model": model_name, "precision": precision, "error": "time budget spent"})
            report["results"].append(result)
            environment["device"] = environment["device"] or result.get("device") or \
                (cpu_name() if "error" not in result else None)
            print(f"{model_name} {precision}: {json.dumps(result)}", file=sys.stderr, flush=True)
            if json_path:
                atomic.write_json(json_path, report)
    return report


def _run_child(spec: TrainBench, model_name: str, precision: str, timeout: float) -> dict:
    failed = {"model": model_name, "precision": precision}
    argument = json.dumps({"spec": dataclasses.asdict(spec), "model": model_name,
                           "precision": precision})
    try:
        done = subprocess.run([sys.executable, "-m", "teacher_student.bench.gpu", argument],
                              stdout=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**failed, "error": "time budget spent while running"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    return {**failed, "error": f"exit code {done.returncode}"}


def summarize(results: list[dict]) -> list[dict]:
    """Rows with the derived figures: ratios between precisions, feeding, FLOP/s, peak share;
    each backend's rows (ours on JAX, the PyTorch peer) compared within that backend."""
    by_key = {(r["model"], r["precision"], r.get("backend"), r.get("devices", 1)): r
              for r in results if "error" not in r}
    rows = []
    for (model_name, precision, backend, devices), r in by_key.items():
        # The HLO count includes the convolutions, which the GPU's compiled count leaves out.
        flops = r.get("hlo_flops_per_step") or r.get("flops_per_step")
        rate = _rate(r)
        one_device = by_key.get((model_name, precision, backend, 1)) if devices > 1 else None
        row = {**r, "images_per_s": rate, "devices": devices,
               "vs_float32": common.ratio(
                   rate, _rate(by_key.get((model_name, FLOAT32, backend, devices)))),
               "vs_full_float32": common.ratio(
                   rate, _rate(by_key.get((model_name, FULL_FLOAT32, backend, devices)))),
               # The scaling: the trainer's fit on these devices against one, batch per device
               "vs_one_device": common.ratio(r.get("trainer_images_per_s"),
                                             (one_device or {}).get("trainer_images_per_s")),
               "trainer_vs_device": common.ratio(r.get("trainer_images_per_s"),
                                                 r.get("device_fed_images_per_s")),
               "host_vs_device": common.ratio(r.get("host_fed_images_per_s"),
                                             r.get("device_fed_images_per_s")),
               "peak_gib": r["peak_bytes"] / 2**30 if r.get("peak_bytes") else None,
               "gflop_per_step": flops / 1e9 if flops else None}
        if flops and r.get("step_ms"):
            row["tflop_per_s"] = flops / r["step_ms"] / 1e9
            peak = _peak_tflops(r.get("device"), precision)
            row["share_of_peak"] = row["tflop_per_s"] / peak if peak else None
        student = by_key.get(("student", precision, backend, devices))
        if model_name == "distill" and student and student.get("step_ms") and \
                r.get("teacher_forward_ms"):
            row["student_plus_forward_ms"] = student["step_ms"] + r["teacher_forward_ms"]
            row["distill_vs_sum"] = r["step_ms"] / row["student_plus_forward_ms"]
        rows.append(row)
    return rows


def peer_rows(rows: list[dict]) -> list[dict]:
    """Ours (JAX) against the PyTorch peer (scripts/torch_peer.py) for each model and
    precision both measured: images per second on the device, compile, peak memory."""
    ours = {(r["model"], r["precision"]): r for r in rows
            if r.get("backend") == "jax" and r.get("devices", 1) == 1}
    compared = []
    for peer in rows:
        mine = ours.get((peer["model"], peer["precision"]))
        if not str(peer.get("backend")).startswith(PEER_BACKEND) or not mine:
            continue
        compared.append({
            "model": peer["model"], "precision": peer["precision"], "peer_way": peer["backend"],
            "ours": mine.get("device_fed_images_per_s"),
            "peer": peer.get("device_fed_images_per_s"),
            "ours_vs_peer": common.ratio(mine.get("device_fed_images_per_s"),
                                         peer.get("device_fed_images_per_s")),
            "ours_compile_s": mine.get("compile_s"), "peer_first_step_s": peer.get("first_step_s"),
            "ours_gib": mine.get("peak_gib"), "peer_gib": peer.get("peak_gib"),
            "peer_finite": peer.get("finite")})
    return compared


def _rate(result: dict | None) -> float | None:
    if not result:
        return None
    return (result.get("device_fed_images_per_s") or result.get("trainer_images_per_s")
            or result.get("keras_fit_images_per_s"))


def _peak_tflops(device: str | None, precision: str) -> float | None:
    known = device and ("H100" in device or "H200" in device) and "PCIe" not in device
    return PEAK_TFLOPS[precision] if known else None


# What scripts/torch_peer.py records as its backend begins so: `pytorch` (torch.compile's
# default mode), `pytorch eager`, `pytorch reduce-overhead` (CUDA graphs)...
PEER_BACKEND = "pytorch"
TRAIN_COLUMNS = [("model", "model", ""), ("precision", "precision", ""),
                 ("backend", "backend", ""), ("devices", "devices", "d"),
                 ("parameters", "params", ","),
                 ("device_fed_images_per_s", "img/s on device", ".0f"),
                 ("host_fed_images_per_s", "img/s from host", ".0f"),
                 ("host_vs_device", "host/device", ".2f"),
                 ("prefetched_images_per_s", "img/s host, prefetched", ".0f"),
                 ("keras_fit_images_per_s", "img/s Keras fit, arrays", ".0f"),
                 ("trainer_images_per_s", "img/s trainer fit", ".0f"),
                 ("trainer_unaugmented_images_per_s", "img/s trainer, no augment", ".0f"),
                 ("trainer_vs_device", "trainer/device", ".2f"),
                 ("vs_one_device", "x one device", ".2f"),
                 ("vs_float32", "x float32", ".2f"), ("vs_full_float32", "x full fp32", ".2f"),
                 ("step_ms", "ms/step", ".1f"), ("gflop_per_step", "GFLOP/step", ".1f"),
                 ("tflop_per_s", "TFLOP/s", ".1f"), ("share_of_peak", "of peak", ".1%"),
                 ("peak_gib", "peak GiB", ".2f"), ("compile_s", "compile s", ".0f")]
PEER_COLUMNS = [("model", "model", ""), ("precision", "precision", ""),
                ("peer_way", "peer", ""),
                ("ours", "img/s ours (JAX)", ".0f"), ("peer", "img/s PyTorch peer", ".0f"),
                ("ours_vs_peer", "ours / peer", ".2f"),
                ("ours_compile_s", "ours compile s", ".0f"),
                ("peer_first_step_s", "peer first step s", ".0f"),
                ("ours_gib", "ours peak GiB", ".2f"), ("peer_gib", "peer peak GiB", ".2f"),
                ("peer_finite", "peer loss finite", "")]
DISTILL_COLUMNS = [("precision", "precision", ""), ("backend", "backend", ""),
                   ("step_ms", "distill ms/step", ".1f"),
                   ("teacher_forward_ms", "teacher forward ms", ".1f"),
                   ("student_plus_forward_ms", "student step + forward ms", ".1f"),
                   ("distill_vs_sum", "distill / sum", ".2f")]


def _spec_line(spec: dict) -> str:
    devices = spec.get("devices", 1)
    per_device = f" per device on {devices} devices (DataParallel)" if devices > 1 else ""
    timing = ("FLOPs only" if spec["flops_only"] else
              f"median of {spec['windows']} window{'' if spec['windows'] == 1 else 's'} of "
              f"{spec['steps']} step{'' if spec['steps'] == 1 else 's'}")
    return (f"batch {spec['batch_size']}{per_device}, {spec['image_size']} px, "
            f"{spec['num_classes']} classes; {timing}")


def format_report(report: dict) -> str:
    rows = summarize(report["results"])
    spec = report["spec"]
    parts = [common.format_environment(report["environment"]), _spec_line(spec),
             "", markdown_table(rows, TRAIN_COLUMNS)]
    distill_rows = [r for r in rows if r["model"] == "distill" and r.get("step_ms")]
    if distill_rows:
        parts += ["", markdown_table(distill_rows, DISTILL_COLUMNS)]
    peers = peer_rows(rows)
    if peers:
        parts += ["", "Ours against the PyTorch peer (images per second on the device):", "",
                  markdown_table(peers, PEER_COLUMNS)]
    errors = [f"{r['model']} {r['precision']}: {r['error']}" for r in report["results"]
              if "error" in r]
    return "\n".join(parts + (["", "not measured:", *errors] if errors else []))


def merge_reports(reports: list[dict]) -> dict:
    """One report from several runs of the same spec (runs split to fit a time limit); the
    environment is the first run's. Results measured twice keep the later one."""
    first = reports[0]
    for other in reports[1:]:
        differ = [key for key in ("image_size", "batch_size", "num_classes", "steps", "windows")
                  if other["spec"][key] != first["spec"][key]]
        if differ:
            raise ValueError(f"cannot merge runs whose {differ[0]} differs: "
                             f"{first['spec'][differ[0]]} and {other['spec'][differ[0]]}")
    results = {}
    for report in reports:
        for result in report["results"]:
            # Older runs of ours name their backend in the environment alone.
            result.setdefault("backend", report["environment"].get("backend"))
            key = (result["model"], result["precision"], result["backend"],
                   result.get("devices", 1))
            if "error" not in result or key not in results:
                results[key] = result
    return {**first, "results": list(results.values())}
