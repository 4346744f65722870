"""An independent NumPy/SciPy implementation of method.md's per-model scores, for tests only.

Written straight from docs/method.md in float64 over the full arrays (one model, all P probes),
with no import of memjax.score: softmax from scipy.special, KL from scipy.special.rel_entr (log
space) or from explicitly clipped probabilities (Keras), Jensen-Shannon from SciPy, tests from
scipy.stats. Shapes: P probes, C classes.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr, softmax

EPS = 1e-7


def probs(logits: np.ndarray) -> np.ndarray:
    """Softmax in float64 of (float32) logits [P, C]."""
    return softmax(np.asarray(logits, np.float64), axis=-1)


def kl(p: np.ndarray, q: np.ndarray, clip: bool) -> np.ndarray:
    """KL(P||Q) over the last axis. clip: Keras, both clipped to [1e-7, 1]; else rel_entr."""
    if clip:
        p, q = np.clip(p, EPS, 1.0), np.clip(q, EPS, 1.0)
        return np.sum(p * np.log(p / q), axis=-1)
    return np.sum(rel_entr(p, q), axis=-1)


def onehot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes)[labels]


def entropy(p: np.ndarray) -> np.ndarray:
    return stats.entropy(p, axis=-1)


def reference_scores(logits_clean, logits_uf, logits_ctrl, y_star: int, probe_labels, *, clip: bool) -> dict:
    """All scores of one model: the same names as memjax.score.finalize."""
    p, u, r = probs(logits_clean), probs(logits_uf), probs(logits_ctrl)
    labels = np.asarray(probe_labels)
    num_probes, num_classes = p.shape
    out: dict = {}

    out["M2"] = np.mean(kl(p, u, clip)) - np.mean(kl(p, r, clip))

    s = labels == y_star
    q = onehot(np.full(num_probes, y_star), num_classes)
    kl_q_u, kl_q_r = kl(q, u, clip), kl(q, r, clip)
    # The rank test sees ties exactly: with Keras clipping, every probe whose f(x)_{y*} is below
    # 1e-7 has KL = log 1e7 + O(1e-7 * log 1e7), distinct in float64 but one value in the float32
    # the reference pipeline (and memjax) computes in. Test on float32 values, as they did.
    kl_q_u32, kl_q_r32 = kl_q_u.astype(np.float32), kl_q_r.astype(np.float32)
    out["M3_n"] = int(s.sum())
    if s.any():
        out["M3"] = np.mean(kl_q_u[s]) - np.mean(kl_q_r[s])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = stats.ttest_rel(kl_q_r[s], kl_q_u[s], alternative="greater")
            mw = stats.mannwhitneyu(kl_q_r32[s], kl_q_u32[s], alternative="greater")
        out["M3_t"], out["M3_t_p"] = t.statistic, t.pvalue
        out["M3_U"], out["M3_U_p"] = mw.statistic, mw.pvalue
    else:
        out["M3"] = out["M3_t"] = out["M3_t_p"] = out["M3_U"] = out["M3_U_p"] = np.nan
    out["M_score"] = -out["M3"]

    def guess(b_labels):
        b = onehot(b_labels, num_classes)
        return np.mean(kl(b, u, clip)) - np.mean(kl(b, r, clip))

    out["M6"] = guess(np.argmax(u, axis=1))
    out["M12"] = guess(np.argmax(u - p, axis=1))
    out["M13"] = guess(np.argmax(u - r, axis=1))
    out["M14_label"] = int(np.argmax(np.mean(u - p, axis=0)))
    out["M14"] = guess(np.full(num_probes, out["M14_label"]))
    out["M15_label"] = int(np.argmax(np.mean(u - r, axis=0)))
    out["M15"] = guess(np.full(num_probes, out["M15_label"]))

    out["M7"] = np.mean(kl(u, r, clip))
    out["M9"] = np.mean(kl(onehot(np.argmax(u, axis=1), num_classes), r, clip))
    out["M10"] = np.mean([jensenshannon(u[i], r[i]) for i in range(num_probes)])
    out["M10_reference"] = float(np.mean(jensenshannon(u, r)))  # SciPy's default axis 0
    out["M11_clean"], out["M11_uf"], out["M11_ctrl"] = (np.mean(entropy(x)) for x in (p, u, r))

    m_k = np.full(num_classes, np.nan)
    p_k = np.full(num_classes, np.nan)
    t_k = np.full(num_classes, np.nan)
    for k in range(num_classes):
        sk = labels == k
        if sk.sum() >= 1:
            m_k[k] = np.mean(u[sk, k] - p[sk, k])
        if sk.sum() >= 2:
            res = stats.ttest_rel(u[sk, k], p[sk, k], alternative="greater")
            t_k[k], p_k[k] = res.statistic, res.pvalue
    out["PD_Mk"], out["PD_tk"], out["PD_pk"] = m_k, t_k, p_k
    out["PD_M"], out["PD_M_t"], out["PD_M_p"] = m_k[y_star], t_k[y_star], p_k[y_star]
    out["PD_max_label"] = int(np.nanargmax(m_k))
    out["PD_max"] = m_k[out["PD_max_label"]]
    out["PD_max_p"] = p_k[out["PD_max_label"]]
    return out


def decision_margins(logits_clean, logits_uf, logits_ctrl) -> float:
    """Smallest gap between the top two entries of every argmax the scores take (per-probe
    guesses and M14/M15's class means). A gap near float32 resolution would make a float32
    implementation legitimately disagree with this float64 one; tests assert it is large."""
    p, u, r = probs(logits_clean), probs(logits_uf), probs(logits_ctrl)

    def gap(x):
        top2 = np.sort(x, axis=-1)[..., -2:]
        return float(np.min(top2[..., 1] - top2[..., 0]))

    return min(gap(u), gap(u - p), gap(u - r), gap(np.mean(u - p, 0)), gap(np.mean(u - r, 0)))
