"""A fused kernel for G's hot sequence: (scale *) conv output + bias, leaky ReLU, pixelnorm.

    y = lrelu(x * scale + bias[c], slope);  out = y / sqrt(mean_c(y^2) + eps)

One read and one write of the activation instead of the five passes eager torch makes (bias,
lrelu, square, mean, multiply), and `scale` folds the equalized-lr constant into the same pass,
so G's convs run on the raw weight with no weight-sized multiply per step (the result is the
same: conv(x, w * c) = c * conv(x, w)). The backward is a second Triton kernel when it is a
plain backward; under `create_graph=True` (a double backward) it is written in differentiable
torch ops instead, so the op stays correct wherever `pixelnorm` is used.

`fused_pixelnorm(..., impl="auto")` picks Triton for CUDA tensors when Triton imports and torch
is not compiling (inductor fuses the eager formula itself), and the eager formula otherwise.
Tests run the Triton kernels on CPU tensors with TRITON_INTERPRET=1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

try:  # Triton ships with CUDA builds of torch; CPU-only installs run the eager formula
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised only where triton is absent
    triton = None

MAX_CHANNELS = 8192  # one program holds every channel of its pixels; wider tensors run eagerly
TILE = 4096  # elements per program (channels x pixels)


def eager(x: torch.Tensor, bias: torch.Tensor | None = None, scale: float = 1.0,
          slope: float | None = None, eps: float = 1e-8) -> torch.Tensor:
    """The reference formula in torch ops (what every other path must equal)."""
    y = x * scale if scale != 1.0 else x
    if bias is not None:
        y = y + bias.reshape((1, -1) + (1,) * (x.dim() - 2))
    if slope is not None:
        y = F.leaky_relu(y, slope)
    if y.dim() == 4 and _format(y) is torch.channels_last:
        # The same formula as rms_norm over the channels, innermost in NHWC. Written as below,
        # the mean's backward broadcasts an NCHW gradient into NHWC activations, and mixed
        # layouts run elementwise ops ~30x slower on CPU (64x64, 16 channels, bf16).
        return F.rms_norm(y.permute(0, 2, 3, 1), (y.shape[1],), eps=eps).permute(0, 3, 1, 2)
    return y * torch.rsqrt(y.square().mean(dim=1, keepdim=True) + eps)


def _grad_torch(x, bias, grad, scale, slope, eps):
    """d out / d (x, bias) for an upstream `grad`, in differentiable torch ops (double backward)."""
    shape = (1, -1) + (1,) * (x.dim() - 2)
    pre = x * scale + (bias.reshape(shape) if bias is not None else 0)
    y = F.leaky_relu(pre, slope) if slope is not None else pre
    r = torch.rsqrt(y.square().mean(dim=1, keepdim=True) + eps)
    dot = (grad * y).mean(dim=1, keepdim=True)
    gpre = r * grad - r.pow(3) * y * dot
    if slope is not None:
        gpre = torch.where(pre > 0, gpre, gpre * slope)
    gbias = gpre.sum(dim=[d for d in range(x.dim()) if d != 1]) if bias is not None else None
    return gpre * scale, gbias


if triton is not None:
    @triton.jit
    def _tile(pid, blocks, C, P, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
        """This program's tile: every channel of BLOCK_P pixels of one sample."""
        n = (pid // blocks).to(tl.int64)
        offs_p = (pid % blocks) * BLOCK_P + tl.arange(0, BLOCK_P)
        offs_c = tl.arange(0, BLOCK_C)
        mask = (offs_c[:, None] < C) & (offs_p[None, :] < P)
        return n, offs_c, offs_p, mask

    @triton.jit
    def _offsets(n, offs_c, offs_p, sn, sc, sp):
        return n * sn + offs_c[:, None].to(tl.int64) * sc + offs_p[None, :].to(tl.int64) * sp

    @triton.jit
    def _load_pre(X, B, offs, offs_c, mask, scale, slope, C,
                  HAS_BIAS: tl.constexpr, ACT: tl.constexpr, F64: tl.constexpr):
        x = tl.load(X + offs, mask=mask, other=0.0)
        x = x.to(tl.float64) if F64 else x.to(tl.float32)
        pre = x * scale
        if HAS_BIAS:
            b = tl.load(B + offs_c, mask=offs_c < C, other=0.0)
            b = b.to(tl.float64) if F64 else b.to(tl.float32)
            pre = pre + b[:, None]
        y = pre
        if ACT:
            y = tl.where(pre > 0, pre, pre * slope)
        return pre, y

    @triton.jit
    def _forward_kernel(X, B, Y, C, P, blocks, sn, sc, sp, scale, slope, eps,
                        HAS_BIAS: tl.constexpr, ACT: tl.constexpr, F64: tl.constexpr,
                        BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
        pid = tl.program_id(0)
        n, offs_c, offs_p, mask = _tile(pid, blocks, C, P, BLOCK_C, BLOCK_P)
        offs = _offsets(n, offs_c, offs_p, sn, sc, sp)
        pre, y = _load_pre(X, B, offs, offs_c, mask, scale, slope, C, HAS_BIAS, ACT, F64)
        r = 1.0 / tl.sqrt(tl.sum(y * y, axis=0) / C + eps)
        tl.store(Y + offs, (y * r[None, :]).to(Y.dtype.element_ty), mask=mask)

    @triton.jit
    def _backward_kernel(X, B, G, GX, GB, C, P, blocks, sn, sc, sp, gn, gc, gp, scale, slope, eps,
                         HAS_BIAS: tl.constexpr, ACT: tl.constexpr, F64: tl.constexpr,
                         BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
        pid = tl.program_id(0)
        n, offs_c, offs_p, mask = _tile(pid, blocks, C, P, BLOCK_C, BLOCK_P)
        offs = _offsets(n, offs_c, offs_p, sn, sc, sp)
        pre, y = _load_pre(X, B, offs, offs_c, mask, scale, slope, C, HAS_BIAS, ACT, F64)
        goffs = _offsets(n, offs_c, offs_p, gn, gc, gp)
        g = tl.load(G + goffs, mask=mask, other=0.0)
        g = g.to(tl.float64) if F64 else g.to(tl.float32)
        r = 1.0 / tl.sqrt(tl.sum(y * y, axis=0) / C + eps)
        dot = tl.sum(g * y, axis=0) / C
        gpre = r[None, :] * g - (r * r * r * dot)[None, :] * y
        if ACT:
            gpre = tl.where(pre > 0, gpre, gpre * slope)
        tl.store(GX + offs, (gpre * scale).to(GX.dtype.element_ty), mask=mask)
        if HAS_BIAS:  # one partial sum per program and channel: summed in torch, deterministic
            tl.store(GB + pid * BLOCK_C + offs_c, tl.sum(gpre, axis=1), mask=offs_c < C)


def _layout(x: torch.Tensor):
    """(N, C, P) strides of x with its spatial dims merged, or None if they cannot be merged
    (a channels_last or contiguous 4-D tensor can; a 2-D (N, C) tensor has P = 1)."""
    if x.dim() == 2:
        return x.shape[0], x.shape[1], 1, x.stride(0), x.stride(1), 1
    if x.dim() == 4 and x.stride(2) == x.shape[3] * x.stride(3):
        n, c, h, w = x.shape
        return n, c, h * w, x.stride(0), x.stride(1), x.stride(3)
    return None


def _launch_shape(c: int, p: int):
    block_c = triton.next_power_of_2(c)
    block_p = max(1, min(triton.next_power_of_2(p), TILE // block_c))
    return block_c, block_p, triton.cdiv(p, block_p)


class _Fused(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bias, scale, slope, eps):
        n, c, p, sn, sc, sp = _layout(x)
        block_c, block_p, blocks = _launch_shape(c, p)
        out = torch.empty_like(x)  # same strides: preserve_format keeps a mergeable layout
        _forward_kernel[(n * blocks,)](
            x, bias if bias is not None else x, out, c, p, blocks, sn, sc, sp,
            float(scale), float(slope or 0.0), float(eps),
            HAS_BIAS=bias is not None, ACT=slope is not None, F64=x.dtype == torch.float64,
            BLOCK_C=block_c, BLOCK_P=block_p, num_warps=4 if block_c * block_p <= 2048 else 8)
        ctx.save_for_backward(x, bias)
        ctx.args = (scale, slope, eps)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, bias = ctx.saved_tensors
        scale, slope, eps = ctx.args
        if torch.is_grad_enabled():  # create_graph: the double backward goes through torch ops
            gx, gbias = _grad_torch(x, bias, grad, scale, slope, eps)
            return gx, gbias, None, None, None
        if _layout(grad) is None:
            grad = grad.contiguous(memory_format=_format(x))
        n, c, p, sn, sc, sp = _layout(x)
        gsn, gsc, gsp = _layout(grad)[3:]
        block_c, block_p, blocks = _launch_shape(c, p)
        gx = torch.empty_like(x)
        partial = (torch.empty(n * blocks, block_c, device=x.device, dtype=torch.float64
                               if x.dtype == torch.float64 else torch.float32)
                   if bias is not None else x)
        _backward_kernel[(n * blocks,)](
            x, bias if bias is not None else x, grad, gx, partial, c, p, blocks, sn, sc, sp,
            gsn, gsc, gsp, float(scale), float(slope or 0.0), float(eps),
            HAS_BIAS=bias is not None, ACT=slope is not None, F64=x.dtype == torch.float64,
            BLOCK_C=block_c, BLOCK_P=block_p, num_warps=4 if block_c * block_p <= 2048 else 8)
        gbias = partial[:, :c].sum(0).to(bias.dtype) if bias is not None else None
        return gx, gbias, None, None, None


def _format(x: torch.Tensor):
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def triton_available(x: torch.Tensor) -> bool:
    """Whether `impl="auto"` runs the Triton kernel for this tensor."""
    return (triton is not None and x.is_cuda and not torch.compiler.is_compiling()
            and x.shape[1] <= MAX_CHANNELS and _layout(x) is not None)


def fused_pixelnorm(x: torch.Tensor, bias: torch.Tensor | None = None, scale: float = 1.0,
                    slope: float | None = None, eps: float = 1e-8, impl: str = "auto") -> torch.Tensor:
    """pixelnorm(lrelu(x * scale + bias)) over dim 1 of an (N, C) or (N, C, H, W) tensor.

    impl: "auto" (Triton on CUDA when available, else eager), "triton" (forced, e.g. on CPU
    under TRITON_INTERPRET=1), "eager" (the torch formula).
    """
    if impl == "eager" or (impl == "auto" and not triton_available(x)):
        return eager(x, bias, scale, slope, eps)
    if triton is None or _layout(x) is None:
        raise RuntimeError("fused_pixelnorm: the Triton kernel needs triton and a tensor whose "
                           "spatial dims can be merged (contiguous or channels_last)")
    if _format(x) is torch.contiguous_format:
        x = x.contiguous()
    return _Fused.apply(x, bias, scale, slope, eps)
