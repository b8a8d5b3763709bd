"""benchmarks/gpu (the GPU check of issue 21): the CPU smoke run (--cpu-smoke) measures every
part and writes a complete, sane report; its pieces (the "before" network, kernel families,
peaks, input checks) behave."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    from attnmel.data.synth import write_synthetic

    root = tmp_path_factory.mktemp("isic2017")
    write_synthetic("isic2017", root, n_train=16, n_val=8, n_test=8, size=48, melanoma_fraction=0.4, seed=3)
    return root


@pytest.mark.slow
@pytest.mark.ray
def test_cpu_smoke_measures_every_part(tmp_path, synth_root):
    out = tmp_path / "out"
    env = {**os.environ, "ATTNMEL_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1", "RAY_ADDRESS": ""}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", "--data", str(synth_root), "--out", str(out), "--cpu-smoke"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=3600,  # a hang guard: every part runs whatever the speed
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    parts = report["parts"]
    assert {name: p["status"] for name, p in parts.items()} == {"step": "ok", "trial": "ok", "sweep": "ok",
                                                                "cuda_tests": "ok", "capacity": "ok"}  # fmt: skip

    step = parts["step"]
    assert list(step["rows"]) == ["biased", "folded", "fused", "compiled", "compiled_model"]
    for row in step["rows"].values():
        assert row["status"] == "ok" and _positive(row["images_per_second"]) and math.isfinite(row["first_loss"])
    assert step["rows"]["fused"]["over_previous"] == pytest.approx(
        step["rows"]["fused"]["images_per_second"] / step["rows"]["folded"]["images_per_second"])
    checks = step["checks"]
    assert checks["fold_float64"]["status"] == "ok" and checks["fold_float64"]["max_scaled_difference"] <= 1e-10
    assert checks["compiled_vs_eager"]["status"] == "ok" and checks["fused_vs_unfused"]["status"] == "ok"
    ev = step["eval"]
    assert ev["status"] == "ok" and ev["max_abs_prob_difference_padded_vs_dividing"] < 1e-3
    assert ev["split_sizes"] == [15, 60] and ev["dividing_batch"] == 30  # divides both: no padded images
    assert _positive(ev["best_dividing_seconds_per_epoch"]) and step["default_images_per_second"] > 0

    trial = parts["trial"]
    assert trial["rc"] == 0 and len(trial["epoch_seconds"]) == 2 and _positive(trial["startup_seconds"])
    assert trial["projected_trial_50_epochs_seconds"] > sum(trial["epoch_seconds"])

    sweep = parts["sweep"]
    assert set(sweep["phases"]) == {"packed", "alone"}
    for phase in sweep["phases"].values():
        assert phase["trials"] == 2 and phase["all_terminated"] and len(phase["tables_written"]) == 4
        assert phase["training_images"] == 2 * sweep["images_per_epoch"]  # 1 seed × 2 λ1, 1 epoch
        assert _positive(phase["aggregate_images_per_second"]) and phase["command_to_first_epoch_seconds"] > 0
        assert all(t["before_first_epoch_seconds"] >= 0 and t["pid"] for t in phase["per_trial"].values())
    assert sweep["packed_over_alone"] == pytest.approx(
        sweep["phases"]["packed"]["aggregate_images_per_second"] / sweep["phases"]["alone"]["aggregate_images_per_second"])

    tests = parts["cuda_tests"]
    assert "tests/attnmel/data/test_augment.py" in tests["files"] and tests["failed"] == 0 and tests["skipped"] >= 1
    capacity = parts["capacity"]
    assert not capacity["memory_measured"]
    assert [r["dataset"] for r in capacity["memory"]] == ["isic2017", "isic2019"]
    for row in capacity["memory"]:  # not measured on the CPU: null, never a made-up number
        assert row["status"] == "ok" and row["max_reserved_bytes"] is None
        assert row["estimate_bytes"] > 0
    small, large = capacity["memory"]  # images, ROI maps, lesion masks (ISIC 2017 only), labels
    pixels = 40**2
    assert large["data_bytes"] - small["data_bytes"] == (
        (26 - 14) * 3 * pixels + (16 - 8) * pixels - 6 * pixels + (26 - 14) * 8)
    assert [(s["trials"], s["status"]) for s in capacity["sharing"]] == [(1, "ok"), (2, "ok")]
    assert all(_positive(s["aggregate_images_per_second"]) for s in capacity["sharing"])
    assert all(f["source"] == "estimated" and f["trials_per_card"] >= 1 for f in capacity["fits"])
    assert "| resources.gpus |" in (out / "capacity.md").read_text()
    assert not (out / "capacity.json").exists()
    assert all(t["met"] is None for t in report["targets"])  # judged on a full GPU run only
    assert "GPU CHECK SUMMARY" in done.stdout


def test_the_before_network_is_the_product_with_its_biases_back():
    """The 'biased' row trains torchvision's biased layers with the product's weights: the same
    function as the folded network, and a bias on every convolution."""
    from attnmel.models import create_model
    from benchmarks.gpu.step import biased_copy

    torch.manual_seed(0)
    folded = create_model("attnmel").eval()
    biased = biased_copy(folded).eval()
    convs = [m for m in biased.backbone.features if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 13 and all(c.bias is not None for c in convs)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(biased(x).logits, folded(x).logits)


@pytest.mark.parametrize(("kernel", "family"), [
    ("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc_tilesize128x128x64", "convolution"),
    ("void at::native::batch_norm_collect_statistics_channels_last_kernel<at::native::Var, c10::BFloat16>", "batch norm"),
    ("void at::native::(anonymous namespace)::max_pool_backward_nhwc<c10::BFloat16, float>", "pooling"),
    ("void at::native::vectorized_elementwise_kernel<8, at::native::BinaryFunctor<c10::BFloat16>>", "elementwise"),
    ("void at::native::reduce_kernel<128, 4, at::native::ReduceOp<c10::BFloat16>>", "reduction"),
    ("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<TensorListMetadata<3>>", "optimizer"),
    ("void at::native::fused_sgd_kernel<float>", "optimizer"),
    ("void nchwToNhwcKernel<__nv_bfloat16>", "layout copies"),
    ("ampere_bf16_s16816gemm_bf16_128x64_ldg8_f2f_tn", "matmul"),
    ("triton_poi_fused_add_relu_3", "elementwise"),
    ("some_new_kernel", "other"),
])  # fmt: skip
def test_kernel_families_of_real_kernel_names(kernel, family):
    from benchmarks.gpu.step import kernel_family

    assert kernel_family(kernel) == family


def test_card_peaks_follow_the_device_name():
    from benchmarks.gpu.device import card_peaks

    assert card_peaks("NVIDIA H100 80GB HBM3")["bf16_dense_tflops"] == 989.5
    assert card_peaks("NVIDIA H200")["card"] == "H200 SXM" and card_peaks("NVIDIA H200 NVL")["card"] == "H200 NVL"
    assert card_peaks("NVIDIA A100-SXM4-80GB")["tf32_dense_tflops"] == 156.0
    assert card_peaks("NVIDIA GeForce RTX 4090")["card"] is None


def test_bad_data_path_is_one_line_and_exit_2(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "out"),
         "--cpu-smoke"], cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"gpu_check: error: --data {tmp_path / 'nope'}: no such folder"]
    assert not (tmp_path / "out").exists()  # refused before any work


def test_capacity_rows_make_the_table_preflight_reads():
    """A CUDA run's rows (shaped as measure_case returns them; the numbers are the test's) give
    the fits table, capacity.md and a capacity.json whose rows preflight's lookup finds."""
    from attnmel import capacity
    from benchmarks.gpu.capacity import FAMILIES, Sizes, measured_table
    from benchmarks.gpu.capacity_table import fits_table, markdown

    gib, sizes = capacity.GIB, Sizes.for_run(smoke=False)
    rows = [{"status": "ok", "family": f, "paper_name": f, "dataset": "isic2017", "images": 2750,
             "batch_size": 32, "precision": "bf16", "data_bytes": gib,
             "max_allocated_bytes": 8 * gib, "max_reserved_bytes": 9 * gib,
             "estimate_bytes": 10 * gib} for f in FAMILIES]
    rows.append({"family": "attnmel", "dataset": "isic2019", "batch_size": 64, "status": "skipped"})
    part = {"card": {"name": "NVIDIA H200", "memory_bytes": 140 * gib}, "memory": rows,
            "sharing": [], "context_bytes": gib // 2}
    part["fits"] = fits_table(rows, 140 * gib, part["context_bytes"])
    fits = [(f["trials_per_card"], f["gpus"], f["source"]) for f in part["fits"]]
    assert fits == [(13, 0.0769, "measured")] * 3  # 9.5 GiB each in 126 GiB
    assert markdown(part).count("| 9.50 (measured) |") == 3
    table = capacity.MeasuredTable.from_dict(measured_table(part, sizes).to_dict())
    shape = capacity.TrialShape("attnmel", "lesion", 32, 2000, 750, 750)  # as preflight builds it
    assert table.trial_memory(shape).total == gib // 2 + capacity.data_bytes(shape) + 8 * gib
    assert table.trial_memory(capacity.TrialShape("vgg16_gap", "none", 32, 2000, 750)) is not None
    assert table.trial_memory(capacity.TrialShape("attnmel", "none", 64, 2000, 750)) is None
