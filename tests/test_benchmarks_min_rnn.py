"""benchmarks/min_rnn.py times two forms of the same maths: at a small shape its parallel and
sequential runs give the same gradients (float32, within the scan's rounding bound), and its
GEMM floor computes the products both forms share."""

from __future__ import annotations

import numpy as np

from benchmarks import min_rnn
from rnnx.testing._scan import MIN_RNN_GATE_ROUNDINGS, scan_memory, scan_rtol


def test_the_timed_forms_compute_the_same_gradients():
    shape = (3, 37, 4, 5)
    case = min_rnn._case(shape)
    p_dx, p_d0, p_g = min_rnn._parallel(case)()
    s_dx, s_d0, s_g = min_rnn._sequential(case)()
    par = {"dh0": p_d0["h0"], "dx": p_dx, **{"d" + k: v for k, v in p_g.items()}}
    seqs = {"dh0": s_d0["h0"], "dx": s_dx, **{"d" + k: v for k, v in s_g.items()}}
    dh0, dw_x, db, dx = (seqs[k] for k in ("dh0", "dw_x", "db", "dx"))
    u = case["x"].astype(np.float64) @ case["w_x"][:, : shape[3]] + case["b"][: shape[3]]
    memory = scan_memory(1.0 / (1.0 + np.exp(u)))
    for name, seq, sums in (("dh0", dh0, 0), ("dw_x", dw_x, shape[0] * shape[1]),
                            ("db", db, shape[0] * shape[1]), ("dx", dx, 2 * shape[3])):
        got = par[name]
        # Both sides float32: twice the bound of one against the exact result.
        rtol = 2 * scan_rtol(np.float32, np, memory=memory,
                             terms=shape[2] + 1 + MIN_RNN_GATE_ROUNDINGS, sums=sums)
        np.testing.assert_allclose(got, seq, rtol=0, atol=rtol * float(np.abs(seq).max()),
                                   err_msg=name)
    x2, dw, dxf = min_rnn._gemm_floor(case)()
    assert x2.shape == (3 * 37, 10) and dw.shape == (4, 10) and dxf.shape == (3 * 37, 4)
