"""Products with structured matrices, applied without building them.

A factor is either a dense matrix ``M`` or a :class:`LowRank` pair ``(U, V)`` standing for ``U Vᵀ``.
``kron_linear`` applies ``x ↦ x (A ⊗ B)ᵀ`` for such factors through the identity
``(A ⊗ B) vec(K) = vec(A K Bᵀ)`` (row-major ``vec``), so neither ``A ⊗ B`` nor ``A``/``B`` themselves
need to exist when they are low rank.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from rpn_exp.functions.outer import outer_dense, outer_linear


class LowRank(NamedTuple):
    """The matrix ``U Vᵀ`` with ``U`` of shape (rows, r) and ``V`` of shape (cols, r)."""

    U: torch.Tensor
    V: torch.Tensor

    def materialize(self, n: int, D: int) -> torch.Tensor:
        return self.U @ self.V.T

    def linear(self, x: torch.Tensor, n: int, D: int) -> torch.Tensor:
        return (x @ self.V) @ self.U.T

    def window(self, i: torch.Tensor, j: torch.Tensor, n: int, D: int) -> torch.Tensor:
        return self.U[i] @ self.V[j].T


Factor = torch.Tensor | LowRank


class Dense(NamedTuple):
    """The matrix ``W`` itself, (n, D): what :func:`as_form` makes of a ψ's plain tensor."""

    W: torch.Tensor

    def materialize(self, n: int, D: int) -> torch.Tensor:
        return self.W

    def linear(self, x: torch.Tensor, n: int, D: int) -> torch.Tensor:
        return F.linear(x, self.W)

    def window(self, i: torch.Tensor, j: torch.Tensor, n: int, D: int) -> torch.Tensor:
        return self.W[i][:, j]


class Kronecker(NamedTuple):
    """The matrix ``A ⊗ B`` (``torch.kron``), each factor dense or :class:`LowRank`."""

    A: Factor
    B: Factor

    def materialize(self, n: int, D: int) -> torch.Tensor:
        return torch.kron(dense(self.A), dense(self.B))

    def linear(self, x: torch.Tensor, n: int, D: int) -> torch.Tensor:
        return kron_linear(x, self.A, self.B)

    def window(self, i: torch.Tensor, j: torch.Tensor, n: int, D: int) -> torch.Tensor:
        """W[i, j] = A[i // s, j // t] · B[i % s, j % t] for B of shape s × t."""
        s, t = shape(self.B)
        return dense(self.A)[i // s][:, j // t] * dense(self.B)[i % s][:, j % t]


class KroneckerSum(NamedTuple):
    """The matrix ``Σᵢ Aᵢ ⊗ Bᵢ`` of k > 1 :class:`Kronecker` terms of the same shapes."""

    terms: tuple[Kronecker, ...]

    def materialize(self, n: int, D: int) -> torch.Tensor:
        return sum_terms(term.materialize(n, D) for term in self.terms)

    def linear(self, x: torch.Tensor, n: int, D: int) -> torch.Tensor:
        return sum_terms(term.linear(x, n, D) for term in self.terms)

    def window(self, i: torch.Tensor, j: torch.Tensor, n: int, D: int) -> torch.Tensor:
        return sum_terms(term.window(i, j, n, D) for term in self.terms)


def kron_terms(form: Kronecker | KroneckerSum) -> tuple[Kronecker, ...]:
    """The terms of a Kronecker form: ``(form,)`` for one product, ``form.terms`` for a sum."""
    return form.terms if isinstance(form, KroneckerSum) else (form,)


def sum_terms(outputs) -> torch.Tensor:
    """The sum of the per-term results, left to right (the first result itself for one term)."""
    outputs = iter(outputs)
    total = next(outputs)
    for out in outputs:
        total = total + out
    return total


class Outer(NamedTuple):
    """The n×D matrix ``reshape_{n×D}(a bᵀ)`` of two flat vectors with ``a.numel() · b.numel() = n · D`` (the
    reference implementation's layout of a Kronecker family, :func:`rpn_exp.functions.outer.outer_dense`)."""

    a: torch.Tensor
    b: torch.Tensor

    def materialize(self, n: int, D: int) -> torch.Tensor:
        return outer_dense(self.a, self.b, n, D)

    def linear(self, x: torch.Tensor, n: int, D: int) -> torch.Tensor:
        return outer_linear(x, self.a, self.b, n)

    def window(self, i: torch.Tensor, j: torch.Tensor, n: int, D: int) -> torch.Tensor:
        """W[i, j] = a[(iD + j) // L_b] · b[(iD + j) mod L_b]."""
        flat = i.unsqueeze(1) * D + j
        return self.a[flat // self.b.numel()] * self.b[flat % self.b.numel()]


#: The forms a ψ declares W in (``Reconciliation.factors``; a plain tensor is :class:`Dense`). Each computes W
#: (``materialize(n, D)``), x Wᵀ (``linear(x, n, D)``) and the entries W[i][:, j] (``window(i, j, n, D)``) its own way.
Form = Dense | LowRank | Kronecker | KroneckerSum | Outer


def as_form(form: Form | torch.Tensor) -> Form:
    """A ψ's declared W as a :data:`Form`: a plain (n, D) tensor becomes :class:`Dense`."""
    return Dense(form) if isinstance(form, torch.Tensor) else form


def batched(x: torch.Tensor) -> bool:
    """Whether ``x`` is one member's view inside ``torch.func.vmap`` (a stacked run, ``rpn_exp.nn.stack``)."""
    return torch._C._functorch.is_batchedtensor(x)


def dense(M: Factor) -> torch.Tensor:
    """The factor as a dense matrix."""
    return M.U @ M.V.T if isinstance(M, LowRank) else M


def shape(M: Factor) -> tuple[int, int]:
    """(rows, cols) of a factor."""
    return (M.U.shape[0], M.V.shape[0]) if isinstance(M, LowRank) else tuple(M.shape)


def apply(M: Factor, X: torch.Tensor) -> torch.Tensor:
    """``X Mᵀ`` over the last dimension of ``X``: (..., cols) -> (..., rows)."""
    if isinstance(M, LowRank):
        return (X @ M.V) @ M.U.T
    return X @ M.T


def kron_linear(x: torch.Tensor, A: Factor, B: Factor) -> torch.Tensor:
    """``x (A ⊗ B)ᵀ`` for ``x`` of shape (b, q·t), ``A`` (p×q), ``B`` (s×t); returns (b, p·s).

    Each row of ``x`` is reshaped to ``K`` (q×t); the result row is ``vec(A K Bᵀ)``. The factor whose
    product leaves the smaller intermediate is applied first.
    """
    (p, q), (s, t) = shape(A), shape(B)
    K = x.reshape(-1, q, t)
    if p * t <= q * s:  # A first: (b, p, t), then B
        Y = apply(B, apply(A, K.transpose(1, 2)).transpose(1, 2))
    else:  # B first: (b, q, s), then A
        Y = apply(A, apply(B, K).transpose(1, 2)).transpose(1, 2)
    return Y.reshape(x.shape[0], p * s)


def bilinear(u: torch.Tensor, v: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """``W (u ⊗ v)`` row by row without building u ⊗ v: u (b, q), v (b, t), W (n, q·t) -> (b, n).

    With W viewed as (n, q, t), ``y_k = uᵀ W_k v``: first ``v`` against every row block, (b, n·q), then the
    contraction with ``u``. Same multiply count as the dense product, no (b, q·t) copy.
    """
    n, q = W.shape[0], u.shape[1]
    s = v @ W.reshape(n * q, -1).T
    return torch.bmm(s.view(u.shape[0], n, q), u.unsqueeze(2)).squeeze(2)


def bilinear_columns(u: torch.Tensor, v: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """``(u ⊗ v) V`` row by row without building u ⊗ v: u (b, q), v (b, t), V (q·t, k) -> (b, k).

    With V viewed as (q, t·k): one product ``u V`` (b, t·k), then the contraction with v. For a thin V
    (k small) this costs 2·b·q·t·k multiplies and no copy of V.
    """
    b, q, t, k = u.shape[0], u.shape[1], v.shape[1], V.shape[1]
    s = (u @ V.view(q, t * k)).view(b, t, k)
    return (s * v.unsqueeze(2)).sum(1)


def kron_moments(u: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance over the entries of κ = u ⊗ [1, t], per row, without building κ: u (..., b, m),
    t (..., b, T) -> two (..., b, 1) tensors.

    With v = [1, t], ū and v̄ the row means and V_u, V_v the (two-pass, hence non-negative) row variances,
    μ = ū v̄ and σ² = V_u V_v + V_u v̄² + ū² V_v: a sum of non-negative terms, so σ² never goes negative (the
    one-pass E[κ²] − μ² did, for rows near constant).
    """
    width = t.shape[-1] + 1
    u_mean = u.mean(-1, keepdim=True)
    u_var = (u - u_mean).square().mean(-1, keepdim=True)
    if t is u:  # d = 2: Σ(u − v̄)² = Σ(u − ū)² + m (ū − v̄)², no second pass over the row
        v_mean = (1 + u_mean * u.shape[-1]) / width
        spread = u.shape[-1] * (u_var + (u_mean - v_mean).square())
    else:
        v_mean = (1 + t.sum(-1, keepdim=True)) / width
        spread = (t - v_mean).square().sum(-1, keepdim=True)
    v_var = ((1 - v_mean).square() + spread) / width
    return u_mean * v_mean, u_var * v_var + u_var * v_mean.square() + u_mean.square() * v_var


def kron_taylor(u: torch.Tensor, t: torch.Tensor, A: torch.Tensor, B: torch.Tensor, eps: float | None = None):
    """``(A ⊗ B) κ`` for the Taylor layout κ = u ⊗ [1, t], optionally layer-normalized, without building κ or A ⊗ B.

    u (..., b, m), t (..., b, T), A (..., p, m), B (..., s, T + 1) -> (..., b, p·s); the leading dimensions (none,
    or the members of a stacked run) index independent layers:

        z = (A u) ⊗ (B [1, t])
        y = (z − μ (A 1 ⊗ B 1)) / sqrt(σ² + eps)     (eps given: a non-affine layer norm over κ, D = m (T + 1))

    with μ and σ² from :func:`kron_moments` (O(m + T) per row). The backward pass is written out (one autograd
    node instead of some thirty small ones), which is what makes a step of the paper's model a few milliseconds
    on a CPU; a second derivative (``create_graph=True``, e.g. a gradient penalty) differentiates
    :func:`kron_taylor_reference` instead, so it is exact too. Under ``torch.func.vmap`` the node runs once on
    the whole batch of layers (its ``vmap`` rule). Under autocast (``bf16-mixed``, ``16-mixed``) the node computes
    in float32 and returns float32. Pass the same tensor as ``u`` and ``t`` for d = 2.
    """
    node = _KronTaylorBatched if any(map(batched, (u, t, A, B))) else _KronTaylor
    device = u.device.type
    if torch.is_autocast_enabled(device):
        with torch.autocast(device, enabled=False):
            return node.apply(u.float(), None if t is u else t.float(), A.float(), B.float(), eps)
    return node.apply(u, None if t is u else t, A, B, eps)


def _affine_taylor(t: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """B [1, t] per row: t (..., b, T), B (..., s, T + 1) -> (..., b, s)."""
    if B.dim() == 2:
        return torch.addmm(B[:, 0], t, B[:, 1:].T)
    return torch.baddbmm(B[..., 0].unsqueeze(-2), t, B[..., 1:].mT)


def _outer_flat(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """vec(a bᵀ) over the last dimension: a (..., p), b (..., s) -> (..., p·s)."""
    if a.dim() == 1:
        return torch.outer(a, b).reshape(-1)
    return (a.unsqueeze(-1) * b.unsqueeze(-2)).flatten(-2)


def _matvec(M: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """M v over the last dimension: M (..., p, s), v (..., s) -> (..., p)."""
    return M @ v if v.dim() == 1 else (M @ v.unsqueeze(-1)).squeeze(-1)


def kron_taylor_reference(u: torch.Tensor, t: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                          eps: float | None = None) -> torch.Tensor:
    """What :func:`kron_taylor` computes, in plain differentiable operations (any order of derivative)."""
    a, c = u @ A.mT, _affine_taylor(t, B)
    z = (a.unsqueeze(-1) * c.unsqueeze(-2)).flatten(-2)
    if eps is None:
        return z
    mu, var = kron_moments(u, t)
    return (z - mu * _outer_flat(A.sum(-1), B.sum(-1)).unsqueeze(-2)) * torch.rsqrt(var + eps)


class _KronTaylor(torch.autograd.Function):
    """The fused node of :func:`kron_taylor` on plain tensors (any leading dimensions); ``t`` is None when it is
    ``u`` (d = 2)."""

    @staticmethod
    def forward(ctx, u, t, A, B, eps):
        ctx.same, ctx.eps = t is None, eps
        t = u if t is None else t
        a = u @ A.mT
        c = _affine_taylor(t, B)
        z = (a.unsqueeze(-1) * c.unsqueeze(-2)).flatten(-2)
        if eps is None:
            ctx.save_for_backward(u, t, A, B, a, c)
            return z
        su, su2 = u.sum(-1, keepdim=True), (u * u).sum(-1, keepdim=True)
        st, st2 = (su, su2) if t is u else (t.sum(-1, keepdim=True), (t * t).sum(-1, keepdim=True))
        mu, var = kron_moments(u, t)  # var >= 0 by construction; its gradient below is that of Σu²(1+Σt²)/D − μ²
        istd = torch.rsqrt(var + eps)
        ra, rb = A.sum(-1), B.sum(-1)
        rs = _outer_flat(ra, rb)
        ctx.D = u.shape[-1] * (t.shape[-1] + 1)
        ctx.save_for_backward(u, t, A, B, a, c, z, mu, istd, ra, rb, rs, su, su2, st, st2)
        return (z - mu * rs.unsqueeze(-2)) * istd

    @staticmethod
    def backward(ctx, g):
        if torch.is_grad_enabled():  # create_graph=True: a graph of the gradient is wanted (second derivatives)
            return _KronTaylor._differentiable_backward(ctx, g)
        need_u, need_t, need_A, need_B, _ = ctx.needs_input_grad
        need_t = need_t or (ctx.same and need_u)  # u is t: t's gradient flows into u
        if ctx.eps is None:
            u, t, A, B, a, c = ctx.saved_tensors
            gz = g
        else:
            u, t, A, B, a, c, z, mu, istd, ra, rb, rs, su, su2, st, st2 = ctx.saved_tensors
            D = ctx.D
            gz = g * istd
            g_rs = g @ rs.unsqueeze(-1)  # (..., b, 1): Σ_k g_k rs_k
            d_istd = (g * z).sum(-1, keepdim=True) - mu * g_rs
            d_var = d_istd * -0.5 * istd**3
            d_mu = -istd * g_rs - 2 * mu * d_var
            d_rs = -(gz * mu).sum(-2).unflatten(-1, (A.shape[-2], B.shape[-2]))
        gz3 = gz.unflatten(-1, (A.shape[-2], B.shape[-2]))
        da = (gz3 @ c.unsqueeze(-1)).squeeze(-1)  # (..., b, p)
        dc = (a.unsqueeze(-2) @ gz3).squeeze(-2)  # (..., b, s)
        du = dt = dA = dB = None
        if need_u:
            du = da @ A
        if need_t:
            dt_c = dc @ B[..., 1:]
        if need_A:
            dA = da.mT @ u
        if need_B:
            dB = torch.cat([dc.sum(-2, keepdim=True).mT, dc.mT @ t], dim=-1)
        if ctx.eps is not None:
            d_su, d_st = d_mu * (st + 1) / D, d_mu * su / D
            d_su2, d_st2 = d_var * (st2 + 1) / D, d_var * su2 / D
            if du is not None:
                du = du + d_su + 2 * u * d_su2
            if need_t:
                dt_c = dt_c + d_st + 2 * t * d_st2
            if need_A:
                dA = dA + _matvec(d_rs, rb).unsqueeze(-1)
            if need_B:
                dB = dB + _matvec(d_rs.mT, ra).unsqueeze(-1)
        if ctx.same:
            return (du + dt_c if need_u else None), None, dA, dB, None
        if need_t:
            dt = dt_c
        return du, dt, dA, dB, None

    @staticmethod
    def _differentiable_backward(ctx, g):
        """The gradient as a graph: :func:`kron_taylor_reference` re-computed and differentiated by autograd."""
        u, t, A, B = ctx.saved_tensors[:4]
        inputs = (u, A, B) if ctx.same else (u, t, A, B)
        needed = [x for x in inputs if x.requires_grad]
        y = kron_taylor_reference(u, u if ctx.same else t, A, B, ctx.eps)
        grads = dict(zip(map(id, needed), torch.autograd.grad(y, needed, g, create_graph=True)))
        pick = [grads.get(id(x)) for x in inputs]
        return (pick[0], None, *pick[1:], None) if ctx.same else (*pick, None)


class _KronTaylorBatched(torch.autograd.Function):
    """:func:`kron_taylor` under ``torch.func.vmap`` (a stacked run's members): the batch of layers becomes the
    leading dimension of one :class:`_KronTaylor` call on plain tensors, which autograd records as usual."""

    @staticmethod
    def forward(u, t, A, B, eps):
        raise RuntimeError("_KronTaylorBatched runs only under vmap; call kron_taylor")

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, g):
        raise RuntimeError("_KronTaylorBatched is differentiated through the _KronTaylor node it records")

    @staticmethod
    def vmap(info, in_dims, u, t, A, B, eps):
        def leading(x, dim):
            return x.movedim(dim, 0) if dim is not None else x.expand(info.batch_size, *x.shape)

        t_ = None if t is None else leading(t, in_dims[1])
        return _KronTaylor.apply(leading(u, in_dims[0]), t_, leading(A, in_dims[2]), leading(B, in_dims[3]), eps), 0
