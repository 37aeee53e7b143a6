"""The PyTorch peer of `bench train`: our default teacher, student and distillation
step written in plain PyTorch, trained the way a careful PyTorch user trains them, and timed the
way `bench train` times ours. On the GPU machine, from the repository root:

    python3 scripts/torch_peer.py [--models M ...] [--precisions P ...] [--json FILE]
    python3 scripts/torch_peer.py --models teacher --json runs/peer-teacher.json  # one model
    python3 scripts/torch_peer.py --parameters     # only the parameter counts against Keras'
    python3 scripts/torch_peer.py --models teacher --precisions mixed_float16 --profile 25
    python3 scripts/torch_peer.py --device cpu --threads 1 --image-size 32 --batch-size 8 \\
        --steps 2 --warmup 1 --windows 1 --num-workers 1 --no-compile     # a smoke test

Its defaults, flags and JSON records are those of
`KERAS_BACKEND=jax python -m teacher_student bench train` (bench/gpu.py): 224 px, 3 channels,
100 classes, batch 64, 5 warm-up steps, median of 5 windows of 20 steps, each (model, precision)
in a fresh subprocess so its peak memory is its own; a field of the same name means the same
figure (`device_fed_images_per_s`, `step_ms`, `peak_bytes`, `teacher_forward_ms`, ...), and
`python -m teacher_student bench show FILE ...` reads and merges its JSON files (one per model
where a command may run only 10 minutes: each child compiles cold). Its own figures:
`first_step_s` (the first step, torch.compile and cuDNN's autotuning included: compare with
`compile_s`), `dataloader_images_per_s` (the step fed by the DataLoader) and `step_peak_bytes`
(peak memory of the timed steps alone; `peak_bytes` is the whole measurement's).

The networks are those of teacher_student/models (teacher.py, student.py, blocks.py) at the
defaults of config/schema.py; the parameter counts are checked against Keras' (`--parameters`).
The step: uint8 NHWC batches made float on the GPU inside the model (as its `stem_rescale`),
channels_last, Adam as the main phase (lr 2e-3, cosine), autocast float16 with a GradScaler or
bfloat16 without, float32 logits and loss, `torch.compile` of the forward pass and loss,
cuDNN autotuning, a fused Adam on CUDA. Distillation: the teacher frozen, in eval mode under
no_grad, alpha * CE + (1 - alpha) * T^2 * KL at alpha 0.5, T 4 (training/methods/kd.py).

Needs only torch and numpy: it imports nothing of this package, Keras or TensorFlow.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

MODELS = ("teacher", "student", "distill")
FULL_FLOAT32 = "float32-highest"  # no TF32, as bench train's
PRECISIONS = ("float32", FULL_FLOAT32, "mixed_float16", "mixed_bfloat16")
AUTOCAST = {"mixed_float16": torch.float16, "mixed_bfloat16": torch.bfloat16}
MARKER = "PEER_RESULT "
HOST_BATCHES = 4  # distinct batches on the device, cycled, as bench/gpu.py
POOL_BATCHES = 16  # synthetic images the DataLoader draws its batches from

# The defaults of config/schema.py and models/blocks.py.
TEACHER_WIDTHS = (32, 64, 128, 256)
FUSION_WIDTH = 128
CBAM_REDUCTION = 8
TEACHER_DROPOUT = 0.2
STUDENT_WIDTHS = (24, 48, 96, 192)
WIDTH_MULTIPLIER = 2.0
STUDENT_DROPOUT = 0.1
SCALES = 3  # the teacher fuses its last three stages
STRIDED_STEM_FROM = 96  # from this image size up, the stem has stride 2
BN_MOMENTUM = 0.1  # Keras' momentum 0.9: PyTorch's weighs the new batch, Keras' the old value
BN_EPSILON = 1e-3  # Keras' default (PyTorch's is 1e-5)
ADAM_EPSILON = 1e-7  # Keras' default (PyTorch's is 1e-8)
LEARNING_RATE, FINAL_SHARE = 2e-3, 0.01  # the main phase: cosine decay to 1% (CosineDecay alpha)
ALPHA, TEMPERATURE = 0.5, 4.0

# Keras' count_params() (weights and BatchNorm's moving statistics) and trainable count of
# build_teacher / build_student at the config's defaults, per (input shape, classes), Keras 3
# on JAX (count them again when the models change); `--parameters` compares the torch
# networks with them.
KERAS_PARAMETERS = {
    ((224, 224, 3), 100): {"teacher": (1378019, 1374115), "student": (146932, 144628)},
    ((32, 32, 1), 10): {"teacher": (1365833, 1361929), "student": (111418, 109114)},
}
TOLERANCE = 0.01


@dataclass(frozen=True)
class PeerBench:
    image_size: int = 224
    channels: int = 3
    num_classes: int = 100
    batch_size: int = 64
    warmup: int = 5  # steps after the first, not timed
    steps: int = 20  # steps per timed window
    windows: int = 5  # timed windows; rates use their median
    device: str = "cuda"
    compile: bool = True
    compile_mode: str = "default"
    num_workers: int = 4
    npz: str | None = None
    threads: int | None = None
    flops_only: bool = False  # never: there for `bench show`, which reads bench train's specs


# ---------------------------------------------------------------------------------------------
# The networks: models/blocks.py, teacher.py and student.py.

def stem_stride(image_size: int) -> int:
    return 2 if image_size >= STRIDED_STEM_FROM else 1


def rescale(images: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC to float NCHW in [0, 1], on the device, as the Keras models' `stem_rescale`.
    The permute is a view of the NHWC batch: the result is channels_last with no copy."""
    return images.permute(0, 3, 1, 2).float().div_(255)


class ConvBnAct(nn.Sequential):
    """apply_conv_bn_act: a conv with 'same' padding and no bias, BatchNorm, ReLU.

    A strided conv pads one pixel on each side, the PyTorch way; Keras' 'same' pads only after.
    Same shapes and cost; with that padding emulated, these networks given Keras' weights give
    its logits to 1e-7."""

    def __init__(self, inputs: int, width: int, kernel: int, stride: int = 1,
                 activation: bool = True, groups: int = 1):
        layers = [nn.Conv2d(inputs, width, kernel, stride, kernel // 2, groups=groups,
                            bias=False),
                  nn.BatchNorm2d(width, eps=BN_EPSILON, momentum=BN_MOMENTUM)]
        super().__init__(*layers, *([nn.ReLU(inplace=True)] if activation else []))


class ChannelAttention(nn.Module):
    """CBAM channel attention: one MLP (1x1 convs) shared by the average- and max-pooled maps."""

    def __init__(self, width: int, reduction: int):
        super().__init__()
        hidden = max(8, width // reduction)
        self.squeeze = nn.Conv2d(width, hidden, 1)
        self.excite = nn.Conv2d(hidden, width, 1)

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        return self.excite(F.relu(self.squeeze(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.mlp(x.mean((2, 3), keepdim=True)) + self.mlp(x.amax((2, 3), keepdim=True))
        return x * torch.sigmoid(scores)


class SpatialAttention(nn.Module):
    """CBAM spatial attention: channel mean and max, a 7x7 conv, a sigmoid."""

    def __init__(self, kernel: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
        return x * torch.sigmoid(self.conv(pooled))


def cbam(width: int, reduction: int) -> nn.Sequential:
    return nn.Sequential(ChannelAttention(width, reduction), SpatialAttention())


class ResidualBlock(nn.Module):
    """Two 3x3 convs, CBAM on the residual branch, a projection shortcut when needed."""

    def __init__(self, inputs: int, width: int, stride: int, reduction: int):
        super().__init__()
        self.shortcut = (ConvBnAct(inputs, width, 1, stride, activation=False)
                         if stride != 1 or inputs != width else nn.Identity())
        self.residual = nn.Sequential(ConvBnAct(inputs, width, 3, stride),
                                      ConvBnAct(width, width, 3, activation=False),
                                      cbam(width, reduction))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.shortcut(x) + self.residual(x))


class Head(nn.Module):
    """Global average pool, dropout, float32 logits (policy.logits): under autocast too, so
    softmax and the loss are float32."""

    def __init__(self, width: int, num_classes: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.logits = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(x.mean((2, 3)))
        with torch.autocast(x.device.type, enabled=False):
            return self.logits(x.float())


class Teacher(nn.Module):
    """Residual CBAM stages; the last three scales, each a 1x1 conv to the fusion width, average-
    pooled down or bilinearly upsampled to the middle one and concatenated; a 1x1 conv, CBAM,
    the head."""

    def __init__(self, image_size: int, channels: int, num_classes: int):
        super().__init__()
        widths = TEACHER_WIDTHS
        self.stem = ConvBnAct(channels, widths[0], 3, stem_stride(image_size))
        self.stages = nn.ModuleList(
            ResidualBlock(inputs, width, 1 if i == 0 else 2, CBAM_REDUCTION)
            for i, (inputs, width) in enumerate(zip((widths[0], *widths), widths)))
        self.laterals = nn.ModuleList(ConvBnAct(width, FUSION_WIDTH, 1)
                                      for width in widths[-SCALES:])
        self.mix = ConvBnAct(SCALES * FUSION_WIDTH, FUSION_WIDTH, 1)
        self.cbam = cbam(FUSION_WIDTH, CBAM_REDUCTION)
        self.head = Head(FUSION_WIDTH, num_classes, TEACHER_DROPOUT)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.stem(rescale(images))
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return self.head(self.cbam(self.mix(self.fuse(features[-SCALES:]))))

    def fuse(self, features: list[torch.Tensor]) -> torch.Tensor:
        target = features[len(features) // 2].shape[-1]
        resized = []
        for lateral, feature in zip(self.laterals, features):
            y = lateral(feature)
            size = y.shape[-1]
            if size > target:
                y = F.avg_pool2d(y, size // target)
            elif size < target:
                # In float32 and back, as the Keras model's float32 island; half-pixel centres
                # (align_corners=False) as Keras' bilinear resize.
                y = F.interpolate(y.float(), scale_factor=target // size, mode="bilinear",
                                  align_corners=False).to(y.dtype)
            resized.append(y)
        return torch.cat(resized, 1)


def student_widths() -> tuple[int, ...]:
    """Each width times the multiplier, rounded to a multiple of 8 (student.student_widths)."""
    return tuple(max(8, round(width * WIDTH_MULTIPLIER / 8) * 8) for width in STUDENT_WIDTHS)


class Student(nn.Module):
    """A 3x3 stem, depthwise-separable stages (stride 2 after the first), the head."""

    def __init__(self, image_size: int, channels: int, num_classes: int):
        super().__init__()
        widths = student_widths()
        self.stem = ConvBnAct(channels, widths[0], 3, stem_stride(image_size))
        self.stages = nn.Sequential(*(
            nn.Sequential(ConvBnAct(inputs, inputs, 3, 1 if i == 0 else 2, groups=inputs),
                          ConvBnAct(inputs, width, 1))  # depthwise, then pointwise
            for i, (inputs, width) in enumerate(zip((widths[0], *widths), widths))))
        self.head = Head(widths[-1], num_classes, STUDENT_DROPOUT)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(rescale(images))))


def build(name: str, spec: PeerBench) -> nn.Module:
    model = (Teacher if name == "teacher" else Student)(spec.image_size, spec.channels,
                                                        spec.num_classes)
    for module in model.modules():  # Keras' initializers: Glorot uniform, zero biases
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def keras_counts(model: nn.Module) -> tuple[int, int]:
    """(all, trainable) as Keras counts them: its count_params() includes BatchNorm's moving
    mean and variance, which are buffers here."""
    trainable = sum(p.numel() for p in model.parameters())
    moving = sum(b.numel() for name, b in model.named_buffers()
                 if name.endswith(("running_mean", "running_var")))
    return trainable + moving, trainable


def parameter_rows(spec: PeerBench) -> list[dict]:
    """Counts of both networks for the reference shapes and the configured one, beside Keras'."""
    shapes = dict.fromkeys([*KERAS_PARAMETERS, ((spec.image_size, spec.image_size,
                                                 spec.channels), spec.num_classes)])
    rows = []
    for shape, classes in shapes:
        shaped = dataclasses.replace(spec, image_size=shape[0], channels=shape[2],
                                     num_classes=classes)
        for name in ("teacher", "student"):
            total, trainable = keras_counts(build(name, shaped))
            keras_total, keras_trainable = KERAS_PARAMETERS.get((shape, classes), {}).get(
                name, (None, None))
            rows.append({"input": f"{shape[0]}x{shape[1]}x{shape[2]}, {classes} classes",
                         "model": name, "torch": total, "keras": keras_total,
                         "ratio": total / keras_total if keras_total else None,
                         "torch_trainable": trainable, "keras_trainable": keras_trainable})
    return rows


# ---------------------------------------------------------------------------------------------
# The training step and its measurement, for one (model, precision) in this process.

def kd_loss(teacher_logits: torch.Tensor, student_logits: torch.Tensor,
            temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), averaged over the batch."""
    teacher_log_p = F.log_softmax(teacher_logits.float() / temperature, -1)
    student_log_p = F.log_softmax(student_logits.float() / temperature, -1)
    return temperature**2 * F.kl_div(student_log_p, teacher_log_p, reduction="batchmean",
                                     log_target=True)


def cosine(step: int, total: int) -> float:
    """Keras' CosineDecay(alpha=FINAL_SHARE) as a share of the initial rate."""
    progress = min(step, total) / max(total, 1)
    return (1 - FINAL_SHARE) * 0.5 * (1 + math.cos(math.pi * progress)) + FINAL_SHARE


def set_float32_precision(precision: str) -> None:
    """TF32 tensor cores for float32 matmuls and convolutions, as JAX uses them by default on
    Ampere and Hopper; none for float32-highest (PyTorch's own default has them for convolutions
    only)."""
    tf32 = precision != FULL_FLOAT32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")


def training_step(model_name: str, precision: str, spec: PeerBench, device: torch.device,
                  total_steps: int):
    """(step(images, labels) -> loss, the trained model, the frozen teacher or None)."""
    trained = build("student" if model_name == "distill" else model_name, spec)
    trained = trained.to(device, memory_format=torch.channels_last).train()
    teacher = None
    if model_name == "distill":
        teacher = build("teacher", spec).to(device, memory_format=torch.channels_last).eval()
        teacher.requires_grad_(False)
    # Fused on CUDA: one kernel for all parameters, and GradScaler hands it the inf check
    # without syncing the host every step.
    optimizer = torch.optim.Adam(trained.parameters(), lr=LEARNING_RATE, eps=ADAM_EPSILON,
                                 fused=device.type == "cuda")
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine(s, total_steps))
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "mixed_float16")
    dtype = AUTOCAST.get(precision)

    def loss_of(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = trained(images)
            loss = F.cross_entropy(logits, labels)  # float32 logits
            if teacher is not None:
                with torch.no_grad():
                    teacher_logits = teacher(images)
                loss = ALPHA * loss + (1 - ALPHA) * kd_loss(teacher_logits, logits, TEMPERATURE)
        return loss

    if spec.compile:  # forward and loss in one graph, its backward compiled with it
        loss_of = torch.compile(loss_of, mode=spec.compile_mode)

    def step(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_of(images, labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        schedule.step()
        return loss.detach()

    return step, trained, teacher


def teacher_forward(teacher: nn.Module, precision: str, spec: PeerBench, device: torch.device):
    """The distillation teacher's inference pass alone, compiled like the step."""
    dtype = AUTOCAST.get(precision)

    def forward(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), torch.autocast(device.type, dtype=dtype,
                                             enabled=dtype is not None):
            return teacher(images)

    return torch.compile(forward, mode=spec.compile_mode) if spec.compile else forward


class ArrayBatches(Dataset):
    """Whole batches of in-memory uint8 images, gathered by a BatchSampler's list of indices:
    one NumPy gather a batch instead of a collate of single images."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, indices: list[int]):
        return torch.from_numpy(self.images[indices]), torch.from_numpy(self.labels[indices])


def loader(images: np.ndarray, labels: np.ndarray, batches: int, spec: PeerBench,
           device: torch.device) -> DataLoader:
    """`batches` random batches: workers gather them, a thread pins them for async copies."""
    data = ArrayBatches(images, labels)
    sampler = RandomSampler(data, replacement=True, num_samples=batches * spec.batch_size,
                            generator=torch.Generator().manual_seed(0))
    return DataLoader(data, sampler=BatchSampler(sampler, spec.batch_size, drop_last=True),
                      batch_size=None, num_workers=spec.num_workers,
                      pin_memory=device.type == "cuda",
                      prefetch_factor=4 if spec.num_workers else None)


def host_images(spec: PeerBench) -> tuple[np.ndarray, np.ndarray]:
    """The `--npz` images and labels, or random uint8 images (never zeros) and labels."""
    if spec.npz:
        images, labels = read_npz(spec.npz)
        return images, labels.astype(np.int64)
    rng = np.random.default_rng(0)
    count = POOL_BATCHES * spec.batch_size
    return (rng.integers(0, 256, (count, spec.image_size, spec.image_size, spec.channels),
                         dtype=np.uint8),
            rng.integers(0, spec.num_classes, count, dtype=np.int64))


def read_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as archive:
        images, labels = archive["images"], archive["labels"]
    if images.ndim == 3:  # grayscale without a channel axis
        images = images[..., None]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != images.shape[2]:
        raise SystemExit(f"--npz {path}: images must be square uint8 (N, H, W[, C]), got "
                         f"{images.dtype} {images.shape}")
    return images, labels.reshape(-1)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_windows(run_steps, spec: PeerBench, device: torch.device) -> list[float]:
    """Seconds of each of `spec.windows` calls of `run_steps`, the device synchronized around."""
    durations = []
    for _ in range(spec.windows):
        synchronize(device)
        start = time.perf_counter()
        run_steps()
        synchronize(device)
        durations.append(time.perf_counter() - start)
    return durations


def peer_backend(spec: PeerBench) -> str:
    """`pytorch` for torch.compile's default mode, else the way the step ran (`pytorch eager`,
    `pytorch reduce-overhead`...): `bench show` keeps each way as a row of its own."""
    if not spec.compile:
        return "pytorch eager"
    return "pytorch" if spec.compile_mode == "default" else f"pytorch {spec.compile_mode}"


def measure(spec: PeerBench, model_name: str, precision: str) -> dict:
    """Every figure for one model under one precision; best called in a fresh process."""
    device = torch.device(spec.device)
    if spec.threads:
        torch.set_num_threads(spec.threads)
    torch.manual_seed(0)
    set_float32_precision(precision)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its kernels
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    images, labels = host_images(spec)
    rng = np.random.default_rng(1)
    device_batches = [(torch.from_numpy(images[chosen]).to(device),
                       torch.from_numpy(labels[chosen]).to(device))
                      for chosen in rng.integers(0, len(images), (HOST_BATCHES, spec.batch_size))]
    total_steps = 1 + 2 * (spec.warmup + spec.windows * spec.steps)
    step, trained, teacher = training_step(model_name, precision, spec, device, total_steps)
    result = {"model": model_name, "precision": precision,
              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
              "backend": peer_backend(spec), "parameters": keras_counts(trained)[0]}
    if teacher is not None:
        result["teacher_parameters"] = keras_counts(teacher)[0]

    def cycle(count: int) -> torch.Tensor:
        for i in range(count):
            loss = step(*device_batches[i % HOST_BATCHES])
        return loss

    start = time.perf_counter()  # the first step compiles (and cuDNN tries its kernels)
    step(*device_batches[0])
    synchronize(device)
    result["first_step_s"] = time.perf_counter() - start
    cycle(spec.warmup)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    on_device = timed_windows(lambda: cycle(spec.steps), spec, device)
    items = spec.steps * spec.batch_size
    result["device_fed_images_per_s"] = items / float(np.median(on_device))
    result["step_ms"] = 1000 * float(np.median(on_device)) / spec.steps

    # The same steps fed by a DataLoader: pinned batches copied asynchronously.
    feed = iter(loader(images, labels, spec.warmup + spec.windows * spec.steps, spec, device))

    def from_loader(count: int) -> torch.Tensor:
        for _ in range(count):
            batch_images, batch_labels = next(feed)
            loss = step(batch_images.to(device, non_blocking=True),
                        batch_labels.to(device, non_blocking=True))
        return loss

    from_loader(spec.warmup)  # starts the workers and fills their queues
    holder = {}
    fed = timed_windows(lambda: holder.update(loss=from_loader(spec.steps)), spec, device)
    result["dataloader_images_per_s"] = items / float(np.median(fed))
    result["finite"] = bool(torch.isfinite(holder["loss"]).all())
    if device.type == "cuda":
        result["step_peak_bytes"] = torch.cuda.max_memory_allocated(device)
        result["peak_bytes"] = max(peak, result["step_peak_bytes"])
    if teacher is not None:
        forward = teacher_forward(teacher, precision, spec, device)
        for i in range(1 + spec.warmup):
            forward(device_batches[i % HOST_BATCHES][0])
        forwards = timed_windows(lambda: [forward(device_batches[i % HOST_BATCHES][0])
                                          for i in range(spec.steps)], spec, device)
        result["teacher_forward_ms"] = 1000 * float(np.median(forwards)) / spec.steps
    return result


# ---------------------------------------------------------------------------------------------
# Every (model, precision), each in a fresh process, and the tables.

def profile(spec: PeerBench, model_name: str, precision: str, rows: int) -> str:
    """torch.profiler's table of `spec.steps` steps after the first and the warm-up: the
    kernels and ops where a step's time goes, longest first."""
    device = torch.device(spec.device)
    torch.manual_seed(0)
    set_float32_precision(precision)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    images, labels = host_images(spec)
    batches = [(torch.from_numpy(images[:spec.batch_size]).to(device),
                torch.from_numpy(labels[:spec.batch_size]).to(device))]
    total_steps = 1 + spec.warmup + spec.steps
    step, _, _ = training_step(model_name, precision, spec, device, total_steps)
    for _ in range(1 + spec.warmup):
        step(*batches[0])
    synchronize(device)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profiler:
        for _ in range(spec.steps):
            step(*batches[0])
        synchronize(device)
    key = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    return (f"{model_name} {precision}: {spec.steps} steps profiled\n"
            + profiler.key_averages().table(sort_by=key, row_limit=rows))


def run_child(spec: PeerBench, model_name: str, precision: str, timeout: float) -> dict:
    """`measure` in a fresh process, with a fresh Inductor cache: its first step compiles cold,
    as bench train's children do."""
    failed = {"model": model_name, "precision": precision}
    task = json.dumps({"spec": dataclasses.asdict(spec), "model": model_name,
                       "precision": precision})
    cache = tempfile.mkdtemp(prefix="torch-peer-cache-")
    environment = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache,
                   "TRITON_CACHE_DIR": str(Path(cache) / "triton")}
    try:
        done = subprocess.run([sys.executable, __file__, "--child", task], env=environment,
                              stdout=subprocess.PIPE, text=True, timeout=max(timeout, 1))
    except subprocess.TimeoutExpired:
        return {**failed, "error": "time budget spent while running"}
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    return {**failed, "error": f"exit code {done.returncode}"}


def environment_of(device: str) -> dict:
    """Date, versions, machine and command, as bench train's (bench/common.py)."""
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "backend": "pytorch",
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "numpy": np.__version__},
            "device": None if device.startswith("cuda") else "CPU",  # a child fills the GPU in
            "command": " ".join(["python3", *sys.argv]),
            "load_average": round(os.getloadavg()[0], 2)}


def counted(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def write_json(path: str, report: dict) -> None:
    """Written whole after each measurement, so an interrupted run keeps what it has."""
    temporary = Path(f"{path}.tmp")
    temporary.parent.mkdir(parents=True, exist_ok=True)
    temporary.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(temporary, path)


def markdown_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    cells = [[("-" if row.get(key) is None else format(row[key], style))
              for key, _, style in columns] for row in rows]
    headers = [header for _, header, _ in columns]
    widths = [max([len(h)] + [len(line[i]) for line in cells]) for i, h in enumerate(headers)]
    lines = [headers, ["-" * w for w in widths], *cells]
    return "\n".join("| " + " | ".join(value.rjust(w) for value, w in zip(line, widths)) + " |"
                     for line in lines)


PARAMETER_COLUMNS = [("input", "input", ""), ("model", "model", ""), ("keras", "Keras", ","),
                     ("torch", "torch", ","), ("ratio", "torch/Keras", ".4f"),
                     ("keras_trainable", "Keras trainable", ","),
                     ("torch_trainable", "torch trainable", ",")]
RESULT_COLUMNS = [("model", "model", ""), ("precision", "precision", ""),
                  ("parameters", "params", ","),
                  ("device_fed_images_per_s", "img/s on device", ".0f"),
                  ("dataloader_images_per_s", "img/s DataLoader", ".0f"),
                  ("vs_float32", "x float32", ".2f"), ("step_ms", "ms/step", ".1f"),
                  ("teacher_forward_ms", "teacher forward ms", ".1f"),
                  ("first_step_s", "first step s", ".1f"), ("peak_gib", "peak GiB", ".2f"),
                  ("step_peak_gib", "steps' peak GiB", ".2f")]


def format_results(results: list[dict]) -> str:
    measured = {(r["model"], r["precision"]): r for r in results if "device_fed_images_per_s" in r}
    rows = []
    for (model_name, _), r in measured.items():
        base = measured.get((model_name, "float32"), {}).get("device_fed_images_per_s")
        rows.append({**r, "vs_float32": r["device_fed_images_per_s"] / base if base else None,
                     **{f"{key}_gib": r[f"{key}_bytes"] / 2**30
                        for key in ("peak", "step_peak") if r.get(f"{key}_bytes")}})
    lines = [markdown_table(rows, RESULT_COLUMNS)]
    lines += [f"{r['model']} {r['precision']}: {r.get('error')}"
              for r in results if "device_fed_images_per_s" not in r]
    return "\n".join(lines)


def resolve_spec(args: argparse.Namespace) -> PeerBench:
    """The spec from the flags; with --npz, the images' size and channels (and by default the
    labels' classes)."""
    given = {name: getattr(args, name) for name in ("image_size", "channels", "num_classes",
                                                    "batch_size", "warmup", "steps", "windows")
             if getattr(args, name) is not None}
    if args.npz:
        images, labels = read_npz(args.npz)
        given.update(image_size=images.shape[1], channels=images.shape[3])
        given.setdefault("num_classes", int(labels.max()) + 1)
    spec = PeerBench(**given, device=args.device, compile=args.compile,
                     compile_mode=args.compile_mode, num_workers=args.num_workers, npz=args.npz,
                     threads=args.threads)
    stride = 2 ** (len(TEACHER_WIDTHS) - 1) * stem_stride(spec.image_size)
    if spec.image_size % stride:  # as teacher.check_teacher_config
        raise SystemExit(f"--image-size: {spec.image_size} must be a multiple of {stride} so "
                         "that the feature maps of every scale line up")
    return spec


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS,
                        help="float32-highest: full float32 matmuls and convolutions (no TF32)")
    parser.add_argument("--json", help="also write every figure to this JSON file")
    parser.add_argument("--image-size", type=int, help="pixels a side (default 224)")
    parser.add_argument("--channels", type=int, help="1 or 3 (default 3)")
    parser.add_argument("--num-classes", type=int, help="classes of the head (default 100)")
    parser.add_argument("--batch-size", type=int, help="default 64")
    for option, text in (("--warmup", "untimed steps after the first (default 5)"),
                         ("--steps", "steps per timed window (default 20)"),
                         ("--windows", "timed windows, median reported (default 5)")):
        parser.add_argument(option, type=int, help=text)
    parser.add_argument("--npz", help="real images instead of random ones: a .npz of uint8 "
                        "`images` (N, H, W[, C]) and `labels`")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--no-compile", dest="compile", action="store_false",
                        help="eager PyTorch, no torch.compile")
    parser.add_argument("--compile-mode", default="default",
                        choices=("default", "reduce-overhead", "max-autotune",
                                 "max-autotune-no-cudagraphs"))
    parser.add_argument("--num-workers", type=int, default=4, help="DataLoader worker processes")
    parser.add_argument("--threads", type=int, help="torch's CPU threads (default: its own)")
    parser.add_argument("--in-process", action="store_true",
                        help="measure everything in this process (for a profiler); peak memory "
                        "is then reset between measurements, caches are not")
    parser.add_argument("--budget-s", type=float, default=3600.0,
                        help="start no new measurement after this many seconds")
    parser.add_argument("--parameters", action="store_true",
                        help="print the parameter counts against Keras' and stop; exit 1 if one "
                        f"is off by more than {TOLERANCE:.0%}".replace("%", "%%"))
    parser.add_argument("--profile", type=int, metavar="ROWS",
                        help="instead of timing, print torch.profiler's ROWS longest ops and "
                        "kernels of each (model, precision)'s steps, in this process")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one measurement, as JSON
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        task = json.loads(args.child)
        result = measure(PeerBench(**task["spec"]), task["model"], task["precision"])
        print(MARKER + json.dumps(result), flush=True)
        return 0
    spec = resolve_spec(args)
    if spec.threads:
        torch.set_num_threads(spec.threads)
    counts = parameter_rows(spec)
    print("Parameters, counted as Keras' count_params() (BatchNorm's moving statistics "
          "included):\n" + markdown_table(counts, PARAMETER_COLUMNS) + "\n", flush=True)
    if args.parameters:
        return 0 if all(abs(r["ratio"] - 1) <= TOLERANCE for r in counts if r["ratio"]) else 1
    if spec.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: --device cpu for a smoke test")
    if args.profile:
        for model_name in args.models:
            for precision in args.precisions:
                print(profile(spec, model_name, precision, args.profile), flush=True)
        return 0
    report = {"environment": environment_of(spec.device), "spec": dataclasses.asdict(spec),
              "results": []}
    deadline = time.monotonic() + args.budget_s
    for model_name in args.models:
        for precision in args.precisions:
            left = deadline - time.monotonic()
            if precision == "mixed_float16" and spec.device == "cpu":
                # Listed as not measured (bench show too), but no failure.
                result = {"model": model_name, "precision": precision, "skipped": True,
                          "error": "not on a CPU: no float16 autocast with a GradScaler there"}
            elif left <= 0:
                result = {"model": model_name, "precision": precision,
                          "error": "time budget spent"}
            elif args.in_process:
                result = measure(spec, model_name, precision)
            else:
                result = run_child(spec, model_name, precision, left)
            report["results"].append(result)
            report["environment"]["device"] = (report["environment"]["device"]
                                               or result.get("device"))
            print(f"{model_name} {precision}: {json.dumps(result)}", file=sys.stderr, flush=True)
            if args.json:
                write_json(args.json, report)
    print(f"batch {spec.batch_size}, {spec.image_size} px, {counted(spec.channels, 'channel')}, "
          f"{spec.num_classes} classes; median of {counted(spec.windows, 'window')} of "
          f"{counted(spec.steps, 'step')}; "
          f"{'torch.compile ' + spec.compile_mode if spec.compile else 'eager'}; "
          f"{report['environment']['device']}; torch {torch.__version__}\n"
          + format_results(report["results"]))
    return 0 if all("error" not in r or r.get("skipped") for r in report["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
