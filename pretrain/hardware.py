"""Accelerators the planner knows: dense peak throughput per precision, and memory.

All figures are NVIDIA datasheet numbers for dense math. Datasheets print tensor-core
rates "with sparsity" (2:4 structured sparsity) for Ampere and Hopper; dense training
gets half of that, which is what the table holds.

* V100 SXM2 32GB: NVIDIA Tesla V100 datasheet: FP32 15.7 TFLOPS, tensor (FP16) 125
  TFLOPS. Volta has neither TF32 nor BF16.
* A100 SXM4 80GB / 40GB: NVIDIA A100 Tensor Core GPU datasheet: FP32 19.5, TF32 156
  (312 sparse), BF16 and FP16 312 (624 sparse) TFLOPS.
* H100 SXM5 80GB: NVIDIA H100 Tensor Core GPU datasheet: FP32 67, TF32 989, BF16 and
  FP16 1,979 TFLOPS, the last three "with sparsity".
* H100 PCIe 80GB: same datasheet: FP32 51, TF32 756, BF16 and FP16 1,513 TFLOPS (sparse).
* H200 SXM 141GB: NVIDIA H200 Tensor Core GPU datasheet: the H100 SXM's compute (FP32 67,
  TF32 989, BF16 and FP16 1,979 TFLOPS sparse) with 141 GB of HBM3e.

Memory is in decimal GB as the datasheets state it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Training precisions the planner understands, and the peak each runs at.
#: ``*-mixed`` is 16-bit compute with fp32 master weights (Micikevicius et al. 2018,
#: "Mixed Precision Training"); ``bf16`` is pure bf16 (weights and optimizer states too);
#: ``tf32`` stores fp32 and multiplies on TF32 tensor cores.
PRECISIONS = {
    "fp32": "fp32",
    "tf32": "tf32",
    "bf16-mixed": "bf16",
    "fp16-mixed": "fp16",
    "bf16": "bf16",
}


@dataclass(frozen=True)
class Accelerator:
    key: str
    name: str
    memory_gb: float
    peak_tflops: dict[str, float]

    def supports(self, precision: str) -> bool:
        return PRECISIONS[precision] in self.peak_tflops

    def peak_flops(self, precision: str) -> float:
        """Dense peak in FLOP/s for a training precision (see :data:`PRECISIONS`)."""
        return self.peak_tflops[PRECISIONS[precision]] * 1e12

    def default_precision(self) -> str:
        return "bf16-mixed" if self.supports("bf16-mixed") else "fp16-mixed"


_A100 = {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0}
_HOPPER_SXM = {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5, "fp16": 989.5}

ACCELERATORS: dict[str, Accelerator] = {
    a.key: a
    for a in (
        Accelerator("v100", "NVIDIA V100 SXM2 32GB", 32.0, {"fp32": 15.7, "fp16": 125.0}),
        Accelerator("a100", "NVIDIA A100 SXM4 80GB", 80.0, _A100),
        Accelerator("a100-40gb", "NVIDIA A100 SXM4 40GB", 40.0, _A100),
        Accelerator("h100", "NVIDIA H100 SXM5 80GB", 80.0, _HOPPER_SXM),
        Accelerator(
            "h100-pcie",
            "NVIDIA H100 PCIe 80GB",
            80.0,
            {"fp32": 51.0, "tf32": 378.0, "bf16": 756.5, "fp16": 756.5},
        ),
        Accelerator("h200", "NVIDIA H200 SXM 141GB", 141.0, _HOPPER_SXM),
    )
}
