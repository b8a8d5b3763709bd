"""benchmarks/gpu_check.py: the CPU smoke run (--quick) writes a complete, sane report; the
pieces it is built from (peak table, FLOP count, summaries, input checks) behave."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    from attnmel.data.synth import write_synthetic

    root = tmp_path_factory.mktemp("isic2017")
    write_synthetic("isic2017", root, n_train=16, n_val=8, n_test=8, size=48, melanoma_fraction=0.4, seed=3)
    return root


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.mark.slow
def test_quick_cpu_run_writes_every_part(tmp_path, synth_root):
    out = tmp_path / "out"
    env = {**os.environ, "ATTNMEL_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--data", str(synth_root), "--out", str(out), "--device", "cpu", "--quick",
         "--parts", "step", "augment", "packing", "real_run", "cuda_tests", "compile_run", "probe", "heuristic_run"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=3600,  # a hang guard: the run measures every part whatever the speed,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    parts = report["parts"]
    assert set(parts) == {"step", "augment", "packing", "real_run", "cuda_tests", "compile_run", "probe",
                          "heuristic_run"}
    for name, part in parts.items():  # every part measured or skipped with a reason, none pending
        assert part["status"] in ("ok", "skipped"), (name, part)
        if part["status"] == "skipped":
            assert part["reason"]
    assert parts["packing"]["reason"].startswith("needs CUDA")
    assert parts["heuristic_run"]["reason"].startswith("a full CUDA run only")

    probe = parts["probe"]  # heuristics vs autotuned, then larger batches; evaluation per precision
    assert [(r["batch"], r["cudnn_benchmark"]) for r in probe["steps"]] == [(4, False), (4, True), (8, True), (16, True)]
    assert all(_positive(r["images_per_second"]) and r["first_step_seconds"] >= 0 for r in probe["steps"])
    assert [(r["precision"], r["batch"]) for r in probe["eval"]] == [("fp32", 64), ("fp32", 256), ("bf16", 64), ("bf16", 256)]
    assert all(_positive(r["images_per_second"]) for r in probe["eval"])
    assert probe["profile"]["steps"] == 3 and _positive(probe["profile"]["wall_ms_per_step"])
    assert report["environment"]["torch"] == torch.__version__ and report["device"] == "cpu"

    step = parts["step"]
    ok = [r for r in step["results"] if r["status"] == "ok"]
    assert {r["case"] for r in ok} == {"attnmel", "attnmel+lesion", "vgg16", "vgg16_gap", "melcnn"}
    for row in ok:
        assert _positive(row["images_per_second"]) and row["loss_finite"] and _positive(row["tflops"])
    # FLOPs were counted, not assumed: VGG-16's fc6/fc7 make its step costlier than the GAP head's
    flops = step["flops_per_image"]
    assert all(_positive(v) for v in flops.values())
    assert flops["vgg16"] > flops["vgg16_gap"]
    assert flops["attnmel+lesion"] == pytest.approx(flops["attnmel"], rel=0.02)  # Dice is no conv work
    lesion = step["by_case"]["attnmel+lesion"]
    assert all(_positive(lesion[s]) for s in ("fp32", "bf16", "bf16_cl", "compile"))
    assert lesion["ratios_to_fp32"]["bf16"] == pytest.approx(lesion["bf16"] / lesion["fp32"])

    aug = parts["augment"]
    assert all(_positive(r["samples_per_second"]) and r["output_finite"] for r in aug["results"])
    assert [r["output_shape"][1:] for r in aug["results"]] == [[3, 32, 32]] * len(aug["results"])
    assert _positive(aug["augment_over_step"])

    real = parts["real_run"]
    assert real["run"]["rc"] == 0 and [e["epoch"] for e in real["run"]["epochs"]] == [1, 2]
    assert all(_positive(s) for s in real["epoch_seconds"])
    assert real["projected_trial_50_epochs_seconds"] > sum(real["epoch_seconds"])
    split = real["outside_epochs"]  # the start-up, split where it is spent
    assert all(v >= 0 for v in split.values()) and split["interpreter_and_torch_import"] > 0
    assert sum(split.values()) == pytest.approx(real["startup_seconds"], abs=0.5)
    assert real["projected_table2_3_seeds_minutes_uniform"] * 60 == pytest.approx(
        21 * real["projected_trial_50_epochs_seconds"])
    ev = real["reevaluation"]
    assert ev["weights_only_load"] is True
    for mode in ("fp32_strict", "fp32", "bf16"):
        assert 0.0 <= ev[mode]["val"]["auc"] <= 1.0
    assert ev["fp32"]["val"]["max_abs_prob_diff"] < 1e-4  # no TF32 on a CPU: fp32 is strict fp32
    assert 0 <= ev["bf16"]["val"]["max_abs_prob_diff"] <= 1
    assert ev["val_auc_bf16_minus_fp32"] == pytest.approx(ev["bf16"]["val"]["auc"] - ev["fp32"]["val"]["auc"])

    tests = parts["cuda_tests"]
    assert "tests/attnmel/data/test_augment.py" in tests["files"] and tests["failed"] == 0 and tests["skipped"] >= 1

    assert all(t["met"] is None for t in report["targets"])  # targets are judged on a full GPU run only
    assert "GPU CHECK SUMMARY" in done.stdout and "attnmel+lesion" in done.stdout


@pytest.mark.parametrize(("kernel", "family"), [
    ("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc_tilesize128x128x64", "convolution"),
    ("void cutlass__5x_cudnn::Kernel<cutlass_tensorop_bf16_s16816fprop_optimized_bf16_256x64_32x4_nhwc_align8>", "convolution"),
    ("void at::native::batch_norm_collect_statistics_channels_last_kernel<at::native::Var, c10::BFloat16>", "batch norm"),
    ("void at::native::(anonymous namespace)::max_pool_backward_nhwc<c10::BFloat16, float>", "pooling"),
    ("void at::native::vectorized_elementwise_kernel<8, at::native::BinaryFunctor<c10::BFloat16>>", "elementwise"),
    ("void at::native::reduce_kernel<128, 4, at::native::ReduceOp<c10::BFloat16>>", "reduction"),
    ("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<TensorListMetadata<3>>", "optimizer"),
    ("void nchwToNhwcKernel<__nv_bfloat16>", "layout copies"),
    ("ampere_bf16_s16816gemm_bf16_128x64_ldg8_f2f_tn", "matmul"),
    ("some_new_kernel", "other"),
])
def test_kernel_families_of_real_kernel_names(gpu_check, kernel, family):
    assert gpu_check.kernel_family(kernel) == family


def test_card_peaks_follow_the_device_name(gpu_check):
    assert gpu_check.card_peaks("NVIDIA H100 80GB HBM3")["bf16_dense_tflops"] == 989.5
    assert gpu_check.card_peaks("NVIDIA H100 PCIe")["card"] == "H100 PCIe"
    assert gpu_check.card_peaks("NVIDIA H200")["card"] == "H200 SXM"
    assert gpu_check.card_peaks("NVIDIA H200 NVL")["card"] == "H200 NVL"
    assert gpu_check.card_peaks("NVIDIA A100-SXM4-80GB")["tf32_dense_tflops"] == 156.0
    unknown = gpu_check.card_peaks("NVIDIA GeForce RTX 4090")
    assert unknown["card"] is None and unknown["bf16_dense_tflops"] is None


def test_flop_count_matches_a_hand_count(gpu_check):
    """One linear layer: forward 2·B·I·O, backward 2·B·I·O for the weight gradient (the input
    needs none) — FlopCounterMode must see exactly that through the step wrapper."""

    from attnmel.models import ModelOutput

    class Linear(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(12, 2)

        def forward(self, x):
            return ModelOutput(self.fc(x.flatten(1)), None, None)

    bench = gpu_check.StepBench(Linear(), bf16=False, channels_last=False, roi=False)
    x = torch.randn(5, 3, 2, 2)
    flops = gpu_check.count_step_flops(bench, x, torch.tensor([0, 1, 0, 1, 1]), torch.zeros(5, 1, 2, 2))
    assert flops == 2 * (2 * 5 * 12 * 2)


def test_step_summary_ratios_and_best_setting(gpu_check):
    rows = [
        {"case": "a", "setting": "fp32", "status": "ok", "images_per_second": 100.0},
        {"case": "a", "setting": "bf16", "status": "ok", "images_per_second": 250.0},
        {"case": "a", "setting": "bf16_cl", "status": "ok", "images_per_second": 300.0},
        {"case": "a", "setting": "compile", "status": "skipped", "reason": "time budget"},
    ]
    case = gpu_check.summarise_steps(rows)["a"]
    assert case["ratios_to_fp32"] == {"bf16": 2.5, "bf16_cl": 3.0, "compile": None}
    assert case["best_setting"] == "bf16_cl" and case["compile_over_bf16_cl"] is None
    assert gpu_check._status_of(rows) == "ok"
    assert gpu_check._status_of(rows + [{"status": "error"}]) == "partial"


def test_bad_data_path_is_one_line_and_exit_2(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "out"), "--device",
         "cpu", "--quick"], cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"gpu_check: error: --data {tmp_path / 'nope'}: no such folder"]
    assert not (tmp_path / "out").exists()  # refused before any work
